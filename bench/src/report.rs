//! Samples, medians and the markdown the harness prints.

use std::fmt::Write as _;
use std::time::Duration;

/// One timed run against one server.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Requests (or messages) that completed successfully.
    pub count: u64,
    /// How long the load ran.
    pub elapsed: Duration,
    /// Server CPU time (user + system) used during the run.
    pub cpu: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl Sample {
    pub fn new(count: u64, elapsed: Duration, cpu: Duration, mut latencies_us: Vec<u64>) -> Self {
        latencies_us.sort_unstable();
        Self { count, elapsed, cpu, p50_us: percentile(&latencies_us, 0.50), p99_us: percentile(&latencies_us, 0.99) }
    }

    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Server CPU microseconds per request.
    pub fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / (self.count.max(1) as f64)
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// The median of each metric over a side's samples.
#[derive(Debug, Clone)]
pub struct Summary {
    pub rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us: f64,
    pub samples: Vec<Sample>,
}

impl Summary {
    pub fn of(samples: Vec<Sample>) -> Self {
        Self {
            rate: median(samples.iter().map(Sample::rate)),
            p50_us: median(samples.iter().map(|s| s.p50_us as f64)),
            p99_us: median(samples.iter().map(|s| s.p99_us as f64)),
            cpu_us: median(samples.iter().map(Sample::cpu_us)),
            samples,
        }
    }
}

pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// What one side of a row produced.
#[derive(Debug, Clone)]
pub enum Side {
    Measured(Summary),
    Failed(String),
}

impl Side {
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Side::Measured(s) => Some(s),
            _ => None,
        }
    }
}

/// One line of the table: A (portway) and B (a baseline) on the same path and shape.
#[derive(Debug, Clone)]
pub struct Row {
    pub suite: &'static str,
    pub path: String,
    pub shape: String,
    pub baseline: &'static str,
    pub a: Side,
    pub b: Side,
    /// CPUs' worth of other processes' work (steal included) while the row ran.
    pub others: Option<f64>,
}

impl Row {
    /// Per-round CPU ratios (A_i / B_i of the alternating pairs): their spread shows the noise.
    fn cpu_ratio_range(&self) -> Option<(f64, f64)> {
        let (a, b) = (self.a.summary()?, self.b.summary()?);
        let ratios: Vec<f64> = a.samples.iter().zip(&b.samples).map(|(a, b)| a.cpu_us() / b.cpu_us()).collect();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (!ratios.is_empty()).then_some((min, max))
    }
}

/// Memory held by idle HTTP/2 connections.
/// What sits idle in the idle-memory benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleKind {
    Http2,
    WebSocket,
}

impl IdleKind {
    pub fn label(self) -> &'static str {
        match self {
            IdleKind::Http2 => "HTTP/2 connection",
            IdleKind::WebSocket => "WebSocket",
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdleRow {
    pub server: &'static str,
    pub what: IdleKind,
    pub connections: usize,
    /// RSS deltas divided by the connection count, one per sample (bytes).
    pub per_conn: Vec<f64>,
    pub rss_before: Vec<u64>,
    pub rss_after: Vec<u64>,
    pub error: Option<String>,
}

impl IdleRow {
    pub fn median_per_conn(&self) -> f64 {
        median(self.per_conn.iter().copied())
    }
}

/// Instructions per request, A and B.
#[derive(Debug, Clone)]
pub struct InstrRow {
    pub suite: &'static str,
    pub path: &'static str,
    pub shape: String,
    pub baseline: &'static str,
    pub a: Result<f64, String>,
    pub b: Result<f64, String>,
}

impl InstrRow {
    fn ratio(&self) -> Option<f64> {
        match (&self.a, &self.b) {
            (Ok(a), Ok(b)) if *b > 0.0 => Some(a / b),
            _ => None,
        }
    }
}

/// The instructions table.
pub fn instr_table(rows: &[InstrRow]) -> String {
    let mut out = String::from(
        "| Path | Shape | B (baseline) | A instructions/req | B instructions/req | **A/B** |\n|---|---|---|--:|--:|--:|\n",
    );
    let cell = |r: &Result<f64, String>| match r {
        Ok(v) => format!("{v:.0}"),
        Err(e) => format!("FAILED: {}", e.replace('\n', " ").replace('|', "/")),
    };
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | **{}** |",
            r.path,
            r.shape,
            r.baseline,
            cell(&r.a),
            cell(&r.b),
            r.ratio().map_or("—".into(), |x| format!("{x:.3}"))
        );
    }
    out
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 { format!("{:.3}", a / b) } else { "—".into() }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The A/B table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| Path | Shape | B (baseline) | A req/s | B req/s | req/s A/B | A p50 µs | B p50 µs | A p99 µs | B p99 µs \
         | p99 A/B | A CPU µs/req | B CPU µs/req | **CPU A/B** | CPU A/B per round | others' CPU |\n",
    );
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for r in rows {
        let others = r.others.map_or("—".into(), |o| format!("{o:.2}"));
        let _ = write!(out, "| {} | {} | {} ", r.path, r.shape, r.baseline);
        match (&r.a, &r.b) {
            (Side::Measured(a), Side::Measured(b)) => {
                let range = r.cpu_ratio_range().map(|(lo, hi)| format!("{lo:.2}–{hi:.2}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {others} |",
                    num(a.rate),
                    num(b.rate),
                    ratio(a.rate, b.rate),
                    num(a.p50_us),
                    num(b.p50_us),
                    num(a.p99_us),
                    num(b.p99_us),
                    ratio(a.p99_us, b.p99_us),
                    num(a.cpu_us),
                    num(b.cpu_us),
                    ratio(a.cpu_us, b.cpu_us),
                    range
                );
            }
            (a, b) => {
                let side = |s: &Side| match s {
                    Side::Measured(_) => String::new(),
                    Side::Failed(why) => format!("FAILED: {}", why.replace('\n', " ").replace('|', "/")),
                };
                let (ar, ap50, ap99, acpu) = match a {
                    Side::Measured(s) => (num(s.rate), num(s.p50_us), num(s.p99_us), num(s.cpu_us)),
                    other => (side(other), "—".into(), "—".into(), "—".into()),
                };
                let (br, bp50, bp99, bcpu) = match b {
                    Side::Measured(s) => (num(s.rate), num(s.p50_us), num(s.p99_us), num(s.cpu_us)),
                    other => (side(other), "—".into(), "—".into(), "—".into()),
                };
                let _ = writeln!(
                    out,
                    "| {ar} | {br} | — | {ap50} | {bp50} | {ap99} | {bp99} | — | {acpu} | {bcpu} | — | | {others} |"
                );
            }
        }
    }
    out
}

/// The idle-memory table.
pub fn idle_table(rows: &[IdleRow]) -> String {
    let mut out = String::new();
    out.push_str(
        "| Idle | Server | Count | RSS before (MiB) | RSS after (MiB) | KiB each (median) | samples (KiB) |\n",
    );
    out.push_str("|---|---|--:|--:|--:|--:|---|\n");
    for r in rows {
        if let Some(e) = &r.error {
            let _ = writeln!(
                out,
                "| {} | {} | {} | FAILED: {} | | | |",
                r.what.label(),
                r.server,
                r.connections,
                e.replace('|', "/")
            );
            continue;
        }
        let mib = |v: &[u64]| num(median(v.iter().map(|b| *b as f64 / 1048576.0)));
        let samples: Vec<String> = r.per_conn.iter().map(|b| format!("{:.2}", b / 1024.0)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | **{:.2}** | {} |",
            r.what.label(),
            r.server,
            r.connections,
            mib(&r.rss_before),
            mib(&r.rss_after),
            r.median_per_conn() / 1024.0,
            samples.join(", ")
        );
    }
    out
}

/// Each target, the measured value and whether it was met.
pub fn targets(rows: &[Row], idle: &[IdleRow], instr: &[InstrRow]) -> String {
    let mut out = String::from("| Target | Measured | Met |\n|---|---|---|\n");
    let find = |suite: &str, shape: &str| {
        rows.iter().find(|r| r.suite == suite && r.shape == shape && r.a.summary().is_some() && r.b.summary().is_some())
    };
    // A suite that was not run at all gets no lines; one that ran but lacks a number says so.
    let ran = |suite: &str| rows.iter().any(|r| r.suite == suite);
    let mut line = |ran: bool, name: &str, measured: Option<(f64, String)>, limit: f64| match measured {
        _ if !ran => {}
        Some((v, text)) => {
            let _ = writeln!(out, "| {name} | {text} | {} |", if v <= limit { "yes" } else { "**no**" });
        }
        None => {
            let _ = writeln!(out, "| {name} | not measured in this run | — |");
        }
    };
    let cpu_ratio = |suite: &str, shape: &str| {
        find(suite, shape).map(|r| {
            let (a, b) = (r.a.summary().map_or(f64::NAN, |s| s.cpu_us), r.b.summary().map_or(f64::NAN, |s| s.cpu_us));
            let noise = match r.cpu_ratio_range() {
                Some((lo, hi)) if hi - lo > 0.2 => format!("; noisy: {lo:.2}–{hi:.2} per round"),
                _ => String::new(),
            };
            (a / b, format!("{:.3} ({shape}{noise})", a / b))
        })
    };
    let p99_ratio = |suite: &str, shape: &str| {
        find(suite, shape).map(|r| {
            let (a, b) = (r.a.summary().map_or(f64::NAN, |s| s.p99_us), r.b.summary().map_or(f64::NAN, |s| s.p99_us));
            (a / b, format!("{:.3} ({shape})", a / b))
        })
    };
    for shape in ["h2 1×1", "h2 8×16", "h2 50×20"] {
        line(ran("grpc-unary"), "native gRPC unary: CPU/req ≤ 1.03× tonic", cpu_ratio("grpc-unary", shape), 1.03);
    }
    for shape in ["h2 1×1", "h2 8×16", "h2 50×20"] {
        line(ran("grpc-unary"), "native gRPC unary: p99 ≤ 1.10× tonic", p99_ratio("grpc-unary", shape), 1.10);
    }
    for shape in ["h2 1×1", "h2 8×16", "h2 50×20"] {
        line(ran("grpc-stream"), "native gRPC streaming: CPU/msg ≤ 1.03× tonic", cpu_ratio("grpc-stream", shape), 1.03);
    }
    for shape in ["h2 1×1", "h2 8×16", "h2 50×20"] {
        line(ran("grpc-web"), "gRPC-Web over HTTP/2: CPU/req ≤ 1.05× tonic-web", cpu_ratio("grpc-web", shape), 1.05);
    }
    for shape in ["h2 1×1", "h2 8×16", "h2 50×20", "h1 128×1"] {
        line(ran("connect-json"), "Connect JSON: CPU/req ≤ connect-rust", cpu_ratio("connect-json", shape), 1.0);
        line(ran("connect-proto"), "Connect proto: CPU/req ≤ connect-rust", cpu_ratio("connect-proto", shape), 1.0);
    }
    for shape in ["h2 1×1", "h2 8×16", "h2 50×20"] {
        let m = rows
            .iter()
            .find(|r| r.suite == "json" && r.shape == shape)
            .and_then(|j| j.a.summary())
            .zip(rows.iter().find(|r| r.suite == "grpc-unary" && r.shape == shape).and_then(|g| g.a.summary()))
            .map(|(j, g)| {
                (
                    j.cpu_us / g.cpu_us,
                    format!("{:.3} ({shape}; {:.1} vs {:.1} µs)", j.cpu_us / g.cpu_us, j.cpu_us, g.cpu_us),
                )
            });
        line(ran("json"), "JSON over HTTP (portway): CPU/req ≤ 1.3× native gRPC (portway)", m, 1.3);
    }
    let instr_a = |suite: &str, shape: &str| {
        instr.iter().find(|r| r.suite == suite && r.shape == shape).and_then(|r| r.a.as_ref().ok().copied())
    };
    let m = instr_a("json", "h2 1×1")
        .zip(instr_a("grpc-unary", "h2 1×1"))
        .map(|(j, g)| (j / g, format!("{:.3} (h2 1×1; {j:.0} vs {g:.0} instructions)", j / g)));
    line(!instr.is_empty(), "JSON over HTTP (portway): instructions/req ≤ 1.3× native gRPC (portway)", m, 1.3);
    for (suite, what, limit) in [
        ("grpc-unary", "native gRPC unary: instructions/req ≤ 1.03× tonic", 1.03),
        ("grpc-stream", "native gRPC streaming: instructions/msg ≤ 1.03× tonic", 1.03),
        ("grpc-web", "gRPC-Web: instructions/req ≤ 1.05× tonic-web", 1.05),
        ("connect-json", "Connect JSON: instructions/req ≤ connect-rust", 1.0),
        ("connect-proto", "Connect proto: instructions/req ≤ connect-rust", 1.0),
    ] {
        for r in instr.iter().filter(|r| r.suite == suite) {
            line(true, what, r.ratio().map(|x| (x, format!("{x:.3} ({})", r.shape))), limit);
        }
    }
    for shape in ["ws 1×1", "ws 1×16", "ws 128×1"] {
        // A rate target: B's rate over A's, so that "≤ 1.25" reads "A ≥ 0.8× B".
        let m = find("websocket", shape).and_then(|r| r.a.summary().zip(r.b.summary())).map(|(a, b)| {
            (
                b.rate / a.rate,
                format!("{:.3}× the echo rate ({shape}; CPU/msg {:.2}×)", a.rate / b.rate, a.cpu_us / b.cpu_us),
            )
        });
        line(ran("websocket"), "WebSocket echo: rate ≥ 0.8× tokio-tungstenite", m, 1.0 / 0.8);
    }
    for (what, limit) in [(IdleKind::Http2, 10.0), (IdleKind::WebSocket, 16.0)] {
        let name = format!("idle memory ≤ {limit} KiB per {}", what.label());
        let m = idle.iter().find(|r| r.server == "portway" && r.what == what && r.error.is_none()).map(|r| {
            let kib = r.median_per_conn() / 1024.0;
            (kib, format!("{kib:.2} KiB"))
        });
        line(idle.iter().any(|r| r.what == what), &name, m, limit);
    }
    out
}
