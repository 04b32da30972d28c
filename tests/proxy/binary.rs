//! The `portway` binary in proxy mode, as users run it: `--upstream`, `--descriptor-set`,
//! SIGHUP, and what `buf curl` sees through it.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::upstream::{Lang, Upstream};

/// A `portway` process; killed when dropped.
pub struct Binary {
    pub child: Child,
    pub addr: String,
    pub log: mpsc::UnboundedReceiver<String>,
}

impl Binary {
    /// Starts `portway --storage memory --listen 127.0.0.1:0 ARGS` and waits until it listens.
    pub async fn start(args: &[&str]) -> Self {
        match Self::run(args).await {
            Ok(b) => b,
            Err(output) => panic!("portway did not start:\n{output}"),
        }
    }

    /// Starts it; `Err` with its output if it exits before listening.
    pub async fn run(args: &[&str]) -> Result<Self, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portway"))
            .args(["--storage", "memory", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,h2=warn,hyper=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start portway");
        let (tx, mut log) = mpsc::unbounded_channel();
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|p| Box::new(p) as _),
        ] {
            let tx = tx.clone();
            let mut lines = BufReader::new(pipe.expect("piped")).lines();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let mut seen = String::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), log.recv()).await.map_err(|_| seen.clone())?;
            let Some(line) = line else { return Err(seen) };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(addr) = line.split("portway listening address=").nth(1) {
                let addr = addr.split_whitespace().next().expect("an address").to_owned();
                return Ok(Self { child, addr, log });
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for a log line containing `text`.
    pub async fn wait_log(&mut self, text: &str) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.log.recv())
                .await
                .unwrap_or_else(|_| panic!("portway logged no {text:?} within 30 s"))
                .expect("portway's output ended");
            if line.contains(text) {
                return line;
            }
        }
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id().expect("running") as i32).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("signal portway");
    }
}

/// Runs `buf curl --http2-prior-knowledge ARGS`; returns (success, stdout + stderr).
pub async fn buf_curl(args: &[&str]) -> (bool, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("tests/upstream/node_modules/.bin/buf"))
        .arg("curl")
        .arg("--http2-prior-knowledge")
        .args(args)
        .output()
        .await
        .expect("run buf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn buf_curl_sees_one_api_and_calls_every_upstream_through_it() {
    for lang in Lang::ALL {
        let up = Upstream::start(lang, &[]).await;
        let portway = Binary::start(&["--upstream", &up.url()]).await;
        let (ok, listed) = buf_curl(&["--list-services", &portway.url()]).await;
        assert!(ok, "{lang:?}: {listed}");
        let mut expected = vec![
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.testing.TestService",
            "portway.state.v1.StateService",
            "portway.upstream.Echo",
        ];
        if lang == Lang::Node {
            expected.insert(4, "grpc.testing.UnimplementedService");
        }
        assert_eq!(listed.lines().collect::<Vec<_>>(), expected, "{lang:?}");
        // buf reads the schema through portway's reflection (for Node, with the imports
        // its reflection leaves out), then calls over each protocol.
        for protocol in ["grpc", "grpcweb", "connect"] {
            let url = format!("{}/portway.upstream.Echo/Say", portway.url());
            let (ok, out) = buf_curl(&["--protocol", protocol, "-d", r#"{"text":"héllo"}"#, &url]).await;
            assert!(ok, "{lang:?} {protocol}: {out}");
            let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
            assert_eq!(json, serde_json::json!({"text": "héllo", "length": 5}), "{lang:?} {protocol}");
        }
    }
}

#[tokio::test]
async fn a_service_offered_twice_stops_portway_naming_both() {
    let py = Upstream::start(Lang::Python, &[]).await;
    let node = Upstream::start(Lang::Node, &[]).await;
    let err = Binary::run(&["--upstream", &format!("py={}", py.url()), "--upstream", &format!("node={}", node.url())])
        .await
        .err()
        .expect("portway refuses to start");
    let expected = format!(
        "service grpc.testing.TestService is offered by upstream py ({}) and by upstream node ({})",
        py.url(),
        node.url()
    );
    assert!(err.contains(&expected), "{err}");
    let err = Binary::run(&["--interop", "--upstream", &py.url()]).await.err().expect("refused");
    assert!(err.contains("service grpc.testing.TestService is offered by portway itself and by upstream"), "{err}");
}

#[tokio::test]
async fn sighup_picks_up_a_new_method() {
    let mut up = Upstream::start(Lang::Node, &["--echo", "v1"]).await;
    let mut portway = Binary::start(&["--upstream", &up.url()]).await;
    let list = |url: String| async move { buf_curl(&["--list-methods", &url]).await };
    let (ok, methods) = list(portway.url()).await;
    assert!(ok && methods.contains("portway.upstream.Echo/Say"), "{methods}");
    assert!(!methods.contains("portway.upstream.Echo/Shout"), "{methods}");

    let shout = |url: String| async move {
        let req = crate::common::http::request("POST", &format!("{url}/portway.upstream.Echo/Shout"))
            .header("content-type", "application/json")
            .body(crate::common::http::full(r#"{"text":"hi"}"#))
            .expect("request");
        crate::common::http::send(crate::common::http::Http::H1, req).await
    };
    let before = shout(portway.url()).await;
    assert_eq!(before.status, 501, "{before:?}");
    assert_eq!(before.json()["message"], "unknown method /portway.upstream.Echo/Shout");

    // A new version of the upstream, on the same address.
    up.restart(&["--echo", "v2"]).await;
    portway.signal(rustix::process::Signal::HUP);
    portway.wait_log("upstreams refreshed").await;
    let (ok, methods) = list(portway.url()).await;
    assert!(ok && methods.contains("portway.upstream.Echo/Shout"), "{methods}");
    let url = format!("{}/portway.upstream.Echo/Shout", portway.url());
    let (ok, out) = buf_curl(&["--protocol", "grpc", "-d", r#"{"text":"hi"}"#, &url]).await;
    assert!(ok && out.contains("HI"), "{out}");
    // The JSON protocols know the new method too.
    let after = shout(portway.url()).await;
    assert_eq!(&after.body[..], br#"{"text":"HI","length":2}"#, "{after:?}");
}

#[tokio::test]
async fn a_descriptor_set_file_serves_an_upstream_without_reflection_needed() {
    let up = Upstream::start(Lang::Python, &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("echo.binpb");
    crate::discovery::buf_build("v1", &file);
    let portway = Binary::start(&[
        "--upstream",
        &format!("py={}", up.url()),
        "--descriptor-set",
        &format!("py={}", file.display()),
    ])
    .await;
    let (ok, listed) = buf_curl(&["--list-services", &portway.url()]).await;
    assert!(ok, "{listed}");
    // Only what the file describes is proxied (TestService is not in it).
    assert!(listed.contains("portway.upstream.Echo") && !listed.contains("grpc.testing.TestService"), "{listed}");
    let reply = crate::common::http::send(
        crate::common::http::Http::H1,
        crate::common::http::request("POST", &format!("{}/portway.upstream.Echo/Say", portway.url()))
            .header("content-type", "application/json")
            .body(crate::common::http::full(r#"{"text":"abc"}"#))
            .expect("request"),
    )
    .await;
    assert_eq!(&reply.body[..], br#"{"text":"abc","length":3}"#);
}
