//! Proxy mode's errors.

use super::descriptors::DescriptorsError;
use super::reflect::ReflectError;

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

/// An error and its causes, as one sentence (`transport error: connection refused`).
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
