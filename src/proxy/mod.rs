//! Proxy mode: gRPC servers elsewhere (in any language), served on portway's port over every
//! protocol, with the JSON encodings derived from their descriptors at run time.
//!
//! - [`Catalog`]: every service and its descriptors (local and upstream), discovered by
//!   server reflection or from descriptor-set files, refreshed on demand;
//! - [`ProxyRouter`]: the bottom of the service stack, sending each call to its upstream
//!   (forwarded as native gRPC, undecoded) or to the local services;
//! - [`Target`]: an upstream's address; [`reflect`]: the reflection client.

mod body;
pub mod catalog;
mod config;
pub mod descriptors;
mod error;
mod health;
mod local;
mod merge;
pub mod reflect;
pub mod router;
mod state;
pub mod target;
pub mod upstream;

pub use catalog::{Catalog, CatalogError};
pub use config::{ProxyConfig, UpstreamConfig};
pub use descriptors::{Descriptors, DescriptorsError};
pub use local::Local;
pub use reflect::{ReflectError, Reflected, reflect};
pub use router::ProxyRouter;
pub use target::{Target, TargetError};
pub use upstream::Upstream;
