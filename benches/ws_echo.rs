//! Run with: `cargo bench --bench ws_echo` (`PORTWAY_BENCH_QUICK=1` for a short run,
//! `PORTWAY_BENCH_ONLY=small|embedding|memory` for one part, `PORTWAY_BENCH_BUFFER_BYTES=N` to
//! try other WebSocket buffer sizes).
//!
//! The WebSocket protocol's cost, measured against a baseline in the same process:
//!
//! 1. per-connection bidi echo rate of small messages through portway (`portway.v1.json`, an
//!    in-process echo service on the real service stack) versus a minimal tokio-tungstenite
//!    echo server with the same buffer sizes, alternately A B A B; reports the ratio of medians;
//! 2. the same for a message carrying a 768-float embedding (`{"values":[...768 numbers]}`);
//! 3. memory per idle socket: the RSS growth of a separate `portway` process per socket, with
//!    10,000 sockets open (loopback only).
//!
//! Every client keeps a window of messages in flight, as a streaming client would.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use portway::Config;
use portway::transcode::{Idempotency, MethodDescriptor, MethodTable, RpcKind, codec};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

// ---------------------------------------------------------------------------------------
// A bidi echo service: `bench.Echo/Echo` streams every `Embedding` back.

/// `message Embedding { repeated float values = 1; bytes packed = 2; }`, with JSON read
/// and written the way the code `build.rs` generates does (numbers or numeric strings through
/// `portway::protojson::number`; bytes as base64), so the numbers measure what a service
/// compiled from a `.proto` would see. `packed` is the other way to carry an embedding:
/// little-endian floats as bytes, base64 in JSON.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Embedding {
    #[prost(float, repeated, tag = "1")]
    #[serde(default, deserialize_with = "pbjson_floats", skip_serializing_if = "Vec::is_empty")]
    values: Vec<f32>,
    #[prost(bytes = "vec", tag = "2")]
    #[serde(default, with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    packed: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine as _;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let b: pbjson::private::BytesDeserialize<Vec<u8>> = serde::Deserialize::deserialize(d)?;
        Ok(b.0)
    }
}

fn pbjson_floats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let v: Vec<portway::protojson::NumberDeserialize<f32>> = serde::Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(|n| n.0).collect())
}

#[derive(Clone)]
struct EchoServer;

impl tonic::server::NamedService for EchoServer {
    const NAME: &'static str = "bench.Echo";
}

struct EchoMethod;

impl tonic::server::StreamingService<Embedding> for EchoMethod {
    type Response = Embedding;
    type ResponseStream = tonic::Streaming<Embedding>;
    type Future = std::future::Ready<Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Embedding>>) -> Self::Future {
        // The request stream is the response stream: an echo.
        std::future::ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for EchoServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path() != "/bench.Echo/Echo" {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Embedding, Embedding>::default());
            Ok(grpc.streaming(EchoMethod, req).await)
        })
    }
}

/// The gateway with the echo service mounted, on 127.0.0.1:0.
async fn start_portway(config: Config) -> SocketAddr {
    let routes = tonic::service::Routes::new(EchoServer);
    let mut methods = MethodTable::generated();
    methods.insert(MethodDescriptor::new(
        "bench.Echo",
        "Echo",
        RpcKind::BidiStreaming,
        Idempotency::Unknown,
        codec::<Embedding>("bench.Embedding"),
        codec::<Embedding>("bench.Embedding"),
    ));
    let gateway = portway::Gateway::builder(routes).config(config).methods(methods).build();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(portway::serve(listener, gateway, std::future::pending()));
    addr
}

/// The baseline: a minimal tokio-tungstenite echo server with the same buffer sizes.
async fn start_baseline(read_buffer: usize, write_buffer: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let config = WebSocketConfig::default().read_buffer_size(read_buffer).write_buffer_size(write_buffer);
                let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else { return };
                let (tx, rx) = ws.split();
                // `forward` feeds each message and flushes when no more are ready.
                let _ = rx.forward(tx).await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------
// Clients.

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect(addr: SocketAddr, subprotocol: bool, read_buffer: usize) -> Client {
    let mut req = format!("ws://{addr}/ws").into_client_request().expect("request");
    if subprotocol {
        req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().expect("header"));
    }
    let config = WebSocketConfig::default().read_buffer_size(read_buffer).write_buffer_size(0);
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp), Some(config))
            .await
            .expect("handshake");
    ws
}

/// CPU time (user + system) this process has used so far: unlike wall time, it does not
/// grow when other work on the machine takes the cores.
fn cpu_time() -> Duration {
    clock(rustix::time::ClockId::ProcessCPUTime)
}

/// CPU time this thread has used so far.
fn thread_cpu_time() -> Duration {
    clock(rustix::time::ClockId::ThreadCPUTime)
}

fn clock(id: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(id);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// One round's result.
#[derive(Clone, Copy)]
struct Round {
    /// Messages per second of wall time.
    rate: f64,
    /// CPU time per message, both ends (client and server share this process), in µs.
    cpu_us: f64,
}

/// Echoes `count` messages through one connection, `window` in flight.
///
/// `portway`: speak `portway.v1.json` (open a bidi call, honour and grant credit); otherwise
/// send the same frames to the plain echo server.
async fn echo_rate(addr: SocketAddr, portway: bool, message_json: &str, count: u64, window: u64) -> Round {
    let mut ws = connect(addr, portway, 64 * 1024).await;
    let frame: Message = Message::text(format!(r#"{{"type":"message","id":1,"message":{message_json}}}"#));
    let mut send_credit = u64::MAX;
    if portway {
        let hello = ws.next().await.expect("hello").expect("hello");
        let hello: serde_json::Value = serde_json::from_str(hello.to_text().expect("text")).expect("json");
        send_credit = hello["initialCredit"].as_u64().expect("initialCredit");
        let open = format!(r#"{{"type":"open","id":1,"method":"/bench.Echo/Echo","credit":{window}}}"#);
        ws.send(Message::text(open)).await.expect("open");
    }
    let (start, cpu_start) = (Instant::now(), cpu_time());
    let (mut sent, mut received, mut ungranted) = (0u64, 0u64, 0u64);
    while received < count {
        let mut fed = false;
        while sent < count && sent - received < window && send_credit > 0 {
            ws.feed(frame.clone()).await.expect("send");
            sent += 1;
            send_credit -= 1;
            fed = true;
        }
        if fed {
            ws.flush().await.expect("flush");
        }
        let msg = ws.next().await.expect("open socket").expect("frame");
        let Message::Text(text) = msg else { continue };
        let text = text.as_str();
        if !portway || text.starts_with(r#"{"type":"message""#) {
            received += 1;
            if portway {
                ungranted += 1;
                if ungranted >= window / 2 {
                    ws.feed(Message::text(format!(r#"{{"type":"credit","id":1,"credit":{ungranted}}}"#)))
                        .await
                        .expect("credit");
                    ungranted = 0;
                }
            }
        } else if text.starts_with(r#"{"type":"credit""#) {
            let v: serde_json::Value = serde_json::from_str(text).expect("json");
            send_credit += v["credit"].as_u64().expect("credit");
        } else if !text.starts_with(r#"{"type":"headers""#) && !text.starts_with(r#"{"type":"heartbeat""#) {
            panic!("unexpected frame: {text}");
        }
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    let cpu_us = (cpu_time() - cpu_start).as_secs_f64() * 1e6 / count as f64;
    let _ = ws.close(None).await;
    Round { rate, cpu_us }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Alternates portway (A) and the baseline (B) and prints the medians and their ratio.
async fn alternate(portway: SocketAddr, baseline: SocketAddr, message: &str, count: u64, rounds: usize) {
    let window = 16;
    // Warm both up (connection setup, allocator, caches).
    echo_rate(portway, true, message, count / 4, window).await;
    echo_rate(baseline, false, message, count / 4, window).await;
    // For profiling portway alone.
    let skip_baseline = std::env::var("PORTWAY_BENCH_NO_BASELINE").is_ok_and(|v| v == "1");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(echo_rate(portway, true, message, count, window).await);
        if !skip_baseline {
            b.push(echo_rate(baseline, false, message, count, window).await);
        }
    }
    let show = |name: &str, v: &[Round]| {
        let rates: Vec<String> = v.iter().map(|r| format!("{:.0}", r.rate)).collect();
        println!("    {name} rounds (msg/s): {}", rates.join(" "));
    };
    show("portway ", &a);
    show("baseline", &b);
    let med = |v: &[Round], f: fn(&Round) -> f64| median(&mut v.iter().map(f).collect::<Vec<_>>());
    let (ra, ca) = (med(&a, |r| r.rate), med(&a, |r| r.cpu_us));
    println!("  portway  {ra:.0} msg/s, {ca:.1} µs CPU per message (both ends; {:.0} msg per CPU-second)", 1e6 / ca);
    if !b.is_empty() {
        let (rb, cb) = (med(&b, |r| r.rate), med(&b, |r| r.cpu_us));
        println!(
            "  baseline {rb:.0} msg/s, {cb:.1} µs CPU per message (both ends; {:.0} msg per CPU-second)",
            1e6 / cb
        );
        println!("  ratio of medians (portway/baseline): rate {:.2}, CPU per message {:.1}", ra / rb, ca / cb);
    }
}

// ---------------------------------------------------------------------------------------
// Memory per idle socket, in a separate gateway process.

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let raised = Rlimit { current: lim.maximum, maximum: lim.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => lim.maximum.unwrap_or(u64::MAX),
        Err(_) => lim.current.unwrap_or(u64::MAX),
    }
}

async fn metric(addr: SocketAddr, name: &str) -> u64 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = TcpStream::connect(addr).await.expect("metrics connect");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("write");
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.expect("read");
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn idle_memory(sockets: usize) -> (u64, u64, f64) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portway"))
        .args(["--interop", "--listen", "127.0.0.1:0", "--ws-max-sockets", "100000", "--max-connections", "100000"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn,portway=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn portway");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    // The gateway logs its address; keep draining its output afterwards.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("portway listening address=").nth(1)
                && let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok())
            {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = tokio::task::spawn_blocking(move || rx.recv().expect("portway did not start")).await.expect("join");

    // Warm up: one socket and one call, so lazily built state is not counted per socket.
    let mut warm = connect(addr, true, 4096).await;
    let _ = warm.next().await;
    let _ = warm.close(None).await;
    drop(warm);
    while metric(addr, "portway_websockets_open").await != 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes(pid);

    let mut open = tokio::task::JoinSet::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    for _ in 0..sockets {
        let gate = gate.clone();
        open.spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate");
            let mut ws = connect(addr, true, 4096).await;
            let _hello = ws.next().await;
            drop(permit);
            ws
        });
    }
    let mut clients = Vec::with_capacity(sockets);
    while let Some(ws) = open.join_next().await {
        clients.push(ws.expect("socket"));
    }
    while metric(addr, "portway_websockets_open").await != sockets as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(pid);
    drop(clients);
    let _ = child.kill();
    let _ = child.wait();
    let per_socket = (after.saturating_sub(before)) as f64 / sockets as f64;
    (before, after, per_socket)
}

/// What JSON alone costs per embedding message, in CPU time of one thread: the floor under
/// any rate.
fn codec_costs(message_json: &str) {
    let codec = codec::<Embedding>("bench.Embedding");
    let frame = format!(r#"{{"type":"message","id":1,"message":{message_json}}}"#);
    let n = 2_000;
    let time = |f: &mut dyn FnMut()| {
        let start = thread_cpu_time();
        for _ in 0..n {
            f();
        }
        (thread_cpu_time() - start).as_secs_f64() * 1e6 / f64::from(n)
    };
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(borrow)]
        message: &'a serde_json::value::RawValue,
    }
    let scan = time(&mut || {
        let f: Frame = serde_json::from_str(&frame).expect("frame");
        std::hint::black_box(f.message);
    });
    let mut binary = Vec::new();
    let parse = time(&mut || binary = codec.json_to_binary(message_json.as_bytes()).expect("json"));
    let mut out = Vec::new();
    let write = time(&mut || {
        out.clear();
        codec.binary_to_json_into(&binary, &mut out).expect("binary");
    });
    println!(
        "  JSON per message, CPU time: frame scan {scan:.1} µs (skipped for canonical frames), \
         JSON -> protobuf {parse:.1} µs, protobuf -> JSON {write:.1} µs"
    );
}

// ---------------------------------------------------------------------------------------

fn main() {
    let quick = std::env::var("PORTWAY_BENCH_QUICK").is_ok_and(|v| v == "1");
    // `small`, `embedding` or `memory`: run one part only (for profiling).
    let only = std::env::var("PORTWAY_BENCH_ONLY").ok();
    let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let fds = raise_fd_limit();
        let mut config = Config::default();
        // To compare buffer sizes: both the gateway's and the baseline's.
        if let Some(bytes) = std::env::var("PORTWAY_BENCH_BUFFER_BYTES").ok().and_then(|v| v.parse().ok()) {
            config.websocket.read_buffer_bytes = bytes;
            config.websocket.write_buffer_bytes = bytes;
        }
        let (read_buffer, write_buffer) = (config.websocket.read_buffer_bytes, config.websocket.write_buffer_bytes);
        let portway = start_portway(config).await;
        let baseline = start_baseline(read_buffer, write_buffer).await;
        let rounds = if quick { 3 } else { 7 };
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("ws_echo: {cores} cores, buffers {read_buffer}/{write_buffer} B, window 16, {rounds} rounds A B A B");

        let small = r#"{"values":[0.25,-1.5]}"#;
        if runs("small") {
            let count = if quick { 5_000 } else { 30_000 };
            println!("small message ({} B of JSON), {count} messages per round:", small.len());
            alternate(portway, baseline, small, count, rounds).await;
        }

        let values: Vec<String> = (0..768).map(|i| format!("{}", ((i as f32 * 0.618_034).sin() * 0.1))).collect();
        let embedding = format!(r#"{{"values":[{}]}}"#, values.join(","));
        let count = if quick { 2_000 } else { 10_000 };
        if runs("embedding") {
            codec_costs(&embedding);
            println!("768-float embedding ({} B of JSON), {count} messages per round:", embedding.len());
            alternate(portway, baseline, &embedding, count, rounds).await;
            let packed: Vec<u8> = (0..768).flat_map(|i| ((i as f32 * 0.618_034).sin() * 0.1).to_le_bytes()).collect();
            use base64::Engine as _;
            let packed = format!(r#"{{"packed":"{}"}}"#, base64::engine::general_purpose::STANDARD.encode(packed));
            println!("the same 768 floats as bytes ({} B of JSON, base64), {count} messages per round:", packed.len());
            alternate(portway, baseline, &packed, count, rounds).await;
        }

        if !runs("memory") {
            return;
        }
        let sockets = if quick { 1_000 } else { 10_000 };
        println!("idle sockets: {sockets} (fd limit {fds}):");
        let (before, after, per) = idle_memory(sockets).await;
        println!(
            "  server RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per idle socket",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            per / 1024.0
        );
    });
}
