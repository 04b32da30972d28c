//! Run with: `scripts/soak` (10,000 WebSockets and 1,000 HTTP/2 connections for 10 minutes
//! against the release binary), or `cargo run --example soak -- --quick` (the short version
//! CI runs, against `target/debug/portway`).
//!
//! Soak and leak check. Starts `portway --interop --storage memory`, opens `--websockets`
//! WebSockets and `--http2` HTTP/2 connections, each with a streaming call that exchanges a
//! message every few seconds, holds them for `--secs`, then closes every client. Every
//! `--every` seconds it prints the server's resident memory (`/proc/PID/status`), open file
//! descriptors (`/proc/PID/fd`), live runtime tasks and open connections and WebSockets
//! (`/metrics`). At the end the server must be back where it started: the same tasks and
//! descriptors (within a small allowance for the scrape itself), no connections, no WebSockets.
//! A second, shorter round then shows whether the memory the first left behind is reused
//! (allocators keep freed pages) or keeps growing (a leak). It exits non-zero otherwise.
//! Client sockets are spread over the source addresses
//! 127.0.0.2–127.0.0.254, so neither ephemeral ports nor the per-address limit run out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{ResponseParameters, StreamingOutputCallRequest};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Debug, Parser)]
#[command(args_override_self = true)]
struct Args {
    /// The portway binary to soak.
    #[arg(long, default_value = "target/release/portway")]
    bin: String,
    /// WebSockets to hold.
    #[arg(long, default_value_t = 10_000)]
    websockets: usize,
    /// HTTP/2 connections to hold (one bidi call each).
    #[arg(long, default_value_t = 1_000)]
    http2: usize,
    /// How long to hold them, in seconds.
    #[arg(long, default_value_t = 600)]
    secs: u64,
    /// Report interval, in seconds.
    #[arg(long, default_value_t = 30)]
    every: u64,
    /// Seconds between two messages on one WebSocket call / one HTTP/2 call.
    #[arg(long, default_value_t = 10)]
    ws_interval: u64,
    #[arg(long, default_value_t = 2)]
    h2_interval: u64,
    /// Rounds of open, hold, close (the first holds for --secs, the others at most 60 s).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// The short version: 500 WebSockets, 50 HTTP/2 connections, 4 rounds of 10 s, the debug
    /// binary (flags given as well override these).
    #[arg(long)]
    quick: bool,
}

/// What the clients did.
#[derive(Default)]
struct Stats {
    ws_open: AtomicU64,
    h2_open: AtomicU64,
    exchanges: AtomicU64,
    errors: AtomicU64,
}

#[tokio::main]
async fn main() {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.iter().any(|a| a == "--quick") {
        let quick = "--bin target/debug/portway --websockets 500 --http2 50 --secs 10 --every 5 --rounds 4 \
                     --ws-interval 2 --h2-interval 1";
        argv.splice(1..1, quick.split_whitespace().map(str::to_string));
    }
    if let Err(e) = run(Args::parse_from(argv)).await {
        eprintln!("soak failed: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let total = args.websockets + args.http2;
    let server = Server::start(&args.bin, total).await?;
    // Warm up (lazily initialised state is not a leak), then the baseline.
    let warm = ws_connect(server.addr, 0).await?;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = server.sample().await?;
    println!("baseline: {}", base.line());
    // Round 1 holds for --secs, the others at most a minute. After the first, resident memory
    // may stay up (allocators keep freed pages for reuse); a leak shows as growth from round
    // to round, so the last round must not end more than 2 % above the one before.
    let mut afters = Vec::new();
    for n in 0..args.rounds.max(2) {
        let secs = if n == 0 { args.secs } else { args.secs.min(60) };
        afters.push(round(&server, &args, &base, secs).await?.rss_kib);
    }
    let rss: Vec<String> = afters.iter().map(|r| format!("{r} KiB")).collect();
    println!("RSS after each round: {}", rss.join(", "));
    let (prev, last) = (afters[afters.len() - 2], afters[afters.len() - 1]);
    if last > prev + prev / 50 {
        return Err(format!("resident memory still grows from round to round ({prev} KiB, then {last} KiB)"));
    }
    println!("soak passed: every client gone, tasks, descriptors and connections back to the baseline");
    Ok(())
}

/// Opens every client, holds them for `secs`, closes them; the server sample afterwards.
async fn round(server: &Server, args: &Args, base: &Sample, secs: u64) -> Result<Sample, String> {
    let total = args.websockets + args.http2;
    println!("opening {} WebSockets and {} HTTP/2 connections ...", args.websockets, args.http2);
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop) = watch::channel(false);
    let (done_tx, mut done) = mpsc::unbounded_channel::<()>();
    let opening = Arc::new(Semaphore::new(128));
    let started = Instant::now();
    for i in 0..total {
        let permit = opening.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let (stats, stop, done_tx) = (stats.clone(), stop.clone(), done_tx.clone());
        let addr = server.addr;
        let (ws_every, h2_every) = (Duration::from_secs(args.ws_interval), Duration::from_secs(args.h2_interval));
        let is_ws = i < args.websockets;
        tokio::spawn(async move {
            let result = if is_ws {
                websocket(addr, i, ws_every, &stats, stop, permit).await
            } else {
                http2(addr, i, h2_every, &stats, stop, permit).await
            };
            if let Err(e) = result
                && stats.errors.fetch_add(1, Ordering::Relaxed) < 5
            {
                eprintln!("client {i}: {e}");
            }
            drop(done_tx);
        });
    }
    drop(done_tx);
    // Wait until everyone is connected.
    while (stats.ws_open.load(Ordering::Relaxed) + stats.h2_open.load(Ordering::Relaxed)) < total as u64 {
        if stats.errors.load(Ordering::Relaxed) > 0 {
            return Err("clients failed while connecting".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("all {total} open after {:.1} s; holding for {secs} s", started.elapsed().as_secs_f64());

    let hold = Instant::now();
    let mut peak = base.rss_kib;
    while hold.elapsed() < Duration::from_secs(secs) {
        let left = Duration::from_secs(secs).saturating_sub(hold.elapsed());
        tokio::time::sleep(Duration::from_secs(args.every).min(left)).await;
        let s = server.sample().await?;
        peak = peak.max(s.rss_kib);
        println!(
            "t={:>4}s {} | clients: {} ws, {} h2, {} exchanges, {} errors",
            hold.elapsed().as_secs(),
            s.line(),
            stats.ws_open.load(Ordering::Relaxed),
            stats.h2_open.load(Ordering::Relaxed),
            stats.exchanges.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed)
        );
    }
    println!("closing every client ...");
    let _ = stop_tx.send(true);
    while done.recv().await.is_some() {}
    // Give the server a moment to finish closing what the clients closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let s = server.sample().await?;
        let settled = s.connections <= 1 && s.websockets == 0 && s.tasks <= base.tasks + 2 && s.fds <= base.fds + 2;
        if settled || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("after:    {}", after.line());
    println!(
        "peak RSS {peak} KiB ({:.1} KiB per client over the baseline); after the clients left: {:+} KiB against the baseline",
        peak.saturating_sub(base.rss_kib) as f64 / total as f64,
        after.rss_kib as i64 - base.rss_kib as i64
    );
    let errors = stats.errors.load(Ordering::Relaxed);
    let mut failures = Vec::new();
    if errors > 0 {
        failures.push(format!("{errors} client errors"));
    }
    if after.connections > 1 || after.websockets > 0 {
        failures.push(format!("{} connections and {} WebSockets still open", after.connections, after.websockets));
    }
    if after.tasks > base.tasks + 2 {
        failures.push(format!("{} live tasks, {} at the baseline", after.tasks, base.tasks));
    }
    if after.fds > base.fds + 2 {
        failures.push(format!("{} file descriptors, {} at the baseline", after.fds, base.fds));
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    println!("round done: {} exchanges", stats.exchanges.load(Ordering::Relaxed));
    Ok(after)
}

/// The server process.
struct Server {
    addr: SocketAddr,
    pid: u32,
    _child: tokio::process::Child,
}

/// One look at the server.
struct Sample {
    rss_kib: u64,
    fds: u64,
    tasks: u64,
    connections: u64,
    websockets: u64,
}

impl Sample {
    fn line(&self) -> String {
        format!(
            "RSS {:>8} KiB, {:>6} fds, {:>6} tasks, {:>6} connections, {:>6} WebSockets",
            self.rss_kib, self.fds, self.tasks, self.connections, self.websockets
        )
    }
}

impl Server {
    async fn start(bin: &str, clients: usize) -> Result<Self, String> {
        let room = (clients + 100).to_string();
        let mut child = tokio::process::Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--interop", "--storage", "memory"])
            .args(["--max-connections", &room, "--ws-max-sockets", &room])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn,portway=info")
            // One malloc arena: with one per thread, freed memory lands in whichever arena
            // and resident memory drifts for many rounds, which hides or fakes a leak.
            .env("MALLOC_ARENA_MAX", std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "1".into()))
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e} (build it first)"))?;
        let pid = child.id().ok_or("no pid")?;
        let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("portway listening")
                    && let Some(addr) = line.split("address=").nth(1).and_then(|r| r.split_whitespace().next())
                {
                    return addr.parse().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or("portway did not log its address")?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { addr, pid, _child: child })
    }

    async fn sample(&self) -> Result<Sample, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).map_err(|e| e.to_string())?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or("no VmRSS")?;
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_err(|e| e.to_string())?.count() as u64;
        let metrics = self.metrics().await?;
        let metric = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(u64::MAX)
        };
        Ok(Sample {
            rss_kib,
            fds,
            tasks: metric("portway_runtime_tasks"),
            connections: metric("portway_connections_open"),
            websockets: metric("portway_websockets_open"),
        })
    }

    async fn metrics(&self) -> Result<String, String> {
        let mut tcp = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// A client socket from the loopback source address number `i` (of 253).
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, (2 + i % 253) as u8)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(addr: SocketAddr, i: usize) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind(SocketAddr::new(source(i).into(), 0)).map_err(|e| e.to_string())?;
    let tcp = socket.connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let mut req = format!("ws://{addr}/ws").into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("sec-websocket-protocol", http::HeaderValue::from_static("portway.v1.json"));
    // Small client buffers: 10,000 sockets in one process.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp), Some(config))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.contains(r#""type":"hello""#) => Ok(ws),
        other => Err(format!("expected hello, got {other:?}")),
    }
}

/// One WebSocket with one bidi call, a message every `every`, until `stop`.
async fn websocket(
    addr: SocketAddr,
    i: usize,
    every: Duration,
    stats: &Stats,
    mut stop: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), String> {
    let mut ws = ws_connect(addr, i).await?;
    let open = r#"{"type":"open","id":1,"method":"/grpc.testing.TestService/FullDuplexCall"}"#;
    ws.send(Message::text(open)).await.map_err(|e| e.to_string())?;
    stats.ws_open.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let message = r#"{"type":"message","id":1,"message":{"responseParameters":[{"size":16}]}}"#;
    let credit = r#"{"type":"credit","id":1,"credit":1}"#;
    // Spread the clients' messages over the interval.
    let first = tokio::time::Instant::now() + every.mul_f64((i % 97) as f64 / 97.0);
    let mut tick = tokio::time::interval_at(first, every);
    let result = loop {
        tokio::select! {
            _ = stop.changed() => break Ok(()),
            _ = tick.tick() => {
                if let Err(e) = ws.send(Message::text(message)).await {
                    break Err(format!("send: {e}"));
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) if t.contains(r#""type":"message""#) => {
                    stats.exchanges.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = ws.send(Message::text(credit)).await {
                        break Err(format!("send: {e}"));
                    }
                }
                Some(Ok(Message::Text(t))) if t.contains(r#""type":"status""#) => break Err(format!("call ended: {t}")),
                Some(Ok(_)) => {}
                other => break Err(format!("socket ended: {other:?}")),
            },
        }
    };
    stats.ws_open.fetch_sub(1, Ordering::Relaxed);
    let _ = ws.close(None).await;
    // Read to the end of the close handshake.
    while let Some(Ok(_)) = ws.next().await {}
    result
}

/// One HTTP/2 connection with one bidi call, a message every `every`, until `stop`.
async fn http2(
    addr: SocketAddr,
    i: usize,
    every: Duration,
    stats: &Stats,
    mut stop: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .local_address(Some(IpAddr::V4(source(i))))
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = TestServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<StreamingOutputCallRequest>(1);
    let mut responses = client
        .full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|e| format!("call: {e}"))?
        .into_inner();
    stats.h2_open.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let request = StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters { size: 16, ..Default::default() }],
        ..Default::default()
    };
    let first = tokio::time::Instant::now() + every.mul_f64((i % 89) as f64 / 89.0);
    let mut tick = tokio::time::interval_at(first, every);
    let result = loop {
        tokio::select! {
            _ = stop.changed() => break Ok(()),
            _ = tick.tick() => {
                if tx.send(request.clone()).await.is_err() {
                    break Err("the call's request stream closed".to_string());
                }
                match responses.message().await {
                    Ok(Some(_)) => { stats.exchanges.fetch_add(1, Ordering::Relaxed); }
                    other => break Err(format!("call ended: {other:?}")),
                }
            }
        }
    };
    stats.h2_open.fetch_sub(1, Ordering::Relaxed);
    drop(tx);
    let _ =
        tokio::time::timeout(Duration::from_secs(5), async { while let Ok(Some(_)) = responses.message().await {} })
            .await;
    result
}
