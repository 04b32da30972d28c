//! Server child processes and what `/proc` says about them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::servers::Kind;

/// A running server: the harness re-executed as `serve <kind>`. Dropping it closes the
/// child's stdin, which makes it exit (so that a profiler it runs under can write its
/// output), and kills it if it has not exited shortly after.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    wrapped: bool,
}

/// Set to a command prefix (e.g. `valgrind --tool=massif --massif-out-file=/tmp/m.%p`), the
/// harness starts every server under it: for ad-hoc profiling with any tool.
pub const WRAP_ENV: &str = "PORTWAY_BENCH_WRAP";

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // A profiler writes its output at exit; give it time. Blocking here is fine: the
        // harness drops servers between runs, never during one.
        let patience = if self.wrapped { Duration::from_secs(30) } else { Duration::from_secs(2) };
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.start_kill();
    }
}

impl Server {
    /// Starts `kind` pinned to `cpu` (if any) with `threads` runtime workers and waits for
    /// the port it prints.
    /// `plain`: a baseline with its library's default connection settings.
    pub async fn start(kind: Kind, cpu: Option<usize>, threads: usize, plain: bool) -> anyhow::Result<Self> {
        Self::start_with(kind, cpu, threads, plain, None).await
    }

    /// Like [`Server::start`], but under valgrind's callgrind (which counts every user-space
    /// instruction the server executes) writing to `callgrind_out` when `Some`.
    pub async fn start_with(
        kind: Kind,
        cpu: Option<usize>,
        threads: usize,
        plain: bool,
        callgrind_out: Option<&Path>,
    ) -> anyhow::Result<Self> {
        Self::spawn(kind, cpu, threads, plain, callgrind_out, None).await
    }

    /// portway in proxy mode ([`Kind::Proxy`]) in front of the server at `upstream`, under
    /// callgrind when `callgrind_out` is `Some`.
    pub async fn start_proxy(
        upstream: SocketAddr,
        cpu: Option<usize>,
        threads: usize,
        callgrind_out: Option<&Path>,
    ) -> anyhow::Result<Self> {
        Self::spawn(Kind::Proxy, cpu, threads, false, callgrind_out, Some(upstream)).await
    }

    async fn spawn(
        kind: Kind,
        cpu: Option<usize>,
        threads: usize,
        plain: bool,
        callgrind_out: Option<&Path>,
        upstream: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let wrap: Vec<String> =
            std::env::var(WRAP_ENV).unwrap_or_default().split_whitespace().map(String::from).collect();
        let wrapped = callgrind_out.is_some() || !wrap.is_empty();
        let mut cmd = match callgrind_out {
            None => match wrap.split_first() {
                None => Command::new(exe),
                Some((program, args)) => {
                    let mut cmd = Command::new(program);
                    cmd.args(args).arg(exe);
                    cmd
                }
            },
            Some(out) => {
                let mut cmd = Command::new("valgrind");
                cmd.arg("--tool=callgrind")
                    .arg("--quiet")
                    // Names in every dump, so that each dump can be annotated on its own.
                    .arg("--compress-strings=no")
                    .arg(format!("--callgrind-out-file={}", out.display()))
                    .arg(exe);
                cmd
            }
        };
        cmd.arg("serve").arg(kind.to_possible_value_name()).arg("--threads").arg(threads.to_string());
        if let Some(cpu) = cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }
        if plain && kind != Kind::Portway {
            cmd.arg("--plain");
        }
        if let Some(upstream) = upstream {
            cmd.env(crate::servers::UPSTREAM_ENV, upstream.to_string());
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().context("spawning server")?;
        let pid = child.id().context("server pid")?;
        let stdin = Some(child.stdin.take().context("server stdin")?);
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("server did not print its port within 60 s")??
            .context("server exited before printing its port")?;
        let Some(port) = line.strip_prefix("PORT ").and_then(|p| p.trim().parse::<u16>().ok()) else {
            bail!("unexpected server output {line:?}");
        };
        Ok(Self { kind, addr: SocketAddr::from(([127, 0, 0, 1], port)), pid, child, stdin, wrapped })
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(self.pid)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
        let kib: u64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
        Ok(kib * 1024)
    }
}

trait PossibleValueName {
    fn to_possible_value_name(&self) -> String;
}

impl PossibleValueName for Kind {
    fn to_possible_value_name(&self) -> String {
        use clap::ValueEnum as _;
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

/// utime + stime of `pid` from `/proc/<pid>/stat` (all threads of the process).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    let ticks = clock_ticks();
    Ok(Duration::from_secs_f64((utime + stime) as f64 / ticks as f64))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}
