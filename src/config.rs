//! Gateway configuration: plain structs with documented defaults. The CLI (`main.rs`)
//! parses flags and environment variables into these; the library never reads either.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

/// [`Config::validate`] and its error.
pub mod validate;

/// Everything the gateway can be told. Start from [`Config::default`] and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The largest message, in bytes, that any protocol accepts from a client or relays
    /// to one; an oversized message fails the call with `RESOURCE_EXHAUSTED`. Messages the
    /// gateway decompresses itself (Connect) are measured after decompression; native gRPC
    /// and gRPC-Web messages as sent. Default: 4 MiB, tonic's own default.
    pub max_message_bytes: usize,
    /// An upper bound on every call's deadline, and the deadline of calls that set none.
    /// Default: `None` (calls without a deadline may run forever, e.g. watches).
    pub max_call_timeout: Option<Duration>,
    /// Cross-origin rules for browsers.
    pub cors: CorsConfig,
    /// Listener and connection settings.
    pub http: HttpConfig,
    /// The directory of static files served at `/`. Default: `None` (no static files;
    /// `/healthz` and `/metrics` are still served).
    pub web_root: Option<PathBuf>,
    /// Serve the demo page embedded in the binary at `/` (with `web_root` set, that
    /// directory replaces the page's own files; its libraries under `/vendor/` and the schema
    /// at `/portway.binpb` are still served). Default: `false`; the `portway` binary sets it.
    pub demo: bool,
    /// The multiplexed JSON-over-WebSocket protocol (`docs/websocket-protocol.md`).
    pub websocket: WebSocketConfig,
    /// The deepest nesting of objects and arrays in a JSON message a client sends (Connect,
    /// WebSocket, every JSON path): a message's own braces are level 1. Deeper messages fail
    /// with `INVALID_ARGUMENT` before they are parsed. The JSON parser stops at 127 levels
    /// whatever this says. Default: 64 (a state store value at its own depth limit, 31, fits in
    /// every request that carries one).
    pub max_json_depth: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_call_timeout: None,
            cors: CorsConfig::default(),
            http: HttpConfig::default(),
            web_root: None,
            demo: false,
            websocket: WebSocketConfig::default(),
            max_json_depth: crate::protojson::DEFAULT_MAX_DEPTH,
        }
    }
}

/// Which browser origins may call the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin (the default): fine for public APIs that authenticate with headers, since
    /// credentials (cookies) are then never allowed cross-origin.
    #[default]
    Any,
    /// Only these origins (e.g. `https://app.example.com`); credentials may be enabled.
    List(Vec<HeaderValue>),
}

/// CORS settings. Preflights are answered for every protocol.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CorsConfig {
    /// Allowed origins. Default: [`AllowedOrigins::Any`].
    pub allowed_origins: AllowedOrigins,
    /// Allow cookies and HTTP auth cross-origin. Only honoured with an origin list.
    /// Default: `false`.
    pub allow_credentials: bool,
    /// Response headers browsers may read besides the protocol's own (`grpc-status`,
    /// `grpc-message`, `grpc-status-details-bin`, Connect's): name your custom metadata here.
    /// Default: none.
    pub expose_headers: Vec<HeaderName>,
    /// How long browsers may cache a preflight. Default: 2 hours (Chromium's cap).
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: AllowedOrigins::Any,
            allow_credentials: false,
            expose_headers: Vec::new(),
            max_age: Duration::from_secs(2 * 3600),
        }
    }
}

/// Listener and HTTP connection settings: how many connections, and how long each phase of
/// a connection may take. Every byte from a client is hostile; each setting bounds what a
/// client that sends nothing, sends slowly or reads slowly can hold (see
/// `docs/robustness.md`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Open connections in total (WebSockets upgraded from HTTP/1.1 included). Admission is a
    /// semaphore: a connection holds one permit until its socket is closed. When all are
    /// taken, see [`HttpConfig::reclaim_after`]. Default: 10,000.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv4 address, or an IPv6 /64 prefix, the
    /// smallest block a single host is usually given). A connection beyond it is closed at
    /// once. Default: 256.
    pub max_connections_per_address: usize,
    /// The reserve. When `max_connections` are open, a new connection takes the slot of the
    /// open connection that has gone longest without progress (a request begun, request
    /// body bytes received, response bytes taken by the client), if that is longer than
    /// this; connections without an open request go first. An attacker holding slots with
    /// idle, slow or stalled connections therefore cannot keep a new client out: the new
    /// client replaces one of them at once. `None`: refuse new connections while full.
    /// Default: 1 s.
    pub reclaim_after: Option<Duration>,
    /// Time from accept until the connection shows which protocol it speaks: the first byte
    /// of an HTTP/1.1 request, or the whole 24-byte HTTP/2 preface. Silent connections and
    /// half prefaces are closed when it passes. Default: 10 s.
    pub first_byte_timeout: Duration,
    /// Time allowed for a TLS handshake, counted from the first byte of its ClientHello (the
    /// time before it is `first_byte_timeout`'s). A handshake that does not complete in time
    /// closes the connection. Only used with TLS. Default: 10 s.
    pub tls_handshake_timeout: Duration,
    /// Time allowed to receive a request's headers: an HTTP/1.1 request head (counted from
    /// when the connection is ready for the next request, so it also closes HTTP/1.1
    /// keep-alive connections idle for this long), or an HTTP/2 header block (a HEADERS
    /// frame and its CONTINUATION frames). Default: 30 s.
    pub header_read_timeout: Duration,
    /// A request body that delivers no bytes for this long fails (the call ends with an
    /// error, an HTTP/2 stream is reset, an HTTP/1.1 connection is closed). It applies to
    /// every HTTP/1.1 body and to HTTP/2 bodies that are not client streams (native gRPC and
    /// Connect streaming may be quiet for as long as their deadline allows: they hold a
    /// stream, not a connection). Default: 30 s.
    pub body_timeout: Duration,
    /// A connection whose client accepts no response bytes for this long while a response is
    /// waiting (the socket does not drain, or HTTP/2 flow control stays closed) is closed.
    /// Default: 30 s.
    pub write_timeout: Duration,
    /// A connection with no open request or stream for this long is closed (HTTP/2: with
    /// GOAWAY). HTTP/1.1 connections are also bounded by `header_read_timeout` between
    /// requests. Default: 120 s.
    pub idle_timeout: Duration,
    /// HTTP/2 keepalive ping interval; `None` disables pings. Default: 30 s.
    pub http2_keepalive_interval: Option<Duration>,
    /// How long to wait for a keepalive ping's answer before closing. Default: 20 s.
    pub http2_keepalive_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection, advertised in SETTINGS (never unlimited).
    /// Default: 256.
    pub http2_max_concurrent_streams: u32,
    /// Largest request header list, in bytes: HTTP/2 (advertised in SETTINGS; over it, 431)
    /// and HTTP/1.1 (the request line and headers; over it, 431 and close). Default: 16 KiB.
    pub max_header_list_bytes: u32,
    /// HTTP/2 "rapid reset" guard: streams the client opened and reset before they were
    /// served that may be pending at once; beyond it, GOAWAY `ENHANCE_YOUR_CALM`. Default: 20.
    pub http2_max_pending_accept_reset_streams: usize,
    /// HTTP/2 guard against clients that make the server reset streams (stream errors it
    /// provokes); beyond it, GOAWAY `ENHANCE_YOUR_CALM`. Default: 1,024.
    pub http2_max_local_error_reset_streams: usize,
    /// Response bytes buffered per HTTP/2 stream beyond what the client's window admits.
    /// Default: 400 KiB.
    pub http2_max_send_buf_bytes: usize,
    /// HTTP/1.1: after a response sent before the request body was read (an early error), up
    /// to this many unread body bytes are read and discarded so that the connection can be
    /// reused. A body known to be longer (or of unknown length) gets `connection: close`
    /// instead. Default: 256 KiB.
    pub http1_max_drain_bytes: usize,
    /// When the server closes an HTTP/1.1 connection, it first shuts down its sending side,
    /// then reads and discards what the client still sends for up to this long, so that a
    /// client still writing its request reads the response instead of a connection reset.
    /// Default: 2 s.
    pub close_linger: Duration,
    /// Graceful shutdown: once it begins, new connections are no longer accepted, open
    /// connections are closed after their current response (HTTP/2: GOAWAY), streams in
    /// progress end with `UNAVAILABLE` and WebSockets close with 1001; unary calls may finish
    /// for this long. The server returns as soon as the last connection has closed, or when
    /// this has passed. Default: 10 s.
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_address: 256,
            reclaim_after: Some(Duration::from_secs(1)),
            first_byte_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(20),
            http2_max_concurrent_streams: 256,
            max_header_list_bytes: 16 * 1024,
            http2_max_pending_accept_reset_streams: 20,
            http2_max_local_error_reset_streams: 1024,
            http2_max_send_buf_bytes: 400 * 1024,
            http1_max_drain_bytes: 256 * 1024,
            close_linger: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Limits and timers of the WebSocket protocol (`portway.v1.json`, see
/// `docs/websocket-protocol.md`). Every limit answers a misbehaving or dead client with a
/// clear error instead of unbounded memory or a hung socket.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebSocketConfig {
    /// The one path that accepts WebSocket upgrades; an upgrade to any other path is
    /// answered 404. Default: `/ws`.
    pub path: String,
    /// The largest message JSON text a client may send in one frame; a larger one ends its
    /// call with `resource_exhausted`, the socket stays open. The decoded message is held to
    /// [`Config::max_message_bytes`] whatever this is. `None`: the JSON text bound of that
    /// limit (twice it plus 64 KiB), so every message within the limit fits. Default: `None`.
    pub max_message_bytes: Option<usize>,
    /// The largest WebSocket frame read at all. A frame beyond it cannot be skipped, so the
    /// socket is closed with code 1009. `None`: the JSON text limit plus 64 KiB, so a
    /// message somewhat over its limit still gets a per-call error. Default: `None`.
    pub max_frame_bytes: Option<usize>,
    /// Calls open at once on one socket; an `open` beyond it is refused with
    /// `resource_exhausted`. A call counts until its task has ended (its `status` handed to
    /// the socket's writer), cancelled calls included, so it also bounds the tasks and memory
    /// of a socket whose client does not read. Default: 100.
    pub max_calls_per_socket: usize,
    /// Open sockets in total; upgrades beyond it are answered HTTP 503 before the
    /// handshake. Default: 10,000.
    pub max_sockets: usize,
    /// How often the server sends a `heartbeat` frame and a WebSocket ping, so that both
    /// ends can tell a live peer from a dead one. Default: 30 s.
    pub heartbeat_interval: Duration,
    /// A socket from which nothing (no frame, no pong) has arrived for this long is
    /// closed with code 4000; so is one that cannot be written for this long. Browsers
    /// answer the server's pings on their own, so a live page is never idle. Keep it
    /// above `heartbeat_interval`. Default: 75 s.
    pub idle_timeout: Duration,
    /// Flow control: the messages each side may send on a call before the other grants
    /// more (the client may choose its own in the `open` frame). Minimum 1. Default: 16.
    pub initial_credit: u32,
    /// The WebSocket read buffer, allocated for every socket and filled at its first read, so
    /// each socket holds this much memory: small keeps idle sockets cheap (tungstenite's own
    /// default is 128 KiB). At most [`validate::MAX_WS_BUFFER_BYTES`]. Default: 8 KiB.
    pub read_buffer_bytes: usize,
    /// Frames are written to the socket once more than this many bytes are buffered, or when
    /// no more frames are waiting (0: each frame on its own). At most
    /// [`validate::MAX_WS_BUFFER_BYTES`]. Default: 8 KiB.
    pub write_buffer_bytes: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            path: "/ws".to_string(),
            max_message_bytes: None,
            max_frame_bytes: None,
            max_calls_per_socket: 100,
            max_sockets: 10_000,
            heartbeat_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            initial_credit: 16,
            read_buffer_bytes: 8 * 1024,
            write_buffer_bytes: 8 * 1024,
        }
    }
}

/// TLS on the listener. Build one with [`TlsConfig::files`] or [`TlsConfig::self_signed`], then
/// load it with `portway::tls::Tls::load`, which reads and checks the files.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsConfig {
    /// Where the server's certificate comes from.
    pub certificate: CertificateSource,
    /// PEM file of the certificate authorities that client certificates must chain to
    /// (mutual TLS). `None`: no client certificates are asked for. Default: `None`.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether a client must present a certificate. Default:
    /// [`ClientAuth::Required`].
    pub client_auth: ClientAuth,
    /// Also serve cleartext HTTP/1.1 and HTTP/2 on the same port, told apart from TLS by the
    /// first byte (a TLS handshake begins with 0x16, no HTTP request does). Default: `false`:
    /// a cleartext HTTP/1.1 request is answered `400` with a sentence that says to use
    /// `https://`, anything else is closed.
    pub allow_cleartext: bool,
}

impl TlsConfig {
    /// TLS with a certificate chain and its private key, both PEM files (the chain: the
    /// server's certificate first, then its intermediates; the key: PKCS#8, PKCS#1 or SEC1).
    /// Both are read again on `Tls::reload`.
    pub fn files(chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self::with(CertificateSource::Files { chain: chain.into(), key: key.into() })
    }

    /// TLS with a certificate generated at start-up for `localhost`, `127.0.0.1` and `::1`,
    /// signed by itself: for local use (browsers warn, `curl` needs `--insecure`).
    pub fn self_signed() -> Self {
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        Self::with(CertificateSource::SelfSigned { names })
    }

    fn with(certificate: CertificateSource) -> Self {
        Self { certificate, client_ca: None, client_auth: ClientAuth::Required, allow_cleartext: false }
    }
}

/// Where a TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateSource {
    /// PEM files: the certificate chain (leaf first) and its private key.
    Files {
        /// The certificate chain.
        chain: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// Generated at start-up, signed by itself, for these DNS names and IP addresses.
    SelfSigned {
        /// The names the certificate is valid for.
        names: Vec<String>,
    },
}

/// Whether clients must present a certificate when a client CA is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// The handshake fails without a certificate that chains to the client CA.
    #[default]
    Required,
    /// A client may present no certificate (it then has no identity); one that it presents
    /// must chain to the client CA.
    Optional,
}
