//! `portway.state.v1.StateService`: a durable, versioned key-value store for live
//! application state, with watches that resume without gaps. What `portway` serves by
//! default; see `docs/state-store.md` for the API by example.
//!
//! Layers, top to bottom:
//! - [`service`]: the tonic handlers (request checks in `convert`, streaming, the Sync
//!   session in `sync`);
//! - [`Store`]: the handle: reads from the committed in-memory state, writes through one
//!   group-committing writer task, watch fan-out through a bounded broadcast channel;
//! - [`engine`]: the semantics, shared by every backend: revisions, compare-and-set,
//!   transactions, the event log and its compaction, session deduplication;
//! - [`backend`]: where commits become durable: redb (embedded, fsynced) or memory;
//! - `load`: start-up, where a record that cannot be read back is reported and left out,
//!   and `depth`: how deeply a value may nest so that every stored value can be read back.

pub mod backend;
mod convert;
mod depth;
pub mod engine;
pub mod error;
mod load;
pub mod metrics;
pub mod options;
pub mod service;
pub mod store;
mod sync;

pub use engine::SkippedRecord;
pub use error::StoreError;
pub use load::OpenReport;
#[cfg(feature = "fuzzing")]
pub(crate) use load::state as load_snapshot;
pub use options::{StateOptions, StorageKind};
pub use service::{StateApi, service};
pub use store::{OpenError, Store, StoreStats};

/// The gRPC service name, for reflection and health.
pub const SERVICE_NAME: &str =
    <crate::pb::portway::state::v1::state_service_server::StateServiceServer<StateApi> as tonic::server::NamedService>::NAME;

#[cfg(test)]
mod tests;
