//! The state store (`portway.state.v1.StateService`) through a real gateway on a real
//! socket: native gRPC (tonic) and Connect JSON (HTTP/1.1), and a real `portway` process
//! killed with SIGKILL.

#[path = "../common/mod.rs"]
mod common;

use portway::pb::portway::state::v1 as api;
use portway::protojson::Value;

mod client;
mod corruption;
mod crash;
mod depth;
mod errors;
mod hostile;
mod model;
mod semantics;
mod sync;
mod trials;
mod watch;
