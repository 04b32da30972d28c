//! The real `portway` binary as a child process, with what `/proc` and `/metrics` say about
//! it: resident memory, open file descriptors, live tasks. For tests that measure what an
//! attack costs the server, where the test's own memory must not count.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::http::guard;

/// A running `portway`; killed when dropped.
pub struct Portway {
    pub addr: SocketAddr,
    pub pid: u32,
    _process: tokio::process::Child,
}

impl Portway {
    /// Starts `portway --interop --storage memory` with `args` on an ephemeral port and waits
    /// for the address it logs.
    pub async fn start(args: &[&str]) -> Self {
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_portway"))
            .args(["--listen", "127.0.0.1:0", "--interop", "--storage", "memory"])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn portway");
        let pid = process.id().expect("pid");
        let mut lines = BufReader::new(process.stderr.take().expect("stderr")).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                if let Some(rest) = line.split("address=").nth(1).filter(|_| line.contains("portway listening")) {
                    return rest.split_whitespace().next().and_then(|a| a.parse().ok());
                }
            }
            None
        })
        .await
        .expect("portway started within 60 s")
        .expect("portway logged its address");
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { addr, pid, _process: process }
    }

    /// Resident memory, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|d| d.count()).unwrap_or(0)
    }

    /// The `/metrics` text, fetched on a new HTTP/1.1 connection.
    pub async fn metrics(&self) -> String {
        guard(async {
            let mut tcp = TcpStream::connect(self.addr).await.expect("connect");
            tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("write");
            let mut out = String::new();
            tcp.read_to_string(&mut out).await.expect("read");
            out
        })
        .await
    }

    /// One value from `/metrics` (a line `name value`).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
    }

    /// Waits until the server runs at most `tasks` live tasks and holds at most `open`
    /// connections (the one asking excluded), i.e. until what a client left behind is gone.
    pub async fn settles_to(&self, tasks: u64, open: u64) {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                // Asking costs a connection (and its task) of its own.
                if self.metric("portway_runtime_tasks").await <= tasks.saturating_add(1)
                    && self.metric("portway_connections_open").await <= open.saturating_add(1)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the server did not return to {tasks} tasks / {open} connections"));
    }
}
