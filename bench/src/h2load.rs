//! Unary load with h2load (nghttp2-client): HTTP/2 with many streams per connection, or
//! HTTP/1.1 with one request at a time per connection. Latency percentiles come from its
//! per-request log; its summary's status codes and data byte count are checked so that a run
//! in which any request failed is reported as an error, not as a number.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::Command;

use crate::calls::HttpCall;
use crate::child::Server;
use crate::report::Sample;

/// How the load generator connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `conns` HTTP/2 connections with `streams` concurrent streams each.
    H2 { conns: u32, streams: u32 },
    /// `conns` HTTP/1.1 connections, one request in flight on each.
    H1 { conns: u32 },
}

impl Shape {
    pub fn label(self) -> String {
        match self {
            Shape::H2 { conns, streams } => format!("h2 {conns}×{streams}"),
            Shape::H1 { conns } => format!("h1 {conns}×1"),
        }
    }

    pub fn is_h1(self) -> bool {
        matches!(self, Shape::H1 { .. })
    }
}

/// `h2load` is installed (Debian: `nghttp2-client`).
pub fn available() -> bool {
    std::process::Command::new("h2load")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// For this long (`h2load -D`).
    Time(Duration),
    /// Exactly this many requests (`h2load -n`).
    Requests(u64),
}

/// Runs h2load against `server` for the `budget` and returns the sample. `expected_body` is the
/// response body length the spot check saw; every counted response must have carried it.
pub async fn run(
    server: &Server,
    call: &HttpCall,
    shape: Shape,
    budget: Budget,
    expected_body: u64,
    work_dir: &Path,
) -> anyhow::Result<Sample> {
    let body_file = work_dir.join("body.bin");
    std::fs::write(&body_file, &call.body)?;
    let log_file = work_dir.join("h2load.log");
    let _ = std::fs::remove_file(&log_file);

    let mut cmd = Command::new("h2load");
    cmd.arg("-t1");
    let limit = match budget {
        Budget::Time(d) => {
            cmd.arg(format!("-D{}", d.as_secs_f64().max(1.0).round() as u64));
            d + Duration::from_secs(30)
        }
        Budget::Requests(n) => {
            cmd.arg(format!("-n{n}"));
            // Generous: under callgrind a request costs ~100x its native time.
            Duration::from_secs(300)
        }
    };
    cmd.arg(format!("--log-file={}", log_file.display())).arg("-d").arg(&body_file);
    match shape {
        Shape::H2 { conns, streams } => {
            cmd.arg(format!("-c{conns}")).arg(format!("-m{streams}"));
        }
        Shape::H1 { conns } => {
            cmd.arg("--h1").arg(format!("-c{conns}")).arg("-m1");
        }
    }
    for (name, value) in &call.headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    cmd.arg(format!("http://{}{}", server.addr, call.path));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);

    let cpu_before = server.cpu_time()?;
    let started = Instant::now();
    let out = tokio::time::timeout(limit, cmd.output()).await.context("h2load did not finish in time")??;
    let wall = started.elapsed();
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("h2load failed ({}): {}{}", out.status, stdout, String::from_utf8_lossy(&out.stderr));
    }
    let summary = Summary::parse(&stdout).with_context(|| format!("parsing h2load output:\n{stdout}"))?;
    summary.check(expected_body).with_context(|| format!("h2load output:\n{stdout}"))?;

    let log = std::fs::read_to_string(&log_file).context("reading h2load log")?;
    let mut latencies = Vec::with_capacity(summary.succeeded as usize);
    for line in log.lines() {
        let mut cols = line.split('\t');
        let (_start, status, micros) = (cols.next(), cols.next(), cols.next());
        if status != Some("200") {
            bail!("h2load logged a non-200 response: {line:?}");
        }
        latencies.push(micros.context("latency column")?.trim().parse::<u64>()?);
    }
    if latencies.is_empty() {
        bail!("no requests completed");
    }
    Ok(Sample::new(summary.succeeded, summary.elapsed.unwrap_or(wall), cpu, latencies))
}

/// The numbers read from h2load's summary.
#[derive(Debug, Default)]
struct Summary {
    elapsed: Option<Duration>,
    started: u64,
    done: u64,
    succeeded: u64,
    failed: u64,
    errored: u64,
    timeout: u64,
    status_2xx: u64,
    data_bytes: u64,
}

impl Summary {
    fn parse(out: &str) -> anyhow::Result<Self> {
        let mut s = Summary::default();
        for line in out.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("finished in ") {
                // "finished in 3.00s, 1234.5 req/s, 1.2MB/s"
                let t = rest.split(',').next().unwrap_or_default().trim();
                s.elapsed = parse_duration(t);
            } else if let Some(rest) = line.strip_prefix("requests: ") {
                for part in rest.split(',') {
                    let mut it = part.split_whitespace();
                    let (Some(n), Some(what)) = (it.next(), it.next()) else { continue };
                    let n: u64 = n.parse()?;
                    match what {
                        "started" => s.started = n,
                        "done" => s.done = n,
                        "succeeded" => s.succeeded = n,
                        "failed" => s.failed = n,
                        "errored" => s.errored = n,
                        "timeout" => s.timeout = n,
                        _ => {}
                    }
                }
            } else if let Some(rest) = line.strip_prefix("status codes: ") {
                let first = rest.split(',').next().unwrap_or_default();
                s.status_2xx = first.split_whitespace().next().unwrap_or("0").parse()?;
            } else if let Some(rest) = line.strip_prefix("traffic: ") {
                // "... 1.55MB (1620000) data"
                let data = rest.split(',').find(|p| p.trim_end().ends_with("data")).context("no data bytes")?;
                let inner = data.split('(').nth(1).and_then(|p| p.split(')').next()).context("data bytes")?;
                s.data_bytes = inner.trim().parse()?;
            }
        }
        if s.done == 0 {
            bail!("no requests done");
        }
        Ok(s)
    }

    /// Every counted request got HTTP 200 and a complete response body of the expected size
    /// (an error in gRPC's trailers-only form has no body, so it would show up as missing bytes).
    fn check(&self, expected_body: u64) -> anyhow::Result<()> {
        if self.failed != 0 || self.errored != 0 || self.timeout != 0 {
            bail!("{} failed, {} errored, {} timed out", self.failed, self.errored, self.timeout);
        }
        if self.status_2xx != self.succeeded || self.succeeded != self.done {
            bail!("{} done, {} succeeded, {} with 2xx", self.done, self.succeeded, self.status_2xx);
        }
        let min = self.succeeded * expected_body;
        let max = self.started.max(self.done) * expected_body;
        if self.data_bytes < min || self.data_bytes > max {
            bail!(
                "response bytes {} do not match {} successful responses of {expected_body} bytes",
                self.data_bytes,
                self.succeeded
            );
        }
        Ok(())
    }
}

fn parse_duration(t: &str) -> Option<Duration> {
    if let Some(ms) = t.strip_suffix("ms") {
        return ms.parse::<f64>().ok().map(|v| Duration::from_secs_f64(v / 1000.0));
    }
    t.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()).map(Duration::from_secs_f64)
}
