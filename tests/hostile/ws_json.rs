//! The WebSocket protocol's own frames (`portway.v1.json`), sent with tokio-tungstenite:
//! a call (id 1, a bidi `FullDuplexCall`) is open on the socket before each row and must
//! still answer, and end OK, after it.

use std::net::SocketAddr;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::connect::json_rows;
use super::wire::nested;
use super::{LIMIT, Row, TS, bounded, common, config, judge};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(addr: SocketAddr) -> Result<Ws, String> {
    let mut req = format!("ws://{addr}/ws").into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| format!("handshake: {e}"))?;
    let hello = next(&mut ws).await?;
    if hello["type"] != "hello" {
        return Err(format!("no hello: {hello}"));
    }
    Ok(ws)
}

/// The next JSON frame (heartbeats skipped); `Err` says how the socket ended.
pub async fn next(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = match serde_json::from_str(t.as_str()) {
                    Ok(v) => v,
                    // A pong echoes the ping's data as sent, however deep (deeper than this
                    // client's parser goes).
                    Err(_) if t.as_str().starts_with(r#"{"type":"pong""#) => json!({"type":"pong","data":"(deep)"}),
                    Err(e) => return Err(format!("server frame not JSON: {e}")),
                };
                if v["type"] != "heartbeat" {
                    return Ok(v);
                }
            }
            Some(Ok(Message::Close(c))) => return Err(format!("close {}", c.map_or(0, |c| u16::from(c.code)))),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("read failed: {e}")),
            None => return Err("closed".into()),
        }
    }
}

async fn send(ws: &mut Ws, frame: &str) -> Result<(), String> {
    ws.send(Message::text(frame.to_string())).await.map_err(|e| format!("send failed: {e}"))
}

/// Opens call 1, the one that stays beside every row, and waits for its first message.
pub async fn open_healthy(ws: &mut Ws) -> Result<(), String> {
    let open = json!({"type":"open","id":1,"method":format!("{TS}/FullDuplexCall"),"message":{"responseParameters":[{"size":1}]}});
    send(ws, &open.to_string()).await?;
    until_message(ws).await
}

async fn until_message(ws: &mut Ws) -> Result<(), String> {
    loop {
        let v = next(ws).await?;
        match (v["id"].as_u64(), v["type"].as_str()) {
            // Credit for the next one: the call lives through many rows.
            (Some(1), Some("message")) => return send(ws, r#"{"type":"credit","id":1,"credit":1}"#).await,
            (Some(1), Some("status" | "error")) => return Err(format!("call 1 ended: {v}")),
            _ => {}
        }
    }
}

/// After a row: call 1 answers again.
pub async fn check_healthy_round(ws: &mut Ws) -> Result<(), String> {
    send(ws, &json!({"type":"message","id":1,"message":{"responseParameters":[{"size":1}]}}).to_string()).await?;
    until_message(ws).await
}

/// Call 1 answers again, then half-closes and ends OK.
pub async fn check_healthy(ws: &mut Ws) -> Result<(), String> {
    check_healthy_round(ws).await?;
    finish_healthy(ws).await
}

/// Call 1 half-closes and ends OK.
pub async fn finish_healthy(ws: &mut Ws) -> Result<(), String> {
    send(ws, r#"{"type":"half_close","id":1}"#).await?;
    loop {
        let v = next(ws).await?;
        if v["id"] == 1 && v["type"] == "status" {
            return if v["code"] == "ok" { Ok(()) } else { Err(format!("call 1 ended with {v}")) };
        }
    }
}

/// One row: the frame to send and, if it opens a call, the call's id (the row's outcome is
/// then that call's `status`); otherwise the outcome is the error frame it provokes, or
/// `nothing` once a ping sent after it is answered first.
pub struct WsRow {
    name: String,
    frame: Message,
    call: Option<u64>,
    want: String,
}

fn row(name: &str, frame: impl Into<String>, call: Option<u64>, want: &str) -> WsRow {
    ws_row(&format!("websocket/{name}"), frame, call, want)
}

impl WsRow {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn want(&self) -> &str {
        &self.want
    }
}

/// A row of text `frame`; `call` is the id whose `status` is the outcome, if it opens one.
pub fn ws_row(name: &str, frame: impl Into<String>, call: Option<u64>, want: &str) -> WsRow {
    WsRow { name: name.to_string(), frame: Message::text(frame.into()), call, want: want.into() }
}

async fn outcome(ws: &mut Ws, r: &WsRow) -> Result<String, String> {
    ws.send(r.frame.clone()).await.map_err(|e| format!("send failed: {e}"))?;
    if r.call.is_none() {
        send(ws, r#"{"type":"ping","data":"after the row"}"#).await?;
    }
    loop {
        let v = match next(ws).await {
            Ok(v) => v,
            Err(end) => return Ok(end),
        };
        let kind = v["type"].as_str().unwrap_or_default();
        match kind {
            "error" => return Ok(format!("error {}", v["reason"].as_str().unwrap_or("?"))),
            "status" if v["id"].as_u64() == r.call => {
                return Ok(format!("status {}", v["code"].as_str().unwrap_or("?")));
            }
            "pong" if r.call.is_none() && v["data"] == "after the row" => return Ok("nothing".into()),
            _ => {}
        }
    }
}

/// Runs one row beside call 1.
pub async fn ws_run(addr: SocketAddr, r: &WsRow) -> String {
    bounded(async {
        let mut ws = match connect(addr).await {
            Ok(ws) => ws,
            Err(e) => return e,
        };
        if let Err(e) = open_healthy(&mut ws).await {
            return format!("no healthy call: {e}");
        }
        let got = match outcome(&mut ws, r).await {
            Ok(got) | Err(got) => got,
        };
        match check_healthy(&mut ws).await {
            Ok(()) => got,
            Err(e) => format!("{got} +{e}"),
        }
    })
    .await
}

fn open(id: u64, method: &str, message: &str) -> String {
    format!(r#"{{"type":"open","id":{id},"method":"{TS}/{method}","message":{message},"end":true}}"#)
}

#[tokio::test]
async fn websocket_frames() {
    let server = common::start_interop(config()).await;
    let mut rows = Vec::new();
    for (name, body, connect_want) in json_rows() {
        if body.is_empty() {
            continue;
        }
        // A message that is not one JSON value breaks the frame around it.
        let one_value = serde_json::from_str::<&serde_json::value::RawValue>(&body).is_ok();
        let want = match (one_value, connect_want) {
            (false, _) => "error malformed_frame",
            (true, "connect 200 ok") => "status ok",
            (true, _) => "status invalid_argument",
        };
        rows.push(row(
            &format!("json-{name}"),
            open(2, "UnaryCall", &body),
            if one_value { Some(2) } else { None },
            want,
        ));
    }
    // 2 × LIMIT base64 characters: 1.5 × LIMIT bytes once decoded, over the (decoded) limit.
    let big = format!(r#"{{"payload":{{"body":"{}"}}}}"#, "A".repeat(2 * LIMIT));
    rows.extend([
        row("not-json", "not json", None, "error malformed_frame"),
        row("empty-text", "", None, "error malformed_frame"),
        row("an-array", "[1,2]", None, "error malformed_frame"),
        row("unknown-type", r#"{"type":"bogus","id":2}"#, None, "error malformed_frame"),
        row("duplicate-key", r#"{"type":"ping","type":"cancel","id":2}"#, None, "error malformed_frame"),
        row("id-2^53", r#"{"type":"cancel","id":9007199254740992}"#, None, "error malformed_frame"),
        row("id-negative", r#"{"type":"cancel","id":-2}"#, None, "error malformed_frame"),
        row("id-fraction", r#"{"type":"cancel","id":2.5}"#, None, "error malformed_frame"),
        row("id-a-string", r#"{"type":"open","id":"2","method":"/grpc.testing.TestService/EmptyCall"}"#, None, "error malformed_frame"),
        row("credit-over-u32", r#"{"type":"credit","id":1,"credit":4294967296}"#, None, "error malformed_frame"),
        row("credit-negative", r#"{"type":"credit","id":1,"credit":-1}"#, None, "error malformed_frame"),
        row("credit-zero", r#"{"type":"credit","id":1,"credit":0}"#, None, "nothing"),
        row("end-a-string", r#"{"type":"open","id":2,"method":"/a.B/C","end":"yes"}"#, None, "error malformed_frame"),
        row("timeout-negative", r#"{"type":"open","id":2,"method":"/a.B/C","timeoutMs":-1}"#, None, "error malformed_frame"),
        row("timeout-fraction", r#"{"type":"open","id":2,"method":"/a.B/C","timeoutMs":1.5}"#, None, "error malformed_frame"),
        row("timeout-zero", format!(r#"{{"type":"open","id":2,"method":"{TS}/EmptyCall","message":{{}},"end":true,"timeoutMs":0}}"#), Some(2), "status deadline_exceeded"),
        row("timeout-u64-max", format!(r#"{{"type":"open","id":2,"method":"{TS}/EmptyCall","message":{{}},"end":true,"timeoutMs":18446744073709551615}}"#), Some(2), "status ok"),
        row("metadata-a-number", r#"{"type":"open","id":2,"method":"/a.B/C","metadata":{"k":1}}"#, None, "error malformed_frame"),
        row("metadata-upper-case-key", format!(r#"{{"type":"open","id":2,"method":"{TS}/EmptyCall","metadata":{{"X-Key":"v"}}}}"#), Some(2), "status invalid_argument"),
        row("metadata-reserved-key", format!(r#"{{"type":"open","id":2,"method":"{TS}/EmptyCall","metadata":{{"grpc-timeout":"1S"}}}}"#), Some(2), "status invalid_argument"),
        row("metadata-bin-not-base64", format!(r#"{{"type":"open","id":2,"method":"{TS}/EmptyCall","metadata":{{"x-bin":"!!"}}}}"#), Some(2), "status invalid_argument"),
        row("metadata-value-with-newline", format!(r#"{{"type":"open","id":2,"method":"{TS}/EmptyCall","metadata":{{"x-k":"a\nb"}}}}"#), Some(2), "status invalid_argument"),
        row("open-without-method", r#"{"type":"open","id":2}"#, Some(2), "status invalid_argument"),
        row("unknown-method", open(2, "Nope", "{}"), Some(2), "status unimplemented"),
        row("unknown-service", r#"{"type":"open","id":2,"method":"/no.Such/Thing","message":{},"end":true}"#, Some(2), "status unimplemented"),
        row("method-of-10-kib", format!(r#"{{"type":"open","id":2,"method":"/{}","end":true}}"#, "a".repeat(10 * 1024)), Some(2), "status unimplemented"),
        row("duplicate-id", open(1, "EmptyCall", "{}"), None, "error duplicate_id"),
        row("stale-id", open(0, "EmptyCall", "{}"), None, "error stale_id"),
        row("message-for-a-call-never-opened", r#"{"type":"message","id":99,"message":{}}"#, None, "error unknown_id"),
        row("message-over-the-limit", open(2, "UnaryCall", &big), Some(2), "status resource_exhausted"),
        row("ping-data-nested-40000-levels", format!(r#"{{"type":"ping","data":{}}}"#, nested(40_000)), None, "nothing"),
        row("nesting-65-levels-in-a-message", open(2, "UnaryCall", &format!(r#"{{"x":{}}}"#, nested(64))), Some(2), "status invalid_argument"),
    ]);
    rows.push(WsRow {
        name: "websocket/binary-frame".into(),
        frame: Message::binary(vec![1u8, 2, 3]),
        call: None,
        want: "error binary_frame".into(),
    });
    let mut results = Vec::new();
    for r in &rows {
        results.push(Row { name: r.name.clone(), want: r.want.clone(), got: ws_run(server.addr, r).await });
    }
    judge("websocket", &results);
}
