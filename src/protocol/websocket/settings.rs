//! What the WebSocket adapter takes from the gateway's [`Config`], resolved once, and what
//! every session and call inherits.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use crate::config::{AllowedOrigins, Config};
use crate::drain::Shutdown;
use crate::transcode::{Invoker, limits};

/// The numbers a session enforces, resolved from [`crate::config::WebSocketConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Largest message JSON a client may send (the decoded message is held to the gateway's
    /// message limit, [`Self::max_decoded_bytes`], by the stack).
    pub max_message_bytes: usize,
    /// Calls open at once.
    pub max_calls: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Silence (or a stuck write) after which the socket is closed.
    pub idle_timeout: Duration,
    /// Per-call credit, both directions.
    pub initial_credit: u32,
    /// The gateway's message limit, on decoded messages in both directions.
    pub max_decoded_bytes: usize,
}

impl Limits {
    /// What `hello` announces as `maxMessageBytes`: the smaller of the JSON text limit and
    /// the decoded message limit, so that a message within it both ways is always accepted.
    pub(crate) fn announced_message_bytes(&self) -> usize {
        self.max_message_bytes.min(self.max_decoded_bytes)
    }

    pub(crate) fn from_config(config: &Config) -> Self {
        let ws = &config.websocket;
        Self {
            max_message_bytes: json_limit(config),
            max_calls: ws.max_calls_per_socket,
            // A zero interval would spin (and tokio refuses it).
            heartbeat: ws.heartbeat_interval.max(Duration::from_millis(1)),
            idle_timeout: ws.idle_timeout.max(Duration::from_millis(1)),
            initial_credit: ws.initial_credit.max(1),
            max_decoded_bytes: config.max_message_bytes,
        }
    }
}

/// Which browser origins may open sockets, and whether their cookies count.
#[derive(Debug, Clone)]
pub(crate) struct OriginPolicy {
    pub allowed: AllowedOrigins,
    pub allow_credentials: bool,
}

/// Everything the adapter needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The one path that accepts upgrades.
    pub path: String,
    pub limits: Limits,
    pub origins: OriginPolicy,
    /// Open sockets in total.
    pub max_sockets: usize,
    /// The largest WebSocket frame read at all.
    pub max_frame_bytes: usize,
    pub read_buffer_bytes: usize,
    pub write_buffer_bytes: usize,
}

impl Settings {
    pub(crate) fn from_config(config: &Config) -> Self {
        let ws = &config.websocket;
        Self {
            path: ws.path.clone(),
            limits: Limits::from_config(config),
            origins: OriginPolicy {
                allowed: config.cors.allowed_origins.clone(),
                allow_credentials: config.cors.allow_credentials,
            },
            max_sockets: ws.max_sockets,
            max_frame_bytes: frame_limit(config),
            read_buffer_bytes: ws.read_buffer_bytes,
            write_buffer_bytes: ws.write_buffer_bytes,
        }
    }
}

/// The largest message JSON a client may send: by default the JSON text bound of the
/// gateway's message limit (`crate::transcode::limits::json_text`), so that every message
/// within the limit fits.
fn json_limit(config: &Config) -> usize {
    config.websocket.max_message_bytes.unwrap_or_else(|| limits::json_text(config.max_message_bytes))
}

/// The largest WebSocket frame read at all: by default the JSON limit plus 64 KiB (the
/// frame's envelope, and a margin), so a message somewhat over its limit still gets a
/// per-call error.
fn frame_limit(config: &Config) -> usize {
    config.websocket.max_frame_bytes.unwrap_or_else(|| json_limit(config).saturating_add(64 * 1024))
}

/// What every call on a socket inherits from the upgrade request.
pub(crate) struct SessionContext<S> {
    /// The stack and the method table.
    pub invoker: Invoker<S>,
    /// Connection-level metadata (upgrade headers, cookies when trusted, the bearer token).
    pub metadata: HeaderMap<HeaderValue>,
    /// Request extensions carried into every call (the peer address, the protocol).
    pub extensions: http::Extensions,
    /// The limits in force.
    pub limits: Limits,
    /// The gateway's drain switch (`drain`).
    pub shutdown: Shutdown,
}
