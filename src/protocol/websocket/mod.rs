//! The multiplexed JSON-over-WebSocket protocol, `portway.v1.json`: all four RPC kinds for
//! browsers, many calls on one socket, flow control both ways, heartbeats. The protocol is
//! specified in `docs/websocket-protocol.md`.
//!
//! - [`upgrade`]: the handshake (HTTP/1.1 `Upgrade` and HTTP/2 extended `CONNECT`), the
//!   socket limit, subprotocol and origin checks, connection-level metadata;
//! - [`session`]: one socket's frames, call table, heartbeats and idle timeout, over any
//!   `Sink`/`Stream` of WebSocket messages;
//! - `call`: one call's task, which runs it on the service stack in-process under credit-based
//!   flow control;
//! - [`frames`]: the JSON frames.

mod call;
pub mod frames;
pub mod session;
pub mod upgrade;

pub use upgrade::upgrade;
