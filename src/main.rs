//! The `portway` binary: parses flags and environment variables, binds the listener,
//! mounts the services and hands everything to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[path = "cli/auth.rs"]
mod auth_args;
use http::{HeaderName, HeaderValue};
use portway::config::{AllowedOrigins, Config};
use portway::proxy::{Catalog, Local, ProxyConfig, Target, UpstreamConfig};
use portway::services::ServiceOptions;
use portway::services::state::{StateOptions, StorageKind};

use cli::listen::ListenArgs;
use cli::signals::{StopSignals, reload_on_hangup, shutdown_signal};

/// Parts of the command line with a file of their own (the binary's, not the library's).
mod cli {
    pub(crate) mod listen;
    pub(crate) mod signals;
}

/// One port, every client: native gRPC, gRPC-Web, Connect/JSON and WebSocket in front of
/// one tonic service stack.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A TOML file of settings: keys are the long flag names (`max-message-bytes = 8388608`,
    /// or `[ws]` then `max-calls = 200`). A flag wins over its PORTWAY_* variable, which wins
    /// over the file.
    #[arg(long, env = "PORTWAY_CONFIG")]
    config: Option<PathBuf>,

    /// Mount the gRPC interop test service (grpc.testing.TestService).
    #[arg(long, env = "PORTWAY_INTEROP")]
    interop: bool,

    /// Directory of static files served at `/` instead of the demo page embedded in the
    /// binary (its libraries under /vendor/ and /portway.binpb are still served).
    #[arg(long, env = "PORTWAY_WEB_DIR")]
    web_dir: Option<PathBuf>,

    /// Largest message, in bytes, accepted or sent on any protocol: the message decoded
    /// (binary protobuf, after decompression), whatever its codec and compression.
    #[arg(long, help_heading = "Limits", env = "PORTWAY_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_message_bytes: usize,

    /// Deepest nesting of objects and arrays in a client's JSON message (1 to 127).
    #[arg(long, help_heading = "Limits", env = "PORTWAY_MAX_JSON_DEPTH", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=127))]
    max_json_depth: u64,

    /// Upper bound on every call's deadline, in milliseconds (also the deadline of calls
    /// that set none). Unset: no bound.
    #[arg(long, help_heading = "Limits", env = "PORTWAY_MAX_CALL_TIMEOUT_MS")]
    max_call_timeout_ms: Option<u64>,

    /// Browser origin allowed to call (repeatable). Unset: any origin, without credentials.
    #[arg(long = "cors-origin", help_heading = "Browsers (CORS)", env = "PORTWAY_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,

    /// Allow credentials (cookies) cross-origin; needs --cors-origin.
    #[arg(long, help_heading = "Browsers (CORS)", env = "PORTWAY_CORS_CREDENTIALS", requires = "cors_origins")]
    cors_credentials: bool,

    /// Extra response header browsers may read (repeatable), e.g. your custom metadata.
    #[arg(
        long = "cors-expose-header",
        help_heading = "Browsers (CORS)",
        env = "PORTWAY_CORS_EXPOSE_HEADERS",
        value_delimiter = ','
    )]
    cors_expose_headers: Vec<String>,

    #[command(flatten)]
    listen: ListenArgs,

    #[command(flatten)]
    conn: ConnArgs,

    #[command(flatten)]
    state: StateArgs,

    #[command(flatten)]
    ws: WsArgs,

    #[command(flatten)]
    auth: auth_args::AuthArgs,

    #[command(flatten)]
    proxy: ProxyArgs,

    #[command(flatten)]
    observe: ObserveArgs,
}

/// Proxy mode: gRPC servers elsewhere, served on this port over every protocol
/// (docs/proxy.md).
#[derive(Debug, clap::Args)]
struct ProxyArgs {
    /// A gRPC server to serve through portway: `[NAME=]URL`, URL `http://HOST:PORT`,
    /// `https://HOST:PORT` or `unix:/PATH` (repeatable). The same NAME given again adds an endpoint to that upstream
    /// (calls are balanced across them). Its services are found by server reflection, or
    /// read from --descriptor-set.
    #[arg(long = "upstream", env = "PORTWAY_UPSTREAMS", value_delimiter = ',', value_name = "[NAME=]URL")]
    upstreams: Vec<String>,

    /// A FileDescriptorSet (`buf build -o FILE`, `protoc --include_imports
    /// --descriptor_set_out=FILE`) with an upstream's services, for upstreams without
    /// reflection: `[NAME=]FILE` (repeatable; NAME may be left out when there is one upstream).
    #[arg(long = "descriptor-set", env = "PORTWAY_DESCRIPTOR_SETS", value_delimiter = ',', value_name = "[NAME=]FILE")]
    descriptor_sets: Vec<String>,

    /// The CA certificates (PEM) that sign an `https://` upstream's certificate: `[NAME=]FILE`
    /// (repeatable; NAME may be left out when there is one upstream). Without one, the
    /// system's roots.
    #[arg(long = "upstream-ca", env = "PORTWAY_UPSTREAM_CAS", value_delimiter = ',', value_name = "[NAME=]FILE")]
    upstream_cas: Vec<String>,

    /// Ask the upstreams for their services again every N seconds (also on SIGHUP); 0: only
    /// on SIGHUP.
    #[arg(long = "upstream-refresh-secs", env = "PORTWAY_UPSTREAM_REFRESH_SECS", default_value_t = 300)]
    upstream_refresh_secs: u64,

    /// Longest wait for an upstream's reflection to answer, in milliseconds.
    #[arg(long = "upstream-discovery-timeout-ms", env = "PORTWAY_UPSTREAM_DISCOVERY_TIMEOUT_MS",
          default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    upstream_discovery_timeout_ms: u64,

    /// Longest wait for a connection to an upstream, in milliseconds.
    #[arg(long = "upstream-connect-timeout-ms", env = "PORTWAY_UPSTREAM_CONNECT_TIMEOUT_MS",
          default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    upstream_connect_timeout_ms: u64,

    /// How often each upstream's health is checked, in milliseconds (sooner while it is down).
    #[arg(long = "upstream-health-interval-ms", env = "PORTWAY_UPSTREAM_HEALTH_INTERVAL_MS",
          default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    upstream_health_interval_ms: u64,
}

impl ProxyArgs {
    /// The proxy configuration, or `None` without upstreams.
    fn config(&self, max_call_timeout: Option<Duration>) -> Result<Option<ProxyConfig>, String> {
        if self.upstreams.is_empty() {
            return match self.descriptor_sets.is_empty() && self.upstream_cas.is_empty() {
                true => Ok(None),
                false => Err("--descriptor-set and --upstream-ca describe an upstream: give it with --upstream".into()),
            };
        }
        let mut upstreams: Vec<UpstreamConfig> = Vec::new();
        for given in &self.upstreams {
            let (name, url) = named(given);
            let target: Target = url.parse().map_err(|e: portway::proxy::TargetError| e.to_string())?;
            let name = name.map_or_else(|| target.to_string(), str::to_owned);
            match upstreams.iter_mut().find(|u| u.name == name) {
                Some(u) => u.targets.push(target),
                None => upstreams.push(UpstreamConfig::new(name, vec![target])),
            }
        }
        for (flag, values) in [("--descriptor-set", &self.descriptor_sets), ("--upstream-ca", &self.upstream_cas)] {
            for given in values {
                let (name, file) = named(given);
                let upstream = match name {
                    Some(name) => upstreams.iter_mut().find(|u| u.name == name),
                    None if upstreams.len() == 1 => upstreams.first_mut(),
                    None => return Err(format!("{flag} {file}: name its upstream (NAME={file}): there are several")),
                };
                let upstream = upstream.ok_or_else(|| format!("{flag} {given}: no upstream has that name"))?;
                let slot = if flag == "--upstream-ca" { &mut upstream.ca } else { &mut upstream.descriptor_set };
                *slot = Some(PathBuf::from(file));
            }
        }
        let mut config = ProxyConfig::default();
        config.upstreams = upstreams;
        config.refresh_interval =
            (self.upstream_refresh_secs > 0).then(|| Duration::from_secs(self.upstream_refresh_secs));
        config.discovery_timeout = Duration::from_millis(self.upstream_discovery_timeout_ms);
        config.connect_timeout = Duration::from_millis(self.upstream_connect_timeout_ms);
        config.health_interval = Duration::from_millis(self.upstream_health_interval_ms);
        config.max_call_timeout = max_call_timeout;
        Ok(Some(config))
    }
}

/// `NAME=VALUE` → (Some(NAME), VALUE); a value without a name (a URL's `:` and `/` come
/// before any `=`) → (None, VALUE).
fn named(given: &str) -> (Option<&str>, &str) {
    match given.split_once('=') {
        Some((name, value)) if !name.is_empty() && !name.contains([':', '/']) => (Some(name), value),
        _ => (None, given),
    }
}

/// Logs, audit records and metrics (docs/observability.md). What is logged is chosen by
/// `RUST_LOG` (default: `info,h2=warn,hyper=warn`).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Logs and metrics")]
struct ObserveArgs {
    /// Log format on stderr: `text` (colours only on a terminal) or `json` (one object per line).
    #[arg(long, env = "PORTWAY_LOG_FORMAT", value_enum, default_value_t = portway::logging::LogFormat::Text)]
    log_format: portway::logging::LogFormat,

    /// Log one audit record per call (request id, protocol, method, peer, key id, duration,
    /// status code), target `portway::audit`.
    #[arg(long, env = "PORTWAY_AUDIT_LOG")]
    audit_log: bool,

    /// Also serve `/metrics` on this address (e.g. an address only the monitoring network
    /// reaches). `/metrics` stays on the main port too; on both, an API key file's `exempt`
    /// list decides whether it needs a key (docs/auth.md).
    #[arg(long, env = "PORTWAY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

/// Connections: how many, and how long each phase may take (docs/robustness.md).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Connections")]
struct ConnArgs {
    /// Open connections in total. When all are taken, a new connection reclaims the slot of
    /// the stalest one (see --reclaim-after-ms).
    #[arg(long, env = "PORTWAY_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,

    /// Open connections from one client address (IPv4 address or IPv6 /64).
    #[arg(long, env = "PORTWAY_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_address: u64,

    /// While the connection table is full, a new connection takes the slot of the one that
    /// has made no progress for longest, if for at least this many milliseconds (0: never;
    /// new connections are refused while full).
    #[arg(long, env = "PORTWAY_RECLAIM_AFTER_MS", default_value_t = 1_000)]
    reclaim_after_ms: u64,

    /// Close a connection that has not shown its protocol (first byte of an HTTP/1.1
    /// request, or the whole HTTP/2 preface) within this many milliseconds.
    #[arg(long, env = "PORTWAY_FIRST_BYTE_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    first_byte_timeout_ms: u64,

    /// Time allowed for a request's headers (HTTP/1.1 head, HTTP/2 header block), in ms.
    #[arg(long, env = "PORTWAY_HEADER_READ_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: u64,

    /// A request body that delivers no bytes for this many milliseconds fails.
    #[arg(long, env = "PORTWAY_BODY_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_ms: u64,

    /// Close a connection whose client takes no response bytes for this many milliseconds.
    #[arg(long, env = "PORTWAY_WRITE_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    write_timeout_ms: u64,

    /// Close a connection with no open request or stream for this many milliseconds.
    #[arg(long, env = "PORTWAY_IDLE_TIMEOUT_MS", default_value_t = 120_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_ms: u64,

    /// HTTP/2 keepalive ping interval in milliseconds (0: no pings).
    #[arg(long, env = "PORTWAY_HTTP2_KEEPALIVE_MS", default_value_t = 30_000)]
    http2_keepalive_ms: u64,

    /// Close an HTTP/2 connection whose keepalive ping is unanswered this many milliseconds.
    #[arg(long, env = "PORTWAY_HTTP2_KEEPALIVE_TIMEOUT_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    http2_keepalive_timeout_ms: u64,

    /// Concurrent HTTP/2 streams per connection (advertised).
    #[arg(long, env = "PORTWAY_MAX_CONCURRENT_STREAMS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_streams: u32,

    /// Largest request header list in bytes (HTTP/1.1 and HTTP/2; over it: 431).
    #[arg(long, env = "PORTWAY_MAX_HEADER_LIST_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..))]
    max_header_list_bytes: u32,

    /// HTTP/2 rapid-reset guard: client-reset streams pending at once before GOAWAY.
    #[arg(long, env = "PORTWAY_HTTP2_MAX_PENDING_RESETS", default_value_t = 20)]
    http2_max_pending_resets: usize,

    /// HTTP/2: stream errors a client may provoke before GOAWAY.
    #[arg(long, env = "PORTWAY_HTTP2_MAX_ERROR_RESETS", default_value_t = 1024)]
    http2_max_error_resets: usize,

    /// Response bytes buffered per HTTP/2 stream beyond the client's window.
    #[arg(long, env = "PORTWAY_HTTP2_MAX_SEND_BUFFER_BYTES", default_value_t = 400 * 1024)]
    http2_max_send_buffer_bytes: usize,

    /// HTTP/1.1: unread request body bytes read and discarded after an early answer so the
    /// connection stays usable; a longer body gets `connection: close`.
    #[arg(long, env = "PORTWAY_HTTP1_MAX_DRAIN_BYTES", default_value_t = 256 * 1024)]
    http1_max_drain_bytes: usize,

    /// On close, read and discard what the client still sends for up to this many ms, so a
    /// client still writing reads the response instead of a reset.
    #[arg(long, env = "PORTWAY_CLOSE_LINGER_MS", default_value_t = 2_000)]
    close_linger_ms: u64,

    /// On SIGTERM/SIGINT, how long unary calls may finish, in milliseconds (streams end at
    /// once with UNAVAILABLE; the process exits when the last call has ended). A second
    /// signal exits at once.
    #[arg(long, env = "PORTWAY_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    shutdown_grace_ms: u64,

    /// The shutdown grace as a duration (`10s`, `1500ms`, `1m 30s`), in place of
    /// `--shutdown-grace-ms` (give one or the other).
    #[arg(long, env = "PORTWAY_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = humantime::parse_duration,
          conflicts_with = "shutdown_grace_ms")]
    shutdown_grace: Option<Duration>,
}

impl ConnArgs {
    fn apply(&self, http: &mut portway::config::HttpConfig) {
        let ms = Duration::from_millis;
        http.max_connections = usize::try_from(self.max_connections).unwrap_or(usize::MAX);
        http.max_connections_per_address = usize::try_from(self.max_connections_per_address).unwrap_or(usize::MAX);
        http.reclaim_after = (self.reclaim_after_ms > 0).then(|| ms(self.reclaim_after_ms));
        http.first_byte_timeout = ms(self.first_byte_timeout_ms);
        http.header_read_timeout = ms(self.header_read_timeout_ms);
        http.body_timeout = ms(self.body_timeout_ms);
        http.write_timeout = ms(self.write_timeout_ms);
        http.idle_timeout = ms(self.idle_timeout_ms);
        http.http2_keepalive_interval = (self.http2_keepalive_ms > 0).then(|| ms(self.http2_keepalive_ms));
        http.http2_keepalive_timeout = ms(self.http2_keepalive_timeout_ms);
        http.http2_max_concurrent_streams = self.max_concurrent_streams;
        http.max_header_list_bytes = self.max_header_list_bytes;
        http.http2_max_pending_accept_reset_streams = self.http2_max_pending_resets;
        http.http2_max_local_error_reset_streams = self.http2_max_error_resets;
        http.http2_max_send_buf_bytes = self.http2_max_send_buffer_bytes;
        http.http1_max_drain_bytes = self.http1_max_drain_bytes;
        http.close_linger = ms(self.close_linger_ms);
        http.shutdown_grace = self.shutdown_grace.unwrap_or(ms(self.shutdown_grace_ms));
    }
}

/// The state store (`portway.state.v1.StateService`). Defaults: see `StateOptions`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "State store")]
struct StateArgs {
    /// Directory of the durable state store (created if missing).
    #[arg(long, env = "PORTWAY_DATA_DIR", default_value = "portway-data")]
    data_dir: PathBuf,

    /// `durable` (redb under --data-dir, fsynced before a write is acknowledged) or
    /// `memory` (ephemeral).
    #[arg(long, env = "PORTWAY_STORAGE", value_enum, default_value_t = Storage::Durable)]
    storage: Storage,

    /// Longest state key, in bytes.
    #[arg(long, env = "PORTWAY_STATE_MAX_KEY_BYTES", default_value_t = 4 * 1024)]
    state_max_key_bytes: usize,

    /// Largest state value, in bytes (of its protobuf encoding).
    #[arg(long, env = "PORTWAY_STATE_MAX_VALUE_BYTES", default_value_t = 1024 * 1024)]
    state_max_value_bytes: usize,

    /// Deepest nesting of arrays and objects in a state value (`[1]` is 1). The default is
    /// the deepest every stored record and response can decode again; higher is refused.
    #[arg(long, env = "PORTWAY_STATE_MAX_VALUE_DEPTH", default_value_t = StateOptions::default().max_value_depth)]
    state_max_value_depth: usize,

    /// Most operations per transaction branch (and comparisons, and puts per PutMany).
    #[arg(long, env = "PORTWAY_STATE_MAX_TXN_OPS", default_value_t = 1024)]
    state_max_txn_ops: usize,

    /// Most watches open at once.
    #[arg(long, env = "PORTWAY_STATE_MAX_WATCHERS", default_value_t = 10_000)]
    state_max_watchers: usize,

    /// How many commits a watcher may fall behind before it is cut off (RESOURCE_EXHAUSTED).
    #[arg(long, env = "PORTWAY_STATE_WATCH_BUFFER", default_value_t = 1024)]
    state_watch_buffer: usize,

    /// Keep the events of the last N revisions (0: no bound by count).
    #[arg(long, env = "PORTWAY_STATE_HISTORY_REVISIONS", default_value_t = 100_000)]
    state_history_revisions: u64,

    /// Compact events older than this many seconds (0: no bound by age).
    #[arg(long, env = "PORTWAY_STATE_HISTORY_AGE_SECS", default_value_t = 24 * 3600)]
    state_history_age_secs: u64,

    /// Sequence numbers remembered per Sync session (deduplication window).
    #[arg(long, env = "PORTWAY_STATE_SESSION_WINDOW", default_value_t = 1024)]
    state_session_window: usize,

    /// Forget a Sync session idle for this many seconds.
    #[arg(long, env = "PORTWAY_STATE_SESSION_TTL_SECS", default_value_t = 24 * 3600)]
    state_session_ttl_secs: u64,

    /// Most Sync sessions remembered (the least recently active is forgotten first).
    #[arg(long, env = "PORTWAY_STATE_MAX_SESSIONS", default_value_t = 10_000)]
    state_max_sessions: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Storage {
    Durable,
    Memory,
}

impl StateArgs {
    fn options(&self) -> StateOptions {
        let mut o = StateOptions::default();
        o.storage = match self.storage {
            Storage::Durable => StorageKind::Durable,
            Storage::Memory => StorageKind::Memory,
        };
        o.data_dir = self.data_dir.clone();
        o.max_key_bytes = self.state_max_key_bytes;
        o.max_value_bytes = self.state_max_value_bytes;
        o.max_value_depth = self.state_max_value_depth;
        o.max_txn_ops = self.state_max_txn_ops;
        o.max_watchers = self.state_max_watchers;
        o.watch_buffer = self.state_watch_buffer;
        o.history_revisions = self.state_history_revisions;
        o.history_age = (self.state_history_age_secs > 0).then(|| Duration::from_secs(self.state_history_age_secs));
        o.session_window = self.state_session_window;
        o.session_ttl = Duration::from_secs(self.state_session_ttl_secs);
        o.max_sessions = self.state_max_sessions;
        o
    }
}

/// The WebSocket protocol's limits (docs/websocket-protocol.md).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "WebSocket")]
struct WsArgs {
    /// The path that accepts WebSocket upgrades.
    #[arg(long = "ws-path", env = "PORTWAY_WS_PATH", default_value = "/ws")]
    ws_path: String,

    /// Largest message JSON text a WebSocket client may send (the decoded message is held to
    /// --max-message-bytes). Unset: twice --max-message-bytes plus 64 KiB.
    #[arg(long = "ws-max-message-bytes", env = "PORTWAY_WS_MAX_MESSAGE_BYTES")]
    ws_max_message_bytes: Option<usize>,

    /// Largest WebSocket frame read at all; a larger one closes the socket (1009).
    /// Unset: the JSON text limit plus 64 KiB.
    #[arg(long = "ws-max-frame-bytes", env = "PORTWAY_WS_MAX_FRAME_BYTES")]
    ws_max_frame_bytes: Option<usize>,

    /// Calls open at once on one WebSocket.
    #[arg(long = "ws-max-calls", env = "PORTWAY_WS_MAX_CALLS", default_value_t = 100)]
    ws_max_calls: usize,

    /// WebSockets open in total; upgrades beyond it get HTTP 503.
    #[arg(long = "ws-max-sockets", env = "PORTWAY_WS_MAX_SOCKETS", default_value_t = 10_000)]
    ws_max_sockets: usize,

    /// Interval of heartbeat frames and pings, in milliseconds.
    #[arg(long = "ws-heartbeat-ms", env = "PORTWAY_WS_HEARTBEAT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    ws_heartbeat_ms: u64,

    /// Close a WebSocket from which nothing arrived for this long, in milliseconds.
    #[arg(long = "ws-idle-timeout-ms", env = "PORTWAY_WS_IDLE_TIMEOUT_MS", default_value_t = 75_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    ws_idle_timeout_ms: u64,

    /// Messages each side may send per call before the other grants more.
    #[arg(long = "ws-initial-credit", env = "PORTWAY_WS_INITIAL_CREDIT", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    ws_initial_credit: u32,

    /// WebSocket read buffer per socket, in bytes (memory each socket holds; at most 64 MiB).
    #[arg(long = "ws-read-buffer-bytes", env = "PORTWAY_WS_READ_BUFFER_BYTES", default_value_t = 8 * 1024)]
    ws_read_buffer_bytes: usize,

    /// Bytes buffered before a WebSocket write (frames are also written when none wait; 0:
    /// each frame on its own; at most 64 MiB).
    #[arg(long = "ws-write-buffer-bytes", env = "PORTWAY_WS_WRITE_BUFFER_BYTES", default_value_t = 8 * 1024)]
    ws_write_buffer_bytes: usize,
}

/// A start-up failure. `main` prints it with `{:?}`; this prints the error's own sentence
/// (portway's errors name their causes), not its structure.
struct Fatal(Box<dyn std::error::Error>);

impl<E: Into<Box<dyn std::error::Error>>> From<E> for Fatal {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Debug for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[tokio::main]
async fn main() -> Result<(), Fatal> {
    let args = match portway::settings_file::parse::<Args, _>(std::env::args_os(), "config") {
        Ok(args) => args,
        Err(portway::settings_file::ParseError::Clap(e)) => e.exit(),
        Err(e) => return Err(e.into()),
    };
    portway::logging::init(args.observe.log_format, args.observe.audit_log);
    let tls = args.listen.tls()?;
    if let Some(tls) = &tls {
        tracing::info!(
            fingerprint = %tls.fingerprint(),
            certificate = %tls.summary(),
            client_certificates = tls.asks_client_certificates(),
            cleartext = tls.allows_cleartext(),
            "TLS ready (SHA-256 fingerprint)"
        );
    }

    let mut config = Config::default();
    config.max_message_bytes = args.max_message_bytes;
    config.max_call_timeout = args.max_call_timeout_ms.map(Duration::from_millis);
    config.max_json_depth = usize::try_from(args.max_json_depth).unwrap_or(usize::MAX);
    args.conn.apply(&mut config.http);
    config.http.tls_handshake_timeout = Duration::from_millis(args.listen.tls_handshake_timeout_ms);
    let ws = &mut config.websocket;
    ws.path = args.ws.ws_path;
    ws.max_message_bytes = args.ws.ws_max_message_bytes;
    ws.max_frame_bytes = args.ws.ws_max_frame_bytes;
    ws.max_calls_per_socket = args.ws.ws_max_calls;
    ws.max_sockets = args.ws.ws_max_sockets;
    ws.heartbeat_interval = Duration::from_millis(args.ws.ws_heartbeat_ms);
    ws.idle_timeout = Duration::from_millis(args.ws.ws_idle_timeout_ms);
    ws.initial_credit = args.ws.ws_initial_credit;
    ws.read_buffer_bytes = args.ws.ws_read_buffer_bytes;
    ws.write_buffer_bytes = args.ws.ws_write_buffer_bytes;
    if !args.cors_origins.is_empty() {
        let origins = args
            .cors_origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| {
                    format!("the allowed origin (--cors-origin) `{o}` holds characters no header may hold")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        config.cors.allowed_origins = AllowedOrigins::List(origins);
        config.cors.allow_credentials = args.cors_credentials;
    }
    config.cors.expose_headers = args
        .cors_expose_headers
        .iter()
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("the exposed header (--cors-expose-header) `{h}` is not a header name"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    config.web_root = args.web_dir;
    config.demo = true;
    config.validate()?;

    let mut options = ServiceOptions::default();
    options.interop = args.interop;
    options.max_message_bytes = args.max_message_bytes;
    options.state = args.state.options();
    let edge = args.auth.layers(args.max_message_bytes)?;
    let mounted = portway::services::mount(&options).await?;

    let metrics = std::sync::Arc::new(portway::metrics::Metrics::default());
    metrics.register(|registry| registry.register_collector(Box::new(mounted.state.metrics())));
    let observe =
        portway::ObserveLayer::new(&metrics, portway::ObserveLayer::known_methods()).audit(args.observe.audit_log);
    // The call metrics and the edge layers (auth, rate limits) go on whichever stack serves;
    // the metrics outermost, so that calls the edge layers refuse are counted and audited too.
    // All three share their state between clones, so the stack needs no buffer.
    macro_rules! with_edge {
        ($builder:expr) => {{
            let builder = $builder.metrics(metrics.clone()).shared_layer(observe);
            match edge {
                None => builder.build(),
                Some(auth_args::EdgeLayers { auth: Some(auth), rate }) => builder.auth(auth).shared_layer(rate).build(),
                Some(auth_args::EdgeLayers { auth: None, rate }) => builder.shared_layer(rate).build(),
            }
        }};
    }
    let proxy = args.proxy.config(config.max_call_timeout)?;
    let gateway = match proxy {
        None => with_edge!(portway::Gateway::builder(mounted.routes).config(config)),
        Some(proxy) => {
            let local = Local::discover(mounted.routes.clone(), &[], proxy.discovery_timeout).await?;
            let catalog = Catalog::start(proxy, local, mounted.health.clone()).await?;
            for (service, upstream) in catalog.routes() {
                tracing::info!(%service, %upstream, "proxying");
            }
            tokio::spawn(refresh_on_sighup(catalog.clone()));
            with_edge!(portway::Gateway::builder(mounted.routes).config(config).catalog(catalog))
        }
    };
    let grace = gateway.config().http.shutdown_grace;
    // Armed before the address is logged: from then on no signal is missed (SIGHUP's default
    // action would end the process).
    let stop = StopSignals::new()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let metrics_gateway = args.observe.metrics_listen.is_some().then(|| gateway.clone());
    let mut server = portway::Server::new(gateway);
    if let Some(tls) = tls {
        reload_on_hangup(tls.clone())?;
        server = server.tls(tls);
    }
    let listeners = portway::bind(&args.listen.listen).await.map_err(|e| match e {
        portway::BindError::Bind { .. } => format!("{e}; choose another address with --listen"),
        other => other.to_string(),
    })?;
    for listener in &listeners {
        let address = listener.local_addr()?;
        tracing::info!(%address, url = %format!("{scheme}://{address}/"), interop = args.interop, "portway listening");
    }
    if let (Some(addr), Some(gateway)) = (args.observe.metrics_listen, metrics_gateway) {
        let addr = addr.to_string();
        let listener = portway::bind(&[addr]).await.map_err(|e| match e {
            portway::BindError::Bind { .. } => format!("{e}; choose another address with --metrics-listen"),
            other => other.to_string(),
        })?;
        for listener in listener {
            tracing::info!(address = %listener.local_addr()?, "metrics listening");
            tokio::spawn(gateway.serve_metrics(listener));
        }
    }
    server.serve(listeners, shutdown_signal(stop, grace)).await?;
    // Every write acknowledged so far is on disk already; this lets the writer finish what
    // was queued and closes the database.
    mounted.state.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Asks the upstreams for their services again on every SIGHUP.
async fn refresh_on_sighup(catalog: Catalog) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: refreshing the upstreams' services");
            for failure in catalog.refresh().await {
                tracing::warn!(%failure, "refresh");
            }
            for (service, upstream) in catalog.routes() {
                tracing::info!(%service, %upstream, "proxying");
            }
            tracing::info!("upstreams refreshed");
        }
    }
    #[cfg(not(unix))]
    drop(catalog);
}
