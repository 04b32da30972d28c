//! What a call needs from the catalog, built from every source's descriptors: the routes to
//! upstreams, the method table of the JSON protocols, and the merged reflection service.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tonic::service::Routes;

use super::config::UpstreamConfig;
use super::descriptors::{Descriptors, OWN_SERVICES};
use super::error::CatalogError;
use super::upstream::Upstream;
use crate::transcode::MethodTable;

/// One upstream of the catalog: its channels, its configuration, what it last said.
pub(super) struct Entry {
    pub(super) upstream: Arc<Upstream>,
    pub(super) config: UpstreamConfig,
    pub(super) descriptors: Mutex<Descriptors>,
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

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Conflicts {
    /// A service offered twice is an error (at start).
    Fail,
    /// A service offered twice stays with its first home (on refresh), logged.
    KeepFirst,
}

pub(super) fn build_state(local: &Descriptors, entries: &[Entry], conflicts: Conflicts) -> Result<State, CatalogError> {
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
