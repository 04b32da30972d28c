//! Every service portway serves, with its descriptors: the local ones (compiled in, or an
//! embedder's) and each upstream's, and what follows from them: which upstream a call goes
//! to, the method table of the JSON protocols, the merged server reflection, and health.
//!
//! Built once at start-up (discovery must succeed for every upstream, and a service offered
//! twice is an error naming both offers), then refreshed on demand ([`Catalog::refresh`],
//! SIGHUP in the binary) and on an interval: a refresh that finds a new method or service
//! serves it from then on; an upstream that cannot be asked keeps what it had.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::descriptors::{Descriptors, DescriptorsError, OWN_SERVICES};
use super::health;
use super::reflect::{ReflectError, reflect};
use super::target::{ChannelOptions, Target};
use super::upstream::Upstream;
use crate::transcode::MethodTable;

/// One upstream, as configured.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// How logs and errors name it (default: its first address).
    pub name: String,
    /// Its endpoints (one or more), balanced round-robin.
    pub targets: Vec<Target>,
    /// Its descriptors from this file instead of its server reflection.
    pub descriptor_set: Option<PathBuf>,
    /// The CA certificates (a PEM file) that sign its certificate, for `https://`
    /// endpoints; `None`: the system's roots.
    pub ca: Option<PathBuf>,
}

impl UpstreamConfig {
    /// An upstream at `targets`, named `name`, discovered by reflection.
    pub fn new(name: impl Into<String>, targets: Vec<Target>) -> Self {
        Self { name: name.into(), targets, descriptor_set: None, ca: None }
    }
}

/// Proxy mode's settings. Start from [`ProxyConfig::default`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The upstreams. Default: none.
    pub upstreams: Vec<UpstreamConfig>,
    /// Ask every upstream for its services again this often. Default: every 5 minutes.
    pub refresh_interval: Option<Duration>,
    /// The longest an upstream's reflection may take to answer. Default: 10 s.
    pub discovery_timeout: Duration,
    /// How often each upstream's health is checked (sooner, with backoff, while it is
    /// down). Default: 5 s.
    pub health_interval: Duration,
    /// Longest wait for a connection to an upstream. Default: 5 s.
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive interval (and timeout) on upstream connections. Default: 20 s.
    pub keepalive: Duration,
    /// A cap on the deadline forwarded with each call (the gateway's
    /// [`max_call_timeout`](crate::Config::max_call_timeout)). Default: none.
    pub max_call_timeout: Option<Duration>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            refresh_interval: Some(Duration::from_secs(300)),
            discovery_timeout: Duration::from_secs(10),
            health_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(20),
            max_call_timeout: None,
        }
    }
}

/// Why the catalog could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The local services' reflection failed.
    #[error("asking the local services for their descriptors: {0}")]
    Local(ReflectError),
    /// Descriptors given for the local services are not usable.
    #[error("the local descriptors: {0}")]
    LocalDescriptors(DescriptorsError),
    /// An upstream's TLS settings are not usable.
    #[error("upstream {upstream}: {reason}")]
    Tls {
        /// The upstream.
        upstream: String,
        /// Why.
        reason: String,
    },
    /// An upstream could not be discovered.
    #[error(
        "upstream {upstream}: {reason}; portway needs its descriptors: start it first, or give them with --descriptor-set"
    )]
    Discovery {
        /// The upstream.
        upstream: String,
        /// Why.
        reason: String,
    },
    /// Two places offer the same service.
    #[error("service {service} is offered by {first} and by {second}: each service must have one home")]
    Duplicate {
        /// The service.
        service: String,
        /// Where it was found first.
        first: String,
        /// Where it was found again.
        second: String,
    },
    /// The merged reflection service could not be built.
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// What a call needs from the catalog, swapped whole on refresh.
pub(super) struct State {
    /// Service name → its upstream.
    pub(super) routes: HashMap<String, Arc<Upstream>>,
    /// Reflection v1 and v1alpha over every service.
    pub(super) reflection: Routes,
    /// The method table of the JSON protocols.
    pub(super) methods: Arc<MethodTable>,
}

struct Entry {
    upstream: Arc<Upstream>,
    config: UpstreamConfig,
    descriptors: Mutex<Descriptors>,
}

pub(super) struct Inner {
    config: ProxyConfig,
    local: Descriptors,
    entries: Vec<Entry>,
    state: RwLock<Arc<State>>,
    pub(super) health: HealthReporter,
}

impl Inner {
    fn state(&self) -> Arc<State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The services routed to `upstream` now.
    pub(super) fn services_of(&self, upstream: &Arc<Upstream>) -> Vec<String> {
        let state = self.state();
        state.routes.iter().filter(|(_, u)| Arc::ptr_eq(u, upstream)).map(|(s, _)| s.clone()).collect()
    }

    /// Reports `upstream`'s services as serving or not, as its endpoints are.
    pub(super) async fn report(&self, upstream: &Arc<Upstream>) {
        let status = if upstream.is_up() { ServingStatus::Serving } else { ServingStatus::NotServing };
        for service in self.services_of(upstream) {
            self.health.set_service_status(service, status).await;
        }
    }
}

/// See the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

/// The local services and descriptors a catalog starts from.
pub struct Local {
    descriptors: Option<Descriptors>,
}

impl Local {
    /// The services `routes` answers for, from its own reflection service (none: no local
    /// descriptors), plus those in each of `file_descriptor_sets`.
    pub async fn discover<S>(routes: S, file_descriptor_sets: &[&[u8]], timeout: Duration) -> Result<Self, CatalogError>
    where
        S: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
        <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
        S::Future: Send,
    {
        let mut services = Vec::new();
        let mut files = BTreeMap::new();
        match reflect(routes, timeout).await {
            Ok(r) => {
                services.extend(r.services);
                files.extend(r.files);
            }
            Err(ReflectError::NotServed) => {}
            Err(e) => return Err(CatalogError::Local(e)),
        }
        for set in file_descriptor_sets {
            let d = Descriptors::decode(set).map_err(CatalogError::LocalDescriptors)?;
            services.extend(d.services);
            for (name, raw) in d.files {
                files.entry(name).or_insert(raw);
            }
        }
        services.sort();
        services.dedup();
        let descriptors = Descriptors::new(&services, files).map_err(CatalogError::LocalDescriptors)?;
        Ok(Self { descriptors: Some(descriptors) })
    }

    /// No local services.
    pub fn none() -> Self {
        Self { descriptors: None }
    }
}

async fn discover(
    entry_config: &UpstreamConfig,
    upstream: &Upstream,
    timeout: Duration,
) -> Result<Descriptors, String> {
    match &entry_config.descriptor_set {
        Some(path) => Descriptors::read(path).map_err(|e| e.to_string()),
        None => {
            let reflected = reflect(upstream.channel(), timeout).await.map_err(|e| e.to_string())?;
            Descriptors::new(&reflected.services, reflected.files).map_err(|e| e.to_string())
        }
    }
}

impl Catalog {
    /// Discovers every upstream of `config` and builds the catalog over them and `local`.
    /// `health` is the reporter of the mounted health service: the upstreams' services are
    /// reported there as their upstreams' health checks find them.
    pub async fn start(config: ProxyConfig, local: Local, health: HealthReporter) -> Result<Self, CatalogError> {
        let mut channel =
            ChannelOptions { ca: None, connect_timeout: config.connect_timeout, keepalive: config.keepalive };
        let local = match local.descriptors {
            Some(d) => d,
            None => Descriptors::new(&[], BTreeMap::new()).map_err(CatalogError::LocalDescriptors)?,
        };
        let mut entries = Vec::new();
        for c in &config.upstreams {
            let tls = |reason: String| CatalogError::Tls { upstream: c.name.clone(), reason };
            channel.ca = match &c.ca {
                Some(path) => Some(
                    std::fs::read(path).map_err(|e| tls(format!("cannot read the CA file {}: {e}", path.display())))?,
                ),
                None => None,
            };
            let upstream = Upstream::new(&c.name, &c.targets, &channel, config.max_call_timeout)
                .map_err(|e| tls(e.to_string()))?;
            let upstream = Arc::new(upstream);
            let descriptors = discover(c, &upstream, config.discovery_timeout)
                .await
                .map_err(|reason| CatalogError::Discovery { upstream: upstream.name().to_owned(), reason })?;
            entries.push(Entry { upstream, config: c.clone(), descriptors: Mutex::new(descriptors) });
        }
        let state = build_state(&local, &entries, Conflicts::Fail)?;
        let inner = Arc::new(Inner { config, local, entries, state: RwLock::new(Arc::new(state)), health });
        for entry in &inner.entries {
            inner.report(&entry.upstream).await;
            let monitor = health::monitor(
                Arc::downgrade(&inner),
                entry.upstream.clone(),
                inner.config.health_interval,
                inner.config.connect_timeout,
            );
            tokio::spawn(monitor);
        }
        if let Some(every) = inner.config.refresh_interval {
            tokio::spawn(refresh_every(Arc::downgrade(&inner), every));
        }
        Ok(Self { inner })
    }

    pub(super) fn state(&self) -> Arc<State> {
        self.inner.state()
    }

    /// Each upstream's name and whether some endpoint of it is up.
    pub fn upstreams(&self) -> Vec<(String, bool)> {
        self.inner.entries.iter().map(|e| (e.upstream.name().to_owned(), e.upstream.is_up())).collect()
    }

    /// The method table of the JSON protocols: the generated entries, the local services'
    /// described methods, and every upstream service's methods (from its own descriptors).
    pub fn methods(&self) -> Arc<MethodTable> {
        self.state().methods.clone()
    }

    /// The names of the upstream services, each with the upstream serving it.
    pub fn routes(&self) -> Vec<(String, String)> {
        let mut routes: Vec<(String, String)> =
            self.state().routes.iter().map(|(s, u)| (s.clone(), u.name().to_owned())).collect();
        routes.sort();
        routes
    }

    /// Asks every upstream for its services again and serves what changed. An upstream that
    /// cannot be asked keeps what it had; a service that a refresh finds in a second place
    /// stays where it was (both are logged). Returns one line per upstream that could not
    /// be asked.
    pub async fn refresh(&self) -> Vec<String> {
        let inner = &self.inner;
        let found = futures_util::future::join_all(
            inner.entries.iter().map(|e| discover(&e.config, &e.upstream, inner.config.discovery_timeout)),
        )
        .await;
        let mut failures = Vec::new();
        for (entry, result) in inner.entries.iter().zip(found) {
            match result {
                Ok(d) => *entry.descriptors.lock().unwrap_or_else(PoisonError::into_inner) = d,
                Err(reason) => {
                    tracing::warn!(upstream = entry.upstream.name(), %reason, "refresh: keeping what the upstream had");
                    failures.push(format!("upstream {}: {reason}", entry.upstream.name()));
                }
            }
        }
        match build_state(&inner.local, &inner.entries, Conflicts::KeepFirst) {
            Ok(state) => *inner.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state),
            Err(e) => {
                tracing::error!(error = %e, "refresh: keeping the previous catalog");
                failures.push(e.to_string());
            }
        }
        for entry in &inner.entries {
            inner.report(&entry.upstream).await;
        }
        failures
    }
}

/// Refreshes the catalog every `every` until it is gone.
async fn refresh_every(inner: std::sync::Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else { return };
        Catalog { inner }.refresh().await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Conflicts {
    /// A service offered twice is an error (at start).
    Fail,
    /// A service offered twice stays with its first home (on refresh), logged.
    KeepFirst,
}

fn build_state(local: &Descriptors, entries: &[Entry], conflicts: Conflicts) -> Result<State, CatalogError> {
    let mut home: HashMap<String, String> =
        local.services.iter().map(|s| (s.clone(), "portway itself".to_owned())).collect();
    let mut routes = HashMap::new();
    let mut methods = MethodTable::generated();
    local.schema.extend_table(&mut methods);
    let mut files: BTreeMap<String, Bytes> = local.files.clone();
    for entry in entries {
        let d = entry.descriptors.lock().unwrap_or_else(PoisonError::into_inner);
        for service in &d.services {
            if let Some(first) = home.get(service) {
                let e = CatalogError::Duplicate {
                    service: service.clone(),
                    first: first.clone(),
                    second: format!("upstream {}", entry.upstream.name()),
                };
                match conflicts {
                    Conflicts::Fail => return Err(e),
                    Conflicts::KeepFirst => {
                        tracing::error!(error = %e, "refresh: the service stays where it was");
                        continue;
                    }
                }
            }
            home.insert(service.clone(), format!("upstream {}", entry.upstream.name()));
            routes.insert(service.clone(), entry.upstream.clone());
            // The upstream's own descriptors are the truth for its services, even where
            // portway has generated code for a service of the same name.
            for m in d.schema.service_methods(service) {
                methods.insert(m);
            }
        }
        for (name, raw) in &d.files {
            files.entry(name.clone()).or_insert_with(|| raw.clone());
        }
    }
    let mut names: Vec<&str> = home.keys().map(String::as_str).collect();
    names.extend(OWN_SERVICES);
    let reflection = reflection_routes(&files, &names)?;
    Ok(State { routes, reflection, methods: Arc::new(methods) })
}

/// Reflection v1 and v1alpha over `files`, listing `names`.
fn reflection_routes(files: &BTreeMap<String, Bytes>, names: &[&str]) -> Result<Routes, CatalogError> {
    // A FileDescriptorSet is its files, each a length-delimited field 1: kept as they came
    // (custom options included), not decoded and encoded again.
    let mut set = Vec::new();
    for raw in files.values() {
        prost::encoding::bytes::encode(1, raw, &mut set);
    }
    let builder = || {
        // Both reflection versions' own descriptors in both services: a client that lists
        // every method (`buf curl --list-methods`) asks each for the other too.
        let mut b = tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(&set)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
        for n in names {
            b = b.with_service_name(*n);
        }
        b
    };
    let mut routes = Routes::builder();
    routes.add_service(builder().build_v1()?);
    routes.add_service(builder().build_v1alpha()?);
    Ok(routes.routes().prepare())
}
