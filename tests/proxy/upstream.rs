//! Real upstream servers in other languages (tests/upstream/), started as child processes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Which upstream program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// tests/upstream/py/server.py (grpcio; reflection v1alpha only).
    Python,
    /// tests/upstream/node/server.mjs (@grpc/grpc-js; reflection v1 and v1alpha).
    Node,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Python, Lang::Node];

    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Node => "node",
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Makes sure tests/upstream/install has run: in CI it must have (a missing package is a
/// failure there); elsewhere it is run once.
fn installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = root().join("tests/upstream");
        let ready = dir.join(".venv/bin/python").exists() && dir.join("node_modules/@grpc/grpc-js").exists();
        if ready {
            return;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tests/upstream is not installed (.ci/run runs tests/upstream/install)"
        );
        let status = std::process::Command::new(dir.join("install")).status().expect("run tests/upstream/install");
        assert!(status.success(), "tests/upstream/install failed");
    });
}

/// A running upstream; stopped when dropped.
pub struct Upstream {
    pub lang: Lang,
    /// `127.0.0.1:PORT`, or `unix:PATH`.
    pub address: String,
    args: Vec<String>,
    child: Child,
    /// Lines the server printed after `listening` (`sent N` …).
    pub lines: mpsc::UnboundedReceiver<String>,
}

impl Upstream {
    /// Starts `lang`'s server on port 0 with `args`.
    pub async fn start(lang: Lang, args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Self::spawn(lang, args).await
    }

    /// Starts `lang`'s server on a Unix socket at `path`.
    pub async fn start_unix(lang: Lang, path: &Path) -> Self {
        Self::spawn(lang, vec!["--unix".into(), path.display().to_string()]).await
    }

    async fn spawn(lang: Lang, args: Vec<String>) -> Self {
        match Self::try_spawn(lang, args).await {
            Ok(up) => up,
            Err(e) => panic!("the {} upstream did not start: {e}", lang.name()),
        }
    }

    async fn try_spawn(lang: Lang, args: Vec<String>) -> Result<Self, String> {
        installed();
        let dir = root().join("tests/upstream");
        let mut command = match lang {
            Lang::Python => {
                let mut c = Command::new(dir.join(".venv/bin/python"));
                c.arg(dir.join("py/server.py"));
                c
            }
            Lang::Node => {
                let mut c = Command::new("node");
                c.arg(dir.join("node/server.mjs"));
                c
            }
        };
        command.args(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), reader.next_line())
            .await
            .map_err(|_| "no answer within a minute".to_string())?
            .map_err(|e| e.to_string())?
            .ok_or("it exited before listening")?;
        let listening = first.strip_prefix("listening ").ok_or(format!("unexpected first line {first:?}"))?;
        let address =
            if listening.starts_with("unix:") { listening.to_string() } else { format!("127.0.0.1:{listening}") };
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { lang, address, args, child, lines })
    }

    /// `http://127.0.0.1:PORT` (or `unix:PATH`): what `--upstream` takes.
    pub fn url(&self) -> String {
        if self.address.starts_with("unix:") { self.address.clone() } else { format!("http://{}", self.address) }
    }

    /// The port (TCP upstreams only).
    pub fn port(&self) -> u16 {
        self.address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a TCP upstream")
    }

    /// A tonic channel straight to the upstream (no portway in between).
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url()).expect("url").connect().await.expect("connect upstream")
    }

    /// Kills the process at once (as a crash would).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts the same program again on the same port, with `extra` arguments added.
    pub async fn restart(&mut self, extra: &[&str]) {
        self.kill().await;
        let port = self.port().to_string();
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(["--port".to_string(), port]);
        // The port was just freed; binding it again may need a few tries.
        let mut last = String::new();
        for _ in 0..20 {
            match Self::try_spawn(self.lang, args.clone()).await {
                Ok(up) => {
                    *self = up;
                    return;
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the {} upstream did not restart on its port: {last}", self.lang.name());
    }

    /// Waits for the server to print a line for which `pred` holds.
    pub async fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
                .await
                .expect("the upstream printed nothing more within 30 s")
                .expect("the upstream's output ended");
            if pred(&line) {
                return line;
            }
        }
    }
}
