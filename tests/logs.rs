//! The real binary's logs and audit records: JSON lines that parse, text without ANSI escapes
//! when stderr is not a terminal, one audit record per call with its fields, no credential in
//! any of it; and `/metrics` on a listener of its own, with the state store's metrics.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::http::{self, Http, full, request};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const PUT: &str = "/portway.state.v1.StateService/Put";
const SECRET: &str = "s3cr3t-token-never-logged";
const API_KEY: &str = "k3y-never-logged";

/// `portway` with `args`, its stderr collected line by line.
struct Child {
    process: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Child {
    async fn start(args: &[&str]) -> Self {
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_portway"))
            .args(["--listen", "127.0.0.1:0", "--storage", "memory"])
            .args(args)
            // What a terminal would make coloured: only the check for a terminal stops it.
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn portway");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let keep = lines.clone();
        let mut reader = BufReader::new(process.stderr.take().expect("stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                keep.lock().expect("lock").push(line);
            }
        });
        Self { process, lines }
    }

    /// Waits for a line containing `needle` and returns it.
    async fn line(&self, needle: &str) -> String {
        http::guard(async {
            loop {
                if let Some(l) = self.lines.lock().expect("lock").iter().find(|l| l.contains(needle)) {
                    return l.clone();
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
    }

    /// Stops it with SIGTERM and waits for its last line: everything it logged is then read.
    async fn stop(&mut self) {
        let pid = self.process.id().expect("running").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        self.line("stopped").await;
    }

    fn all(&self) -> String {
        self.lines.lock().expect("lock").join("\n")
    }
}

/// The value after `key=` in a text line, or the `key` field of a JSON line.
fn field(line: &str, key: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        return v[key].as_str().map_or_else(|| v[key].to_string(), str::to_string);
    }
    let rest = line.split(&format!("{key}=")).nth(1).unwrap_or_else(|| panic!("no {key} in {line}"));
    rest.split_whitespace().next().unwrap_or_default().trim_matches('"').to_string()
}

/// A Connect `Put` carrying credentials and a request id; returns the response's request id
/// (sent back when audit records are on).
async fn put(url: &str, request_id: &str) -> Option<String> {
    let req = request("POST", &format!("{url}{PUT}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {SECRET}"))
        .header("x-api-key", API_KEY)
        .header("x-request-id", request_id)
        .body(full(r#"{"key":"k","value":{"n":1}}"#))
        .expect("a request");
    let reply = http::send(Http::H1, req).await;
    assert!(reply.status.is_success(), "{reply:?}");
    reply.header("x-request-id").map(str::to_string)
}

#[tokio::test]
async fn json_logs_carry_one_audit_record_per_call_and_no_secret() {
    let child = Child::start(&["--log-format", "json", "--audit-log"]).await;
    let listening = child.line("portway listening").await;
    let url = format!("http://{}", field(&listening, "address"));
    assert_eq!(put(&url, "req-0001").await.as_deref(), Some("req-0001"));
    // Without an incoming id, one is made up and sent back.
    let made_up = {
        let req = request("POST", &format!("{url}{PUT}"))
            .header("content-type", "application/json")
            .body(full(r#"{"key":"k2","value":1}"#));
        http::send(Http::H1, req.expect("a request")).await.header("x-request-id").expect("an id").to_string()
    };
    let audit = child.line("req-0001").await;
    let second = child.line(&made_up).await;

    let record: Value = serde_json::from_str(&audit).expect("the audit record is JSON");
    assert_eq!(record["target"], "portway::audit");
    assert_eq!(record["level"], "INFO");
    assert_eq!(record["request_id"], "req-0001");
    assert_eq!(record["protocol"], "connect");
    assert_eq!(record["method"], PUT);
    assert_eq!(record["code"], "OK");
    assert!(record["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{record}");
    assert!(record["duration_ms"].as_f64().is_some_and(|d| d > 0.0), "{record}");
    assert!(record.get("key_id").is_none(), "no authentication layer, no key id: {record}");
    let second: Value = serde_json::from_str(&second).expect("JSON");
    assert_eq!(second["request_id"], made_up.as_str());

    let all = child.all();
    for line in all.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(!all.contains(SECRET) && !all.contains(API_KEY), "a credential was logged:\n{all}");
}

/// With API keys, the record names the key that was accepted, never the key itself; a call
/// with a wrong key is recorded as refused, without a key id.
#[tokio::test]
async fn audit_records_name_the_key_id_and_never_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys.toml");
    std::fs::write(&keys, format!("[[key]]\nid = \"writer\"\nkey = \"{SECRET}\"\nmethods = [\"*\"]\n")).expect("write");
    let keys = keys.to_string_lossy().into_owned();
    let mut child = Child::start(&["--log-format", "json", "--audit-log", "--api-keys", &keys]).await;
    let listening = child.line("portway listening").await;
    let url = format!("http://{}", field(&listening, "address"));
    put(&url, "keyed-1").await;
    let wrong = request("POST", &format!("{url}{PUT}"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer wrong-key-also-secret")
        .header("x-request-id", "keyed-2")
        .body(full(r#"{"key":"k","value":1}"#));
    assert_eq!(http::send(Http::H1, wrong.expect("a request")).await.status.as_u16(), 401);
    let accepted: Value = serde_json::from_str(&child.line("keyed-1").await).expect("JSON");
    assert_eq!((accepted["key_id"].as_str(), accepted["code"].as_str()), (Some("writer"), Some("OK")), "{accepted}");
    let refused: Value = serde_json::from_str(&child.line("keyed-2").await).expect("JSON");
    assert_eq!(refused["code"], "UNAUTHENTICATED", "{refused}");
    assert!(refused.get("key_id").is_none(), "{refused}");
    child.stop().await;
    let all = child.all();
    assert!(!all.contains(SECRET) && !all.contains("wrong-key-also-secret"), "a credential was logged:\n{all}");
}

#[tokio::test]
async fn text_logs_have_no_escapes_off_a_terminal() {
    let child = Child::start(&["--audit-log"]).await;
    let listening = child.line("portway listening").await;
    let url = format!("http://{}", field(&listening, "address"));
    put(&url, "text-req-7").await;
    let audit = child.line("text-req-7").await;
    for key in ["protocol", "method", "peer", "duration_ms", "code"] {
        assert!(!field(&audit, key).is_empty(), "{key} missing from {audit}");
    }
    assert_eq!(field(&audit, "code"), "OK");
    let all = child.all();
    assert!(!all.contains('\x1b'), "ANSI escapes with stderr not a terminal:\n{all:?}");
    assert!(!all.contains(SECRET) && !all.contains(API_KEY), "a credential was logged:\n{all}");
}

#[tokio::test]
async fn no_audit_records_unless_asked() {
    let mut child = Child::start(&[]).await;
    let listening = child.line("portway listening").await;
    let echoed = put(&format!("http://{}", field(&listening, "address")), "quiet-1").await;
    assert_eq!(echoed, None, "the request id is the audit log's");
    child.stop().await;
    assert!(child.all().contains("state store open"), "{}", child.all());
    assert!(!child.all().contains("portway::audit"), "{}", child.all());
}

#[tokio::test]
async fn metrics_on_their_own_listener_with_the_state_store() {
    let child = Child::start(&["--metrics-listen", "127.0.0.1:0"]).await;
    let listening = child.line("portway listening").await;
    let metrics_at = field(&child.line("metrics listening").await, "address");
    let url = format!("http://{}", field(&listening, "address"));
    put(&url, "m-1").await;
    put(&url, "m-2").await;
    let reply = http::send(
        Http::H1,
        request("GET", &format!("http://{metrics_at}/metrics")).body(full("")).expect("a request"),
    )
    .await;
    let text = String::from_utf8(reply.body.to_vec()).expect("UTF-8");
    for line in [
        "portway_state_revision 2",
        "portway_state_keys 1",
        "portway_state_watchers 0",
        "portway_state_commit_duration_seconds_count 2",
        "portway_calls_total{protocol=\"connect\",method=\"/portway.state.v1.StateService/Put\",code=\"OK\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
    }
}
