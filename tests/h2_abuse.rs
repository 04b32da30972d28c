//! HTTP/2 abuse against the real binary: rapid reset, CONTINUATION, SETTINGS, PING and
//! empty-DATA floods, a client that never opens its window, streams past the advertised
//! limit. Each runs in a bounded loop from a raw-frame client; the test asserts how the
//! server answers (GOAWAY or RST_STREAM), that its resident memory (`/proc/PID/status`
//! `VmRSS` of the `portway` process, sampled every 10 ms during the attack) stays within
//! [`BOUND_KIB`] of where it started, that its live task count returns to where it was once
//! the attacker leaves, and that a normal call right after succeeds. The numbers are printed
//! (`--nocapture`) and recorded in docs/robustness.md.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::child::Portway;
use common::h2raw::{
    self, CONTINUATION, DATA, END_HEADERS, END_STREAM, Flood, H2, HEADERS, PING, RST_STREAM, SETTINGS,
};

/// How much the server's resident memory may grow during an attack that produces no
/// responses (debug build). Measured growth for those is under 1 MiB.
const BOUND_KIB: u64 = 16 * 1024;
const WRITE_WAIT: Duration = Duration::from_secs(5);
const TS: &str = "/grpc.testing.TestService";

/// Samples the child's RSS until dropped; [`Peak::max`] is the highest seen.
struct Peak {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Peak {
    fn start(server: &Portway) -> Self {
        let (max, stop) = (Arc::new(AtomicU64::new(server.rss_kib())), Arc::new(AtomicBool::new(false)));
        let (m, s, pid) = (max.clone(), stop.clone(), server.pid);
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                {
                    m.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { max, stop }
    }

    fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for Peak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The server after a warm-up call: its RSS and live tasks.
struct Baseline {
    rss: u64,
    tasks: u64,
}

async fn baseline(server: &Portway) -> Baseline {
    normal_call(server).await;
    server.settles_to(u64::MAX, 0).await;
    Baseline { rss: server.rss_kib(), tasks: server.metric("portway_runtime_tasks").await.saturating_sub(1) }
}

/// A unary gRPC call on a new connection; it must succeed.
async fn normal_call(server: &Portway) {
    let mut h2 = H2::handshake(server.addr, &[]).await;
    let id = h2.next_stream_id();
    h2.headers(id, &H2::post(&format!("{TS}/UnaryCall"), "application/grpc", &[("te", "trailers")]), false).await;
    h2.data(id, &h2raw::envelope(0, &[0x10, 0x04]), true).await; // response_size: 4
    let reply = h2.stream(id).await;
    assert_eq!(reply.last("grpc-status"), Some("0"), "a normal call after the attack: {}", reply.describe());
}

/// Checks the memory bound, that a normal call works, and that the server's tasks return to
/// the baseline once the attacker has gone; prints the numbers.
async fn after(name: &str, server: &Portway, base: &Baseline, peak: &Peak, outcome: &str) {
    after_within(name, server, base, peak, outcome, BOUND_KIB).await;
}

async fn after_within(name: &str, server: &Portway, base: &Baseline, peak: &Peak, outcome: &str, bound: u64) {
    let growth = peak.max().saturating_sub(base.rss);
    println!("{name}: {outcome}; RSS {} KiB -> peak {} KiB (+{growth} KiB, bound {bound} KiB)", base.rss, peak.max());
    assert!(growth < bound, "{name}: RSS grew by {growth} KiB (bound {bound} KiB)");
    normal_call(server).await;
    server.settles_to(base.tasks, 0).await;
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    H2::frame(kind, flags, stream, payload)
}

/// A fresh server, its baseline after a warm-up call, and the RSS sampler.
async fn start(args: &[&str]) -> (Portway, Baseline, Peak) {
    let server = Portway::start(args).await;
    let base = baseline(&server).await;
    let peak = Peak::start(&server);
    (server, base, peak)
}

/// Writes `one` (a frame) `batches × per_batch` times, a batch at a time, each within
/// `wait`; stops early when the server stops reading or closes. Returns the frames sent.
async fn repeat(flood: &mut Flood, one: &[u8], per_batch: usize, batches: usize, wait: Duration) -> usize {
    let batch = one.repeat(per_batch);
    let mut sent = 0;
    for _ in 0..batches {
        if flood.report().closed || !flood.send(&batch, wait).await {
            break;
        }
        sent += per_batch;
    }
    sent
}

/// Waits (guarded) until `done` holds for what the server sent.
async fn until(flood: &Flood, done: impl Fn(&h2raw::FloodReport) -> bool) -> h2raw::FloodReport {
    common::http::guard(async {
        loop {
            let report = flood.report();
            if done(&report) || report.closed {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn rapid_reset() {
    let (server, base, peak) = start(&[]).await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    let block = h2.encode(&H2::post(&format!("{TS}/UnaryCall"), "application/grpc", &[]));
    let mut flood = h2.flood();
    let (mut stream, mut sent) = (1u32, 0);
    'outer: for _ in 0..200 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            batch.extend(frame(HEADERS, END_HEADERS, stream, &block));
            batch.extend(frame(RST_STREAM, 0, stream, &h2raw::CANCEL.to_be_bytes()));
            stream += 2;
        }
        if !flood.send(&batch, WRITE_WAIT).await {
            break 'outer;
        }
        sent += 100;
    }
    let report = flood.wait_closed(Duration::from_secs(5)).await;
    // h2 answers a client that resets streams faster than they are served with GOAWAY
    // ENHANCE_YOUR_CALM; one that the server keeps up with costs it a task per stream,
    // each gone at once. Either way the server must stay bounded and keep serving.
    let outcome = format!("{sent} streams opened and reset; GOAWAY {:?}", report.goaway);
    assert!(report.goaway.is_none_or(|c| c == h2raw::ENHANCE_YOUR_CALM), "{outcome}");
    drop(flood);
    after("rapid reset", &server, &base, &peak, &outcome).await;
}

#[tokio::test]
async fn continuation_flood() {
    let (server, base, peak) = start(&[]).await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    let block = h2.encode(&H2::post(&format!("{TS}/UnaryCall"), "application/grpc", &[]));
    let mut flood = h2.flood();
    assert!(flood.send(&frame(HEADERS, 0, 1, &block), WRITE_WAIT).await);
    // Literal header fields without indexing ("x-a: <100 bytes>"), ten per CONTINUATION.
    let mut field = vec![0x00, 0x03, b'x', b'-', b'a', 100];
    field.extend_from_slice(&[b'v'; 100]);
    let payload: Vec<u8> = field.repeat(10);
    let frames_sent = repeat(&mut flood, &frame(CONTINUATION, 0, 1, &payload), 1, 5_000, WRITE_WAIT).await;
    let report = flood.wait_closed(Duration::from_secs(10)).await;
    let outcome = format!(
        "{frames_sent} CONTINUATION frames ({} KiB) sent; GOAWAY {:?}",
        frames_sent * payload.len() / 1024,
        report.goaway
    );
    assert!(report.closed, "the connection survived an endless header block: {outcome}");
    assert!(frames_sent < 5_000, "all 5,000 frames were accepted: {outcome}");
    drop(flood);
    after("CONTINUATION flood", &server, &base, &peak, &outcome).await;
}

#[tokio::test]
async fn settings_flood() {
    let (server, base, peak) = start(&[]).await;
    let mut flood = H2::handshake(server.addr, &[]).await.flood();
    let one = frame(SETTINGS, 0, 0, &[0x00, 0x04, 0x00, 0x01, 0x00, 0x00]); // INITIAL_WINDOW_SIZE 65536
    let sent = repeat(&mut flood, &one, 500, 100, WRITE_WAIT).await;
    // Ours plus the handshake's.
    let report = until(&flood, |r| r.settings_acks > sent as u64 || r.goaway.is_some()).await;
    let outcome = format!("{sent} SETTINGS sent, {} acknowledged; GOAWAY {:?}", report.settings_acks, report.goaway);
    assert!(report.settings_acks > 0 || report.goaway.is_some(), "{outcome}");
    drop(flood);
    after("SETTINGS flood", &server, &base, &peak, &outcome).await;
}

#[tokio::test]
async fn ping_flood() {
    let (server, base, peak) = start(&[]).await;
    let mut flood = H2::handshake(server.addr, &[]).await.flood();
    let sent = repeat(&mut flood, &frame(PING, 0, 0, b"floodpng"), 1_000, 100, WRITE_WAIT).await;
    let report = until(&flood, |r| r.ping_acks >= sent as u64 || r.goaway.is_some()).await;
    let outcome = format!("{sent} PINGs sent, {} acknowledged; GOAWAY {:?}", report.ping_acks, report.goaway);
    assert!(report.ping_acks > 0 || report.goaway.is_some(), "{outcome}");
    drop(flood);
    after("PING flood", &server, &base, &peak, &outcome).await;
}

#[tokio::test]
async fn ping_flood_from_a_client_that_never_reads() {
    let (server, base, peak) = start(&["--write-timeout-ms", "2000"]).await;
    let mut flood = H2::handshake(server.addr, &[]).await.flood_without_reading();
    // 17 MB of PINGs: more than the socket buffers on both sides hold. The server stops
    // reading once its PING ACKs cannot be written, and our writes stall.
    let sent = repeat(&mut flood, &frame(PING, 0, 0, b"floodpng"), 1_000, 1_000, Duration::from_secs(1)).await;
    let outcome = format!("{sent} PINGs sent before the server stopped reading");
    assert!(sent < 1_000_000, "the server read 1,000,000 PINGs without its ACKs being read: {outcome}");
    // The write timeout then ends the connection.
    server.settles_to(u64::MAX, 0).await;
    drop(flood);
    after("PING flood, never reading", &server, &base, &peak, &outcome).await;
}

#[tokio::test]
async fn empty_data_flood() {
    let (server, base, peak) = start(&[]).await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    h2.headers(1, &H2::post(&format!("{TS}/StreamingInputCall"), "application/grpc", &[("te", "trailers")]), false)
        .await;
    let mut flood = h2.flood();
    let sent = repeat(&mut flood, &frame(DATA, 0, 1, &[]), 1_000, 100, WRITE_WAIT).await;
    let report = flood.wait_closed(Duration::from_secs(5)).await;
    let outcome = format!("{sent} empty DATA frames sent; GOAWAY {:?}", report.goaway);
    assert_eq!(report.goaway, Some(h2raw::ENHANCE_YOUR_CALM), "{outcome}");
    drop(flood);
    after("empty DATA flood", &server, &base, &peak, &outcome).await;
}

#[tokio::test]
async fn zero_window_stall() {
    let (server, base, peak) = start(&["--write-timeout-ms", "2000"]).await;
    let mut h2 = H2::handshake(server.addr, &[(h2raw::SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    // 64 calls asking for 1 MiB each (response_size: 1048576), and no window, ever.
    let request = h2raw::envelope(0, &[0x10, 0x80, 0x80, 0x40]);
    for _ in 0..64 {
        let id = h2.next_stream_id();
        h2.headers(id, &H2::post(&format!("{TS}/UnaryCall"), "application/grpc", &[("te", "trailers")]), false).await;
        h2.data(id, &request, true).await;
    }
    let mut flood = h2.flood();
    let report = flood.wait_closed(Duration::from_secs(10)).await;
    let outcome = format!("64 streams of 1 MiB stalled; closed {}, GOAWAY {:?}", report.closed, report.goaway);
    assert!(report.closed && report.goaway.is_some(), "{outcome}");
    drop(flood);
    // What the handlers produced stays in memory until the client takes it or the write
    // timeout closes the connection: about one response per stream (1 MiB here, plus
    // encoding), so the bound is per stream.
    let bound = BOUND_KIB + 64 * 1280;
    after_within("zero-window stall", &server, &base, &peak, &outcome, bound).await;
}

#[tokio::test]
async fn streams_past_the_advertised_limit() {
    let (server, base, peak) = start(&["--max-concurrent-streams", "8"]).await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    assert_eq!(h2.setting(h2raw::SETTINGS_MAX_CONCURRENT_STREAMS), Some(8));
    // Eight client streams held open, then 200 more while they are.
    let path = format!("{TS}/StreamingInputCall");
    let block = h2.encode(&H2::post(&path, "application/grpc", &[("te", "trailers")]));
    let mut batch = Vec::new();
    for i in 0..208u32 {
        batch.extend(frame(HEADERS, END_HEADERS, 1 + 2 * i, &block));
    }
    let mut flood = h2.flood();
    assert!(flood.send(&batch, WRITE_WAIT).await);
    let report = until(&flood, |r| r.resets.values().sum::<u64>() >= 200 || r.goaway.is_some()).await;
    let refused = report.resets.get(&h2raw::REFUSED_STREAM).copied().unwrap_or(0);
    let outcome = format!(
        "208 streams opened with 8 allowed: {refused} refused (RST_STREAM REFUSED_STREAM), GOAWAY {:?}",
        report.goaway
    );
    assert!(refused >= 150 || report.goaway.is_some(), "{outcome}");
    // The eight admitted streams still work.
    if report.goaway.is_none() {
        let mut end = Vec::new();
        for i in 0..8u32 {
            end.extend(frame(DATA, END_STREAM, 1 + 2 * i, &h2raw::envelope(0, &[])));
        }
        assert!(flood.send(&end, WRITE_WAIT).await);
        tokio::time::timeout(Duration::from_secs(10), async {
            while flood.report().headers < 16 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the admitted streams complete (headers and trailers each)");
    }
    drop(flood);
    after("streams past the limit", &server, &base, &peak, &outcome).await;
}

/// Streams the server resets itself (here, requests without `:method`, which HTTP/2 calls
/// malformed) count against `--http2-max-error-resets` for the connection's whole life: sent one
/// at a time, the limit's worth are reset (`RST_STREAM PROTOCOL_ERROR`) and the next one gets
/// GOAWAY `ENHANCE_YOUR_CALM`; under a higher limit the same 40 are all reset and the connection
/// still serves a call. (The default, 1,024, would let all 40 through in both runs.)
#[tokio::test]
async fn locally_reset_streams_past_the_configured_limit() {
    const SENT: usize = 40;
    for (limit, goaway) in [(10, true), (100, false)] {
        let server = Portway::start(&["--http2-max-error-resets", &limit.to_string()]).await;
        let mut h2 = H2::handshake(server.addr, &[]).await;
        let block = h2.encode(&[(":scheme", "http"), (":authority", "localhost"), (":path", "/no/method")]);
        let (mut resets, mut away) = (0, None);
        while resets < SENT && away.is_none() {
            let id = h2.next_stream_id();
            h2.send(HEADERS, END_HEADERS | END_STREAM, id, &block).await;
            // Its answer: a reset of that stream, or the end of the connection.
            loop {
                let Some(f) = h2.next().await else { panic!("the connection ended without GOAWAY") };
                match f.kind {
                    RST_STREAM if f.stream == id => {
                        assert_eq!(f.error_code(), Some(h2raw::PROTOCOL_ERROR), "{}", f.describe());
                        resets += 1;
                        break;
                    }
                    h2raw::GOAWAY => {
                        away = f.error_code();
                        break;
                    }
                    _ => {}
                }
            }
        }
        let outcome = format!("limit {limit}: {resets} malformed requests reset, then GOAWAY {away:?}");
        println!("{outcome}");
        if goaway {
            assert_eq!((resets, away), (limit, Some(h2raw::ENHANCE_YOUR_CALM)), "{outcome}");
            assert!(h2.closed_within(Duration::from_secs(5)).await.0, "closed after the GOAWAY: {outcome}");
        } else {
            assert_eq!((resets, away), (SENT, None), "{outcome}");
            let id = h2.next_stream_id();
            h2.headers(id, &H2::post(&format!("{TS}/UnaryCall"), "application/grpc", &[("te", "trailers")]), false)
                .await;
            h2.data(id, &h2raw::envelope(0, &[0x10, 0x04]), true).await;
            let reply = h2.stream(id).await;
            assert_eq!(reply.last("grpc-status"), Some("0"), "a call on the same connection: {}", reply.describe());
        }
    }
}
