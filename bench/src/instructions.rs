//! Instructions per request, counted by valgrind's callgrind: deterministic where time is not,
//! so small differences between A and B show up even on a busy machine. (User-space only:
//! system calls are in the CPU-time column of the main table, not here.)
//!
//! Each server runs under callgrind; after a spot check and a warm-up, the harness dumps and
//! zeroes the counters (`callgrind_control --dump`), sends exactly N requests with h2load,
//! dumps again, and divides the second dump's total by N. The dumps are kept in
//! `--profile-dir` for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail, ensure};

use crate::calls::{self, HttpCall};
use crate::child::Server;
use crate::h2load::{self, Budget, Shape};
use crate::servers::Kind;
use crate::stream;

/// valgrind and callgrind_control are installed.
pub fn available() -> bool {
    ["valgrind", "callgrind_control"].iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Where one measurement's dumps go.
pub fn out_file(dir: &Path, suite: &str, kind: Kind, work: &Work) -> PathBuf {
    let shape = work.shape().label().replace(['×', ' '], "_");
    dir.join(format!("callgrind.{suite}.{}.{shape}.out", kind.label().replace('+', "_")))
}

/// How each measurement runs.
pub struct Setup<'a> {
    /// Requests before the counters are zeroed.
    pub warmup: u64,
    /// Requests counted.
    pub requests: u64,
    /// Baselines with their libraries' default connection settings.
    pub plain: bool,
    /// Where h2load's body and log files go.
    pub work_dir: &'a Path,
}

/// What a measurement sends.
pub enum Work {
    /// Unary calls with h2load.
    Unary(HttpCall, Shape),
    /// Messages on `conns` × `streams` bidirectional streams (see [`crate::stream`]).
    Stream { conns: u32, streams: u32 },
}

impl Work {
    /// The connection shape it uses.
    pub fn shape(&self) -> Shape {
        match self {
            Work::Unary(_, shape) => *shape,
            Work::Stream { conns, streams } => Shape::H2 { conns: *conns, streams: *streams },
        }
    }
}

/// Instructions per request (or stream message) of `kind` doing `work`; the dumps go to
/// `out.1` (start-up and warm-up) and `out.2` (the counted requests).
pub async fn per_request(kind: Kind, work: &Work, setup: &Setup<'_>, out: &Path) -> anyhow::Result<f64> {
    clear(out);
    let server = Server::start_with(kind, None, 1, setup.plain, Some(out)).await?;
    measure(&server, work, setup, out).await
}

/// The same for a server already started under callgrind writing to `out`.
pub async fn measure(server: &Server, work: &Work, setup: &Setup<'_>, out: &Path) -> anyhow::Result<f64> {
    let count = match work {
        Work::Unary(call, shape) => {
            let shape = *shape;
            let expected = calls::spot_check(server.addr, call, shape.is_h1()).await.context("spot check")?;
            h2load::run(server, call, shape, Budget::Requests(setup.warmup), expected, setup.work_dir).await?;
            dump(server, out, 1).await?;
            let budget = Budget::Requests(setup.requests);
            h2load::run(server, call, shape, budget, expected, setup.work_dir).await?.count
        }
        Work::Stream { conns, streams } => {
            stream::run(server, *conns, *streams, Budget::Requests(setup.warmup)).await?;
            dump(server, out, 1).await?;
            stream::run(server, *conns, *streams, Budget::Requests(setup.requests)).await?.count
        }
    };
    dump(server, out, 2).await?;
    ensure!(count == setup.requests, "{count} of {} requests succeeded", setup.requests);
    let total = summary(&dump_file(out, 2))?;
    Ok(total as f64 / setup.requests as f64)
}

/// Removes the dumps of an earlier run at `out`.
pub fn clear(out: &Path) {
    for n in 1..=2 {
        let _ = std::fs::remove_file(dump_file(out, n));
    }
}

fn dump_file(out: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", out.display()))
}

/// Dumps (and zeroes) the counters; waits until dump number `n` is on disk.
async fn dump(server: &Server, out: &Path, n: u32) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("callgrind_control")
        .arg("--dump")
        .arg(server.pid().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    ensure!(status.success(), "callgrind_control failed: {status}");
    let file = dump_file(out, n);
    for _ in 0..600 {
        if std::fs::read_to_string(&file).is_ok_and(|s| s.lines().any(|l| l.starts_with("totals:"))) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("no callgrind dump at {}", file.display())
}

/// The instruction total of a dump.
fn summary(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file)?;
    let line = text
        .lines()
        .find(|l| l.starts_with("summary:") || l.starts_with("totals:"))
        .context("no summary line in the callgrind dump")?;
    Ok(line.split_whitespace().nth(1).context("summary value")?.parse()?)
}
