//! The ephemeral backend: the engine already holds the whole state in memory, so there is
//! nothing to persist.

use super::{Backend, BackendError};
use crate::services::state::engine::{Commit, Snapshot};

/// Keeps nothing: the state lives only in the engine's memory and is gone on exit.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryBackend;

impl Backend for MemoryBackend {
    fn load(&self) -> Result<Snapshot, BackendError> {
        Ok(Snapshot::default())
    }

    fn commit(&self, _commit: &Commit) -> Result<(), BackendError> {
        Ok(())
    }

    fn blocking(&self) -> bool {
        false
    }
}
