//! Tower layers on the service stack. Each applies to every protocol, because every
//! protocol ends in the same stack.

pub mod audit;
pub mod auth;
mod call_state;
pub mod deadline;
pub mod limit;
pub mod observe;
mod observe_body;
pub mod panic;
pub mod rate;
pub(crate) mod shutdown;
