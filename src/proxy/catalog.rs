//! Every service portway serves, with its descriptors: the local ones (compiled in, or an
//! embedder's) and each upstream's, and what follows from them: which upstream a call goes
//! to, the method table of the JSON protocols, the merged server reflection, and health.
//!
//! Built once at start-up (discovery must succeed for every upstream, and a service offered
//! twice is an error naming both offers), then refreshed on demand ([`Catalog::refresh`],
//! SIGHUP in the binary) and on an interval: a refresh that finds a new method or service
//! serves it from then on; an upstream that cannot be asked keeps what it had.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use super::config::{ProxyConfig, UpstreamConfig};
use super::descriptors::Descriptors;
pub use super::error::CatalogError;
use super::health;
use super::local::Local;
use super::reflect::reflect;
use super::state::{Conflicts, Entry, State, build_state};
use super::target::ChannelOptions;
use super::upstream::Upstream;
use crate::transcode::{MethodTable, SharedMethods};

pub(super) struct Inner {
    config: ProxyConfig,
    local: Descriptors,
    entries: Vec<Entry>,
    state: RwLock<Arc<State>>,
    pub(super) health: HealthReporter,
    /// portway's health service, over `health`.
    health_service: HealthServer<HealthService>,
    /// The method table the gateway's JSON protocols read, replaced on refresh.
    methods: SharedMethods,
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
        let local = local.into_descriptors()?;
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
        let catalog = Self::assemble(config, local, entries, health)?;
        let inner = &catalog.inner;
        for entry in &inner.entries {
            inner.report(&entry.upstream).await;
            let (owner, upstream) = (Arc::downgrade(inner), entry.upstream.clone());
            let report = move |_up: bool| {
                let (owner, upstream) = (owner.clone(), upstream.clone());
                async move {
                    if let Some(inner) = owner.upgrade() {
                        inner.report(&upstream).await;
                    }
                }
            };
            let interval = inner.config.health_interval;
            let monitor = health::monitor(
                Arc::downgrade(inner),
                entry.upstream.clone(),
                interval,
                inner.config.connect_timeout,
                report,
            );
            tokio::spawn(monitor);
        }
        if let Some(every) = inner.config.refresh_interval
            && !inner.entries.is_empty()
        {
            tokio::spawn(refresh_every(Arc::downgrade(inner), every));
        }
        Ok(catalog)
    }

    /// A catalog of local services only, from their descriptor sets (what an embedder hands
    /// to `Gateway::builder`): no discovery, no background tasks.
    pub fn local(file_descriptor_sets: &[&[u8]], health: HealthReporter) -> Result<Self, CatalogError> {
        let local = Local::from_descriptor_sets(file_descriptor_sets)?;
        Self::assemble(ProxyConfig::default(), local.into_descriptors()?, Vec::new(), health)
    }

    fn assemble(
        config: ProxyConfig,
        local: Descriptors,
        entries: Vec<Entry>,
        health: HealthReporter,
    ) -> Result<Self, CatalogError> {
        let state = build_state(&local, &entries, Conflicts::Fail)?;
        let health_service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
        let methods = SharedMethods::default();
        methods.store(state.methods.clone());
        let state = RwLock::new(Arc::new(state));
        let inner = Arc::new(Inner { config, local, entries, state, health, health_service, methods });
        Ok(Self { inner })
    }

    pub(super) fn state(&self) -> Arc<State> {
        self.inner.state()
    }

    /// portway's health service (over the reporter the catalog was given).
    pub(super) fn health_service(&self) -> HealthServer<HealthService> {
        self.inner.health_service.clone()
    }

    /// Whether `service` is one of the services the catalog has descriptors for.
    pub(super) fn describes(&self, service: &str) -> bool {
        self.inner.local.services.iter().any(|s| s == service) || self.state().routes.contains_key(service)
    }

    /// Reports `service` as serving.
    pub(super) async fn report_serving(&self, service: &str) {
        self.inner.health.set_service_status(service, ServingStatus::Serving).await;
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

    /// The same table, as the gateway reads it: replaced whenever a refresh changes it.
    pub fn shared_methods(&self) -> SharedMethods {
        self.inner.methods.clone()
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
            Ok(state) => {
                inner.methods.store(state.methods.clone());
                *inner.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
            }
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
