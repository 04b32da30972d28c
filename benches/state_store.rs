//! State store benchmark (not a test): durable writes/s at concurrency 1, 16 and 256
//! through the real gRPC server on loopback and on the raw store; reads/s; watch fan-out
//! latency (one write seen by 1,000 watchers).
//!
//! Run with: `cargo bench --bench state_store`
//!
//! Environment: `STATE_BENCH_SECS` (seconds per measurement, default 3),
//! `STATE_BENCH_WATCHERS` (default 1000), `STATE_BENCH_ROUNDS` (fan-out writes, default 50).
//! Results are ratios worth comparing within one run; absolute numbers depend on the
//! machine and its disk (fsync).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portway::pb::portway::state::v1 as api;
use portway::pb::portway::state::v1::state_service_client::StateServiceClient;
use portway::services::ServiceOptions;
use portway::services::state::engine::{PutSpec, WriteOp};
use portway::services::state::{StateOptions, Store};
use tokio::sync::{Notify, oneshot};
use tonic::transport::Channel;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Server {
    addr: SocketAddr,
    store: Store,
    _shutdown: oneshot::Sender<()>,
}

async fn start(state: StateOptions) -> Server {
    let mut options = ServiceOptions::default();
    options.state = state;
    let mounted = portway::services::mount(&options).await.expect("mount");
    let store = mounted.state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let gateway = portway::Gateway::builder(mounted.routes).build();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = portway::serve(listener, gateway, async {
            let _ = rx.await;
        })
        .await;
    });
    Server { addr, store, _shutdown: tx }
}

async fn channels(addr: SocketAddr, n: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .expect("url")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect"),
        );
    }
    out
}

fn value(i: u64) -> portway::protojson::Value {
    let mut fields = std::collections::HashMap::new();
    fields.insert("n".to_string(), portway::protojson::Value::from(i as f64));
    fields.insert("who".to_string(), portway::protojson::Value::from("bench"));
    portway::protojson::Value::from(fields)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Rate {
    ops: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// Runs `tasks` copies of `op(task, i)` for `secs` seconds; counts completed operations.
async fn measure<F, Fut>(tasks: usize, secs: u64, op: F) -> Rate
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (op, stop, ops) = (op.clone(), stop.clone(), ops.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                op(t, i).await;
                lat.push(t0.elapsed());
                ops.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Rate { ops: ops.load(Ordering::Relaxed), secs, p50: percentile(&lat, 0.5), p99: percentile(&lat, 0.99) }
}

fn report(what: &str, r: &Rate) {
    println!(
        "{what:<44} {:>10.0} ops/s   p50 {:>8.2} ms   p99 {:>8.2} ms   ({} ops)",
        r.per_sec(),
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.ops
    );
}

async fn grpc_writes(addr: SocketAddr, concurrency: usize, secs: u64, tag: &str) -> Rate {
    let chans = channels(addr, concurrency.div_ceil(64).max(1)).await;
    let tag = tag.to_string();
    measure(concurrency, secs, move |t, i| {
        let mut client = StateServiceClient::new(chans[t % chans.len()].clone());
        let key = format!("{tag}/{t}/{i}");
        async move {
            client.put(api::PutRequest { key, value: Some(value(i)), ..Default::default() }).await.expect("put");
        }
    })
    .await
}

async fn raw_writes(store: Store, concurrency: usize, secs: u64, tag: &str) -> Rate {
    let tag = tag.to_string();
    measure(concurrency, secs, move |t, i| {
        let store = store.clone();
        let key = format!("{tag}/{t}/{i}");
        async move {
            store.write(WriteOp::Put(PutSpec { key, value: value(i), expected: None })).await.expect("write");
        }
    })
    .await
}

#[tokio::main]
async fn main() {
    let secs = env_u64("STATE_BENCH_SECS", 3);
    let watchers = env_u64("STATE_BENCH_WATCHERS", 1000) as usize;
    let rounds = env_u64("STATE_BENCH_ROUNDS", 50) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "state store benchmark: {secs} s per measurement, durable store (redb, fsync per commit) in {}",
        dir.path().display()
    );
    println!("machine: {} CPU threads visible", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!();

    // Baseline: how many fsyncs per second this disk does (rewrite one 4 KiB block in place
    // + fdatasync, the cheapest durable write there is).
    let fsync = {
        use std::os::unix::fs::FileExt as _;
        let path = dir.path().join("fsync-probe");
        let f = std::fs::File::create(&path).expect("probe file");
        f.write_all_at(&[1u8; 4096], 0).expect("write");
        f.sync_all().expect("fsync");
        let start = Instant::now();
        let mut lat = Vec::new();
        while start.elapsed() < Duration::from_secs(secs.min(2)) {
            let t0 = Instant::now();
            f.write_all_at(&[0u8; 4096], 0).expect("write");
            f.sync_data().expect("fdatasync");
            lat.push(t0.elapsed());
        }
        lat.sort_unstable();
        let r = Rate {
            ops: lat.len() as u64,
            secs: start.elapsed().as_secs_f64(),
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
        };
        report("baseline: 4 KiB rewrite + fdatasync", &r);
        r.per_sec()
    };

    // Writes: durable, through gRPC and raw.
    let server = start(StateOptions::durable(dir.path().join("grpc"))).await;
    let raw_store = Store::open(StateOptions::durable(dir.path().join("raw"))).await.expect("open raw store");
    let mut grpc_rates = Vec::new();
    for c in [1usize, 16, 256] {
        let r = grpc_writes(server.addr, c, secs, &format!("w{c}")).await;
        report(&format!("durable Put via gRPC, concurrency {c}"), &r);
        grpc_rates.push(r.per_sec());
    }
    let mut raw_rates = Vec::new();
    for c in [1usize, 16, 256] {
        let r = raw_writes(raw_store.clone(), c, secs, &format!("w{c}")).await;
        report(&format!("durable write, raw store, concurrency {c}"), &r);
        raw_rates.push(r.per_sec());
    }
    let memory_store = Store::open(StateOptions::memory()).await.expect("open memory store");
    let mem = raw_writes(memory_store.clone(), 256, secs, "m").await;
    report("memory write, raw store, concurrency 256", &mem);
    println!(
        "  group commit: durable gRPC writes per disk fsync: c1 {:.2}, c16 {:.2}, c256 {:.2}",
        grpc_rates[0] / fsync,
        grpc_rates[1] / fsync,
        grpc_rates[2] / fsync
    );
    println!(
        "  scaling (gRPC): c16/c1 = {:.1}x, c256/c1 = {:.1}x; gRPC/raw at c256 = {:.2}; durable/memory raw at c256 = {:.2}",
        grpc_rates[1] / grpc_rates[0],
        grpc_rates[2] / grpc_rates[0],
        grpc_rates[2] / raw_rates[2],
        raw_rates[2] / mem.per_sec()
    );
    println!();

    // Baseline: the cheapest gRPC call there is (health check), to show the transport's cost.
    let health = {
        use portway::pb::grpc::health::v1::HealthCheckRequest;
        use portway::pb::grpc::health::v1::health_client::HealthClient;
        let chans = channels(server.addr, 1).await;
        measure(16, secs, move |_, _| {
            let mut client = HealthClient::new(chans[0].clone());
            async move {
                client.check(HealthCheckRequest { service: String::new() }).await.expect("check");
            }
        })
        .await
    };
    report("baseline: Health/Check via gRPC, concurrency 16", &health);

    // Reads of existing keys (written above).
    let keys = Arc::new((0..1000u64).map(|i| format!("w1/0/{i}")).collect::<Vec<_>>());
    let mut get16 = 0.0;
    for c in [1usize, 16, 64] {
        let chans = channels(server.addr, c.div_ceil(64).max(1)).await;
        let keys = keys.clone();
        let r = measure(c, secs, move |t, i| {
            let mut client = StateServiceClient::new(chans[t % chans.len()].clone());
            let key = keys[(i as usize) % keys.len()].clone();
            async move {
                client.get(api::GetRequest { key, revision: 0 }).await.expect("get");
            }
        })
        .await;
        report(&format!("Get via gRPC, concurrency {c}"), &r);
        if c == 16 {
            get16 = r.per_sec();
        }
    }
    println!("  Get / Health/Check at concurrency 16 = {:.2}", get16 / health.per_sec());
    {
        let store = server.store.clone();
        let keys = keys.clone();
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            for _ in 0..1000 {
                let (e, _) = store.get(&keys[(n as usize) % keys.len()], 0).expect("get");
                std::hint::black_box(e);
                n += 1;
            }
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("{:<44} {:>10.0} ops/s   (one thread)", "get, raw store", rate);
    }
    println!();

    // Watch fan-out: one write seen by `watchers` gRPC watchers.
    let chans = channels(server.addr, watchers.div_ceil(200).max(1)).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let all_seen = Arc::new(Notify::new());
    let round_start: Arc<std::sync::Mutex<Instant>> = Arc::new(std::sync::Mutex::new(Instant::now()));
    let created = Arc::new(AtomicUsize::new(0));
    let all_created = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let mut client = StateServiceClient::new(chans[w % chans.len()].clone());
        let (seen, all_seen, round_start, created, all_created) =
            (seen.clone(), all_seen.clone(), round_start.clone(), created.clone(), all_created.clone());
        tasks.push(tokio::spawn(async move {
            let req = api::WatchRequest { key: "fanout".into(), ..Default::default() };
            let mut stream = client.watch(req).await.expect("watch").into_inner();
            let _ = stream.message().await.expect("created");
            if created.fetch_add(1, Ordering::SeqCst) + 1 == watchers {
                all_created.notify_one();
            }
            let mut lat = Vec::new();
            for _ in 0..rounds {
                let Ok(Some(_)) = stream.message().await else { break };
                let t0 = *round_start.lock().expect("lock");
                lat.push(t0.elapsed());
                if seen.fetch_add(1, Ordering::SeqCst) + 1 == watchers {
                    seen.store(0, Ordering::SeqCst);
                    all_seen.notify_one();
                }
            }
            lat
        }));
    }
    all_created.notified().await;
    let mut client = StateServiceClient::new(chans[0].clone());
    let mut put_lat = Vec::new();
    for i in 0..rounds {
        let t0 = Instant::now();
        *round_start.lock().expect("lock") = t0;
        client
            .put(api::PutRequest { key: "fanout".into(), value: Some(value(i as u64)), ..Default::default() })
            .await
            .expect("put");
        put_lat.push(t0.elapsed());
        all_seen.notified().await;
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("watcher"));
    }
    lat.sort_unstable();
    put_lat.sort_unstable();
    println!(
        "watch fan-out, {watchers} gRPC watchers x {rounds} writes: write issued -> event received  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "  (the write's own durable Put took p50 {:.2} ms; {} latency samples)",
        percentile(&put_lat, 0.5).as_secs_f64() * 1e3,
        lat.len()
    );
    raw_store.shutdown().await;
    memory_store.shutdown().await;
    server.store.shutdown().await;
}
