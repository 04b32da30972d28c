//! Tower layers on the service stack. Each applies to every protocol, because every
//! protocol ends in the same stack.

pub mod auth;
pub mod deadline;
pub mod limit;
pub mod rate;
pub(crate) mod shutdown;
