//! portway's benchmark harness: what putting portway in front of a service costs, measured A/B
//! against a baseline built from crates in the same run (A B A B …) on the same machine.
//!
//! Run with: `cargo run --release -p portway-bench -- all` (or a suite name; `--quick` for a
//! short development run; `--out FILE` to also write the markdown report). See
//! `docs/benchmarks.md`.
//!
//! Every server runs as a child process (`portway-bench serve <kind>`, pinned to its own core)
//! so that its CPU time (`/proc/<pid>/stat`) and memory are its own. Unary load comes from
//! h2load, streaming and WebSocket load from small clients in this process, pinned to another
//! core. Every counted request is checked: h2load's status codes and response byte counts, and
//! a spot check of each server's answer with a client of our own before it is loaded.

mod calls;
mod cgdiff;
mod child;
mod h2load;
mod idle;
mod instructions;
mod machine;
mod report;
mod servers;
mod stream;
mod ws;

/// connect-rust's generated code for `grpc.testing.TestService` (see `build.rs`).
mod connect_gen {
    #![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
    connectrpc::include_generated!();
}

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

use crate::calls::HttpCall;
use crate::child::Server;
use crate::h2load::Shape;
use crate::report::{IdleKind, IdleRow, InstrRow, Row, Sample, Side, Summary};
use crate::servers::Kind;

/// portway's benchmarks: A (portway) against B (a baseline) in the same run.
#[derive(Debug, Parser)]
#[command(
    about,
    after_help = "Also: `portway-bench callgrind-diff A.out [B.out] [--calls N]` compares callgrind dumps;\n\
                  internal: `portway-bench serve <KIND> [--cpu N] [--threads N]` runs one server."
)]
struct Args {
    /// What to run.
    #[arg(required = true, value_enum)]
    suites: Vec<Suite>,
    /// A short development run: one alternation of 1 s samples, 1,000 idle connections.
    #[arg(long)]
    quick: bool,
    /// A/B alternations per row (default 5; 1 with --quick).
    #[arg(long)]
    rounds: Option<u32>,
    /// Seconds per sample (default 3; 1 with --quick).
    #[arg(long)]
    duration: Option<u64>,
    /// Idle HTTP/2 connections and idle WebSockets for the memory benchmark (default 10,000 of
    /// each; 1,000 with --quick).
    #[arg(long)]
    idle_connections: Option<usize>,
    /// Runtime worker threads of each server (default 1: servers get one core).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Run the baselines with their libraries' default connection settings (no HTTP/2
    /// keepalive pings, no graceful shutdown) instead of portway's.
    #[arg(long)]
    baseline_defaults: bool,
    /// Do not pin servers and load generators to separate cores.
    #[arg(long)]
    no_pin: bool,
    /// Keep the callgrind dumps of the `instructions` suite here (for `callgrind_annotate`).
    #[arg(long)]
    profile_dir: Option<PathBuf>,
    /// Also write the markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Native gRPC unary: portway vs tonic::transport::Server.
    GrpcUnary,
    /// Native gRPC bidirectional streaming: portway vs tonic::transport::Server.
    GrpcStream,
    /// gRPC-Web over HTTP/2 and HTTP/1.1: portway vs tonic + tonic-web.
    GrpcWeb,
    /// Connect unary, JSON and proto: portway vs connect-rust.
    Connect,
    /// JSON over HTTP: portway (Connect JSON) vs an axum + serde_json handler.
    Json,
    /// WebSocket bidi echo: portway's `portway.v1.json` protocol vs a tokio-tungstenite echo.
    Websocket,
    /// Memory per idle HTTP/2 connection (portway vs tonic) and per idle WebSocket (portway vs
    /// a tokio-tungstenite echo).
    IdleMemory,
    /// User-space instructions per request (or stream message) under callgrind: deterministic.
    Instructions,
    /// Proxy mode: portway in front of a tonic server (passthrough native gRPC, Connect JSON
    /// transcoded with the upstream's descriptors) against calling that server directly; the
    /// CPU and instructions per call of the portway process are what it adds.
    Proxy,
    /// Everything above.
    All,
}

/// `serve` subcommand arguments (the harness's child processes).
#[derive(Debug, Parser)]
struct ServeArgs {
    #[arg(value_enum)]
    kind: Kind,
    #[arg(long)]
    cpu: Option<usize>,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Library defaults instead of portway's connection settings (baselines only).
    #[arg(long)]
    plain: bool,
}

/// `callgrind-diff` arguments: self cost per call by function, A minus B.
#[derive(Debug, Parser)]
struct DiffArgs {
    /// A callgrind dump (e.g. `callgrind.grpc-unary.portway.h2_1_1.out.2`).
    a: PathBuf,
    /// The dump to subtract (e.g. the baseline's); without it, A's own costs.
    b: Option<PathBuf>,
    /// Calls the dumps cover (the `instructions` suite counts 5,120; 1,024 with --quick).
    #[arg(long, default_value_t = 5120)]
    calls: u64,
    /// Functions to list.
    #[arg(long, default_value_t = 40)]
    top: usize,
}

/// Raises the soft open-file limit to the hard limit (10,000 idle connections need it).
pub fn raise_nofile() {
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
}

struct Plan {
    rounds: u32,
    duration: Duration,
    warmup: Duration,
    idle_connections: usize,
    idle_rounds: u32,
    server_cpu: Option<usize>,
    server_threads: usize,
    work_dir: PathBuf,
    profile_dir: PathBuf,
    instr_warmup: u64,
    instr_requests: u64,
    baseline_defaults: bool,
}

impl Plan {
    async fn start(&self, kind: Kind) -> anyhow::Result<Server> {
        Server::start(kind, self.server_cpu, self.server_threads, self.baseline_defaults).await
    }
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).is_some_and(|a| a == "serve") {
        let serve = ServeArgs::parse_from(argv.iter().skip(1));
        return servers::run(serve.kind, serve.cpu, serve.threads, serve.plain);
    }
    if argv.get(1).is_some_and(|a| a == "callgrind-diff") {
        let diff = DiffArgs::parse_from(argv.iter().skip(1));
        return cgdiff::run(&diff.a, diff.b.as_deref(), diff.calls, diff.top);
    }
    let args = Args::parse();

    // Read before pinning, which narrows what this process sees to one core.
    let machine_before = machine::describe();
    // Pinning: load generators (this process and the h2load children it starts) on the first
    // core, servers on the last one.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (client_cpu, server_cpu) = if !args.no_pin && cores.len() >= 2 {
        (cores.first().map(|c| c.id), cores.last().map(|c| c.id))
    } else {
        (None, None)
    };
    if let Some(c) = client_cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: c });
    }
    raise_nofile();

    let mut suites: Vec<Suite> = args.suites.clone();
    if suites.contains(&Suite::All) {
        suites = vec![
            Suite::GrpcUnary,
            Suite::GrpcStream,
            Suite::GrpcWeb,
            Suite::Connect,
            Suite::Json,
            Suite::Websocket,
            Suite::IdleMemory,
            Suite::Instructions,
            Suite::Proxy,
        ];
    }
    let needs_h2load = suites
        .iter()
        .any(|s| matches!(s, Suite::GrpcUnary | Suite::GrpcWeb | Suite::Connect | Suite::Json | Suite::Proxy));
    if needs_h2load && !h2load::available() {
        bail!("h2load not found: install it (Debian/Ubuntu: apt-get install -y nghttp2-client)");
    }

    let work_dir = std::env::temp_dir().join(format!("portway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir)?;
    let plan = Plan {
        rounds: args.rounds.unwrap_or(if args.quick { 1 } else { 5 }).max(1),
        duration: Duration::from_secs(args.duration.unwrap_or(if args.quick { 1 } else { 3 }).max(1)),
        warmup: Duration::from_secs(1),
        idle_connections: args.idle_connections.unwrap_or(if args.quick { 1_000 } else { 10_000 }),
        idle_rounds: if args.quick { 1 } else { 3 },
        server_cpu,
        server_threads: args.server_threads.unwrap_or(1),
        work_dir: work_dir.clone(),
        profile_dir: args.profile_dir.clone().unwrap_or_else(|| work_dir.clone()),
        // Multiples of 128, so that they split evenly over 8 × 16 streams.
        instr_warmup: if args.quick { 128 } else { 512 },
        instr_requests: if args.quick { 1_024 } else { 5_120 },
        baseline_defaults: args.baseline_defaults,
    };
    std::fs::create_dir_all(&plan.profile_dir)?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let load_before = machine::loadavg();
    let busy_before = machine::CpuUse::now(&[]);
    let (rows, idle, instr) = rt.block_on(run_suites(&suites, &plan))?;
    let load_after = machine::loadavg();
    let others = busy_before.and_then(|before| machine::CpuUse::now(&[]).map(|after| after.others_since(&before)));
    let _ = std::fs::remove_dir_all(&work_dir);

    let mut md = String::new();
    let _ = writeln!(md, "### Run\n");
    let _ = writeln!(md, "- Command: `cargo run --release -p portway-bench -- {}`", argv[1..].join(" "));
    let _ = writeln!(md, "- {machine_before}");
    let _ = writeln!(
        md,
        "- Pinning: {}; {} server runtime worker thread(s)",
        match (client_cpu, server_cpu) {
            (Some(c), Some(s)) => format!("load generators on CPU {c}, servers on CPU {s}"),
            _ => "none".into(),
        },
        plan.server_threads
    );
    let _ = writeln!(
        md,
        "- Baselines: {}",
        if plan.baseline_defaults {
            "their libraries' default connection settings (`--baseline-defaults`)"
        } else {
            "portway's default connection settings (HTTP/2 keepalive pings, stream and header limits, \
             TCP_NODELAY, graceful shutdown)"
        }
    );
    let _ = writeln!(md, "- Load average (1/5/15 min): {load_before} before, {load_after} after");
    if let Some(o) = others {
        let _ = writeln!(
            md,
            "- Other processes on the machine used {:.2} CPU on average over the {:.0} s run (all busy CPU \
             time in /proc/stat, including {:.2} CPU stolen by the hypervisor, minus this harness, its \
             servers and h2load); the last column of the table gives the same per row",
            o.others, o.seconds, o.steal
        );
    }
    let _ = writeln!(
        md,
        "- {} alternation(s) A B per row, {} s per sample (after a {} s unmeasured warm-up of each); \
         payload {} bytes each way; figures are medians over the samples",
        plan.rounds,
        plan.duration.as_secs(),
        plan.warmup.as_secs(),
        calls::PAYLOAD
    );
    if !rows.is_empty() {
        let _ = writeln!(md, "\n### Throughput, latency and server CPU per request\n");
        md.push_str(&report::table(&rows));
    }
    if !idle.is_empty() {
        let _ = writeln!(md, "\n### Memory per idle HTTP/2 connection and per idle WebSocket\n");
        md.push_str(&report::idle_table(&idle));
    }
    if !instr.is_empty() {
        let _ = writeln!(
            md,
            "\n### Instructions per request (callgrind; {} requests after {} of warm-up, one server thread)\n",
            plan.instr_requests, plan.instr_warmup
        );
        md.push_str(&report::instr_table(&instr));
    }
    let _ = writeln!(md, "\n### Targets\n");
    md.push_str(&report::targets(&rows, &idle, &instr));
    println!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

async fn run_suites(suites: &[Suite], plan: &Plan) -> anyhow::Result<(Vec<Row>, Vec<IdleRow>, Vec<InstrRow>)> {
    let mut rows = Vec::new();
    let mut idle = Vec::new();
    let mut instr = Vec::new();
    let h2 =
        [Shape::H2 { conns: 1, streams: 1 }, Shape::H2 { conns: 8, streams: 16 }, Shape::H2 { conns: 50, streams: 20 }];
    let h1 = Shape::H1 { conns: 128 };
    for suite in suites {
        eprintln!("== {suite:?}");
        match suite {
            Suite::GrpcUnary => {
                let (a, b) = pair(Kind::Portway, Kind::Tonic, plan).await?;
                for shape in h2 {
                    rows.push(unary_row(plan, "grpc-unary", "gRPC unary", &a, &b, calls::grpc(), shape).await);
                }
            }
            Suite::GrpcStream => {
                let (a, b) = pair(Kind::Portway, Kind::Tonic, plan).await?;
                for shape in h2 {
                    let Shape::H2 { conns, streams } = shape else { continue };
                    let (sa, sb, others) =
                        ab(plan, &a, &b, |s, d| stream::run(s, conns, streams, h2load::Budget::Time(d))).await;
                    rows.push(Row {
                        suite: "grpc-stream",
                        path: "gRPC bidi stream (per message)".into(),
                        shape: shape.label(),
                        baseline: Kind::Tonic.label(),
                        a: sa,
                        b: sb,
                        others,
                    });
                }
            }
            Suite::GrpcWeb => {
                let (a, b) = pair(Kind::Portway, Kind::TonicWeb, plan).await?;
                for shape in h2.into_iter().chain([h1]) {
                    rows.push(unary_row(plan, "grpc-web", "gRPC-Web unary", &a, &b, calls::grpc_web(), shape).await);
                }
            }
            Suite::Connect => {
                let (a, b) = pair(Kind::Portway, Kind::ConnectRust, plan).await?;
                for shape in h2.into_iter().chain([h1]) {
                    rows.push(
                        unary_row(plan, "connect-json", "Connect unary JSON", &a, &b, calls::connect_json(), shape)
                            .await,
                    );
                }
                for shape in h2.into_iter().chain([h1]) {
                    rows.push(
                        unary_row(plan, "connect-proto", "Connect unary proto", &a, &b, calls::connect_proto(), shape)
                            .await,
                    );
                }
            }
            Suite::Json => {
                let (a, b) = pair(Kind::Portway, Kind::AxumJson, plan).await?;
                for shape in h2.into_iter().chain([h1]) {
                    rows.push(unary_row(plan, "json", "JSON over HTTP", &a, &b, calls::connect_json(), shape).await);
                }
            }
            Suite::Websocket => {
                let (a, b) = pair(Kind::Portway, Kind::WsEcho, plan).await?;
                // sockets × messages in flight on each
                for (conns, window) in [(1u32, 1u32), (1, 16), (128, 1)] {
                    eprintln!("   WebSocket ws {conns}×{window}");
                    let (sa, sb, others) = ab(plan, &a, &b, |s, d| ws::run(s, conns, window, d)).await;
                    rows.push(Row {
                        suite: "websocket",
                        path: "WebSocket bidi echo (per message)".into(),
                        shape: format!("ws {conns}×{window}"),
                        baseline: Kind::WsEcho.label(),
                        a: sa,
                        b: sb,
                        others,
                    });
                }
            }
            Suite::IdleMemory => {
                for (what, baseline) in [(IdleKind::Http2, Kind::Tonic), (IdleKind::WebSocket, Kind::WsEcho)] {
                    let mut per = [
                        (Kind::Portway, IdleRow::new("portway", what, plan)),
                        (baseline, IdleRow::new(baseline.label(), what, plan)),
                    ];
                    for round in 0..plan.idle_rounds {
                        for (kind, row) in per.iter_mut() {
                            eprintln!("   idle {} memory {} round {}", what.label(), kind.label(), round + 1);
                            let result = async {
                                let server = plan.start(*kind).await?;
                                match what {
                                    IdleKind::Http2 => idle::run(&server, plan.idle_connections).await,
                                    IdleKind::WebSocket => idle::run_ws(&server, plan.idle_connections).await,
                                }
                            }
                            .await;
                            match result {
                                Ok((before, after)) => {
                                    row.rss_before.push(before);
                                    row.rss_after.push(after);
                                    row.per_conn
                                        .push(after.saturating_sub(before) as f64 / plan.idle_connections as f64);
                                }
                                Err(e) => row.error = Some(format!("{e:#}")),
                            }
                        }
                    }
                    idle.extend(per.into_iter().map(|(_, r)| r));
                }
            }
            Suite::Instructions => {
                use instructions::Work;
                let h1one = Shape::H1 { conns: 1 };
                let stream_one = Work::Stream { conns: 1, streams: 1 };
                let stream_many = Work::Stream { conns: 8, streams: 16 };
                let cases: [(&'static str, &'static str, Kind, Work); 10] = [
                    ("grpc-unary", "gRPC unary", Kind::Tonic, Work::Unary(calls::grpc(), h2[0])),
                    ("grpc-unary", "gRPC unary", Kind::Tonic, Work::Unary(calls::grpc(), h2[1])),
                    ("grpc-stream", "gRPC bidi stream (per message)", Kind::Tonic, stream_one),
                    ("grpc-stream", "gRPC bidi stream (per message)", Kind::Tonic, stream_many),
                    ("grpc-web", "gRPC-Web unary", Kind::TonicWeb, Work::Unary(calls::grpc_web(), h2[0])),
                    ("grpc-web", "gRPC-Web unary", Kind::TonicWeb, Work::Unary(calls::grpc_web(), h1one)),
                    (
                        "connect-json",
                        "Connect unary JSON",
                        Kind::ConnectRust,
                        Work::Unary(calls::connect_json(), h2[0]),
                    ),
                    (
                        "connect-proto",
                        "Connect unary proto",
                        Kind::ConnectRust,
                        Work::Unary(calls::connect_proto(), h2[0]),
                    ),
                    ("json", "JSON over HTTP", Kind::AxumJson, Work::Unary(calls::connect_json(), h2[0])),
                    ("json", "JSON over HTTP", Kind::AxumJson, Work::Unary(calls::connect_json(), h1one)),
                ];
                if !instructions::available() {
                    eprintln!("   valgrind not found: skipping (apt-get install -y valgrind)");
                    continue;
                }
                let setup = instructions::Setup {
                    warmup: plan.instr_warmup,
                    requests: plan.instr_requests,
                    plain: plan.baseline_defaults,
                    work_dir: &plan.work_dir,
                };
                for (suite, path, baseline, work) in cases {
                    let shape = work.shape();
                    eprintln!("   {path} {} (callgrind)", shape.label());
                    let one = async |kind: Kind| {
                        let out = instructions::out_file(&plan.profile_dir, suite, kind, &work);
                        instructions::per_request(kind, &work, &setup, &out).await.map_err(|e| format!("{e:#}"))
                    };
                    let a = one(Kind::Portway).await;
                    let b = one(baseline).await;
                    instr.push(InstrRow { suite, path, shape: shape.label(), baseline: baseline.label(), a, b });
                }
            }
            Suite::Proxy => proxy_suite(plan, &mut rows, &mut instr).await?,
            Suite::All => unreachable!("expanded above"),
        }
    }
    Ok((rows, idle, instr))
}

impl IdleRow {
    fn new(server: &'static str, what: IdleKind, plan: &Plan) -> Self {
        Self {
            server,
            what,
            connections: plan.idle_connections,
            per_conn: Vec::new(),
            rss_before: Vec::new(),
            rss_after: Vec::new(),
            error: None,
        }
    }
}

async fn pair(a: Kind, b: Kind, plan: &Plan) -> anyhow::Result<(Server, Server)> {
    Ok((plan.start(a).await?, plan.start(b).await?))
}

/// One h2load row: spot-check both servers, then alternate.
async fn unary_row(
    plan: &Plan,
    suite: &'static str,
    path: &str,
    a: &Server,
    b: &Server,
    call: HttpCall,
    shape: Shape,
) -> Row {
    unary_row2(plan, suite, path, (a, call.clone()), (b, call), shape).await
}

/// An h2load row whose sides make different calls (a JSON call through portway against the
/// same call in native gRPC to the server behind it, say).
async fn unary_row2(
    plan: &Plan,
    suite: &'static str,
    path: &str,
    (a, call_a): (&Server, HttpCall),
    (b, call_b): (&Server, HttpCall),
    shape: Shape,
) -> Row {
    eprintln!("   {path} {}", shape.label());
    let expected = async {
        let ea = calls::spot_check(a.addr, &call_a, shape.is_h1()).await.context("A (portway)")?;
        let eb = calls::spot_check(b.addr, &call_b, shape.is_h1())
            .await
            .with_context(|| format!("B ({})", b.kind.label()))?;
        anyhow::Ok((ea, eb))
    }
    .await;
    let (a_side, b_side, others) = match expected {
        Err(e) => {
            let why = format!("spot check failed: {e:#}");
            (Side::Failed(why.clone()), Side::Failed(why), None)
        }
        Ok((ea, eb)) => {
            let work = plan.work_dir.as_path();
            let (call_a, call_b) = (&call_a, &call_b);
            ab(plan, a, b, move |s: &Server, d| {
                let (call, expected) = if std::ptr::eq(s, a) { (call_a, ea) } else { (call_b, eb) };
                h2load_sample(s, call, shape, d, expected, work)
            })
            .await
        }
    };
    Row { suite, path: path.into(), shape: shape.label(), baseline: b.kind.label(), a: a_side, b: b_side, others }
}

/// The `proxy` suite: A is portway in front of a tonic server (B), B is that server called
/// directly. A's CPU and instructions per call are the portway process's alone: what the hop
/// adds (the upstream does the same work either way).
async fn proxy_suite(plan: &Plan, rows: &mut Vec<Row>, instr: &mut Vec<InstrRow>) -> anyhow::Result<()> {
    let upstream = plan.start(Kind::Tonic).await?;
    let proxy = Server::start_proxy(upstream.addr, plan.server_cpu, plan.server_threads, None).await?;
    let label = "portway --upstream (A) / the upstream, tonic (B)";
    for shape in [Shape::H2 { conns: 1, streams: 1 }, Shape::H2 { conns: 8, streams: 16 }] {
        let grpc = (&proxy, calls::grpc());
        rows.push(
            unary_row2(plan, "proxy-grpc", "gRPC unary, forwarded", grpc, (&upstream, calls::grpc()), shape).await,
        );
    }
    // (B is native gRPC, so HTTP/2 only.)
    for shape in [Shape::H2 { conns: 1, streams: 1 }, Shape::H2 { conns: 8, streams: 16 }] {
        let json = (&proxy, calls::connect_json());
        rows.push(
            unary_row2(
                plan,
                "proxy-json",
                "Connect JSON, transcoded from the upstream's descriptors",
                json,
                (&upstream, calls::grpc()),
                shape,
            )
            .await,
        );
    }
    for row in rows.iter_mut().filter(|r| r.suite.starts_with("proxy-")) {
        row.baseline = label;
    }
    drop(proxy);
    if !instructions::available() {
        eprintln!("   valgrind not found: skipping the proxy's instruction counts (apt-get install -y valgrind)");
        return Ok(());
    }
    let setup = instructions::Setup {
        warmup: plan.instr_warmup,
        requests: plan.instr_requests,
        plain: plan.baseline_defaults,
        work_dir: &plan.work_dir,
    };
    let one_one = Shape::H2 { conns: 1, streams: 1 };
    for (suite, path, call) in [
        ("proxy-grpc", "gRPC unary, forwarded", calls::grpc()),
        ("proxy-json", "Connect JSON, transcoded from the upstream's descriptors", calls::connect_json()),
    ] {
        eprintln!("   {path} {} (callgrind)", one_one.label());
        let a = async {
            let work = instructions::Work::Unary(call, one_one);
            let out = instructions::out_file(&plan.profile_dir, suite, Kind::Proxy, &work);
            instructions::clear(&out);
            let server = Server::start_proxy(upstream.addr, None, 1, Some(&out)).await?;
            instructions::measure(&server, &work, &setup, &out).await
        }
        .await
        .map_err(|e| format!("{e:#}"));
        let b = async {
            let work = instructions::Work::Unary(calls::grpc(), one_one);
            let out = instructions::out_file(&plan.profile_dir, suite, Kind::Tonic, &work);
            instructions::per_request(Kind::Tonic, &work, &setup, &out).await
        }
        .await
        .map_err(|e| format!("{e:#}"));
        instr.push(InstrRow { suite, path, shape: one_one.label(), baseline: label, a, b });
    }
    Ok(())
}

fn h2load_sample<'a>(
    s: &'a Server,
    call: &'a HttpCall,
    shape: Shape,
    d: Duration,
    expected: u64,
    work: &'a Path,
) -> impl std::future::Future<Output = anyhow::Result<Sample>> + 'a {
    h2load::run(s, call, shape, h2load::Budget::Time(d), expected, work)
}

/// Warm-up of each side, then `rounds` alternations A B; failures end that side's sampling.
async fn ab<'s, F, Fut>(plan: &Plan, a: &'s Server, b: &'s Server, mut f: F) -> (Side, Side, Option<f64>)
where
    F: FnMut(&'s Server, Duration) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Sample>>,
{
    let before = machine::CpuUse::now(&[a, b]);
    let mut errors: [Option<String>; 2] = [None, None];
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for (i, s) in [a, b].into_iter().enumerate() {
        if let Err(e) = f(s, plan.warmup).await {
            errors[i] = Some(format!("{e:#}"));
        }
    }
    for _ in 0..plan.rounds {
        for (i, s) in [a, b].into_iter().enumerate() {
            if errors[i].is_some() {
                continue;
            }
            match f(s, plan.duration).await {
                Ok(sample) => samples[i].push(sample),
                Err(e) => errors[i] = Some(format!("{e:#}")),
            }
        }
    }
    let others =
        before.and_then(|before| machine::CpuUse::now(&[a, b]).map(|after| after.others_since(&before).others));
    let [sa, sb] = samples;
    let [ea, eb] = errors;
    let side = |samples: Vec<Sample>, err: Option<String>| match err {
        Some(e) => Side::Failed(e),
        None => Side::Measured(Summary::of(samples)),
    };
    (side(sa, ea), side(sb, eb), others)
}
