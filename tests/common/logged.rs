//! The real `portway` binary as a child process whose log lines the test reads, and to which
//! it sends signals: for TLS reloads (SIGHUP) and graceful shutdown (SIGTERM, SIGINT).

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// How long a step of a process test may take (start-up includes a first build's load).
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `portway` with its log; killed when dropped.
pub struct Logged {
    /// The first address it logged.
    pub addr: SocketAddr,
    pub pid: u32,
    process: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line read so far.
    pub history: Vec<String>,
}

/// Sends every line `from` writes to `to`.
fn forward(from: impl AsyncRead + Unpin + Send + 'static, to: mpsc::UnboundedSender<String>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if to.send(line).is_err() {
                break;
            }
        }
    });
}

impl Logged {
    /// Starts `portway --listen 127.0.0.1:0 ARGS` and waits for the address it logs.
    pub async fn start(args: &[&str]) -> Self {
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_portway"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn portway");
        let pid = process.id().expect("pid");
        let (tx, lines) = mpsc::unbounded_channel();
        forward(process.stdout.take().expect("stdout"), tx.clone());
        forward(process.stderr.take().expect("stderr"), tx);
        let mut me = Self { addr: SocketAddr::from(([0, 0, 0, 0], 0)), pid, process, lines, history: Vec::new() };
        let line = me.wait_for("portway listening").await;
        me.addr = line
            .split("address=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line}"));
        me
    }

    /// The next log line that contains `needle` (earlier lines are passed over).
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = self.lines.recv().await {
                self.history.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!("portway exited without logging `{needle}`; its log:\n{}", self.history.join("\n")),
            Err(_) => {
                panic!("portway did not log `{needle}` within {PATIENCE:?}; its log:\n{}", self.history.join("\n"))
            }
        }
    }

    /// The first line read so far that contains `needle`.
    pub fn logged(&self, needle: &str) -> Option<&str> {
        self.history.iter().map(String::as_str).find(|l| l.contains(needle))
    }

    /// Sends `signal` (e.g. `rustix::process::Signal::TERM`).
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid as i32).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("signal portway");
    }

    /// Waits for the process to exit, for at most `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        tokio::time::timeout(limit, self.process.wait())
            .await
            .unwrap_or_else(|_| panic!("portway still running after {limit:?}"))
            .expect("wait for portway")
    }
}
