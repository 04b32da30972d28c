//! WebSocket load: `conns` sockets, each keeping `window` messages in flight until the time is
//! up. A message counts once its reply has arrived intact.
//!
//! - Against portway (A), each socket speaks `portway.v1.json` on `/ws`: it opens one
//!   `grpc.testing.TestService/FullDuplexCall` (bidi) and sends
//!   `{"type":"message","id":1,"message":<request>}` frames, the request asking for a reply
//!   payload of the same size; it honours the server's credit and grants its own, as every
//!   client of the protocol must; at the end it half-closes and must see `status` `ok`. Every
//!   reply frame must equal the first one, which is checked in full (JSON, payload size).
//! - Against the tokio-tungstenite echo (B), each socket sends the very same message frames
//!   and must get each back unchanged.
//!
//! So A does everything the protocol does (frame parsing, JSON ↔ protobuf both ways, the
//! gRPC service stack, the handler, flow control) and B only moves the bytes: the ratio is
//! what the adapter costs per message over the bare WebSocket library.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::calls::PAYLOAD;
use crate::child::Server;
use crate::report::Sample;
use crate::servers::Kind;

const METHOD: &str = "/grpc.testing.TestService/FullDuplexCall";

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The request message as JSON: a payload of [`PAYLOAD`] bytes, one reply of as many.
fn request_json() -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(vec![7u8; PAYLOAD]);
    format!(r#"{{"responseParameters":[{{"size":{PAYLOAD}}}],"payload":{{"body":"{body}"}}}}"#)
}

/// Opens one socket to `addr` from the loopback source address `source` (see
/// [`crate::idle::source_socket`]); `portway` asks for the `portway.v1.json` subprotocol on
/// `/ws`.
pub async fn connect(addr: SocketAddr, portway: bool, source: usize) -> anyhow::Result<Socket> {
    let path = if portway { "/ws" } else { "/" };
    let mut req = format!("ws://{addr}{path}").into_client_request()?;
    if portway {
        req.headers_mut().insert("sec-websocket-protocol", http::HeaderValue::from_static("portway.v1.json"));
        if crate::calls::edge() {
            req.headers_mut()
                .insert("authorization", http::HeaderValue::from_static(crate::calls::BENCH_AUTHORIZATION));
        }
    }
    let buffers = crate::servers::ws_buffers();
    let config = WebSocketConfig::default().read_buffer_size(buffers.0).write_buffer_size(buffers.1);
    let tcp = crate::idle::source_socket(source)?.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp), Some(config))
            .await?;
    Ok(ws)
}

pub async fn run(server: &Server, conns: u32, window: u32, duration: Duration) -> anyhow::Result<Sample> {
    let portway = server.kind == Kind::Portway;
    let mut sockets = Vec::new();
    for i in 0..conns {
        sockets.push(connect(server.addr, portway, i as usize).await?);
    }
    let frame = format!(r#"{{"type":"message","id":1,"message":{}}}"#, request_json());
    let cpu_before = server.cpu_time()?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for ws in sockets {
        let frame = frame.clone();
        tasks.spawn(async move {
            if portway {
                portway_socket(ws, &frame, window, deadline).await
            } else {
                echo_socket(ws, &frame, window, deadline).await
            }
        });
    }
    let mut count = 0;
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (n, lat) = done??;
        count += n;
        latencies.extend(lat);
    }
    let elapsed = started.elapsed();
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    ensure!(count > 0, "no messages completed");
    Ok(Sample::new(count, elapsed, cpu, latencies))
}

/// B: the frames go out and must come back unchanged.
async fn echo_socket(
    mut ws: Socket,
    frame: &str,
    window: u32,
    deadline: tokio::time::Instant,
) -> anyhow::Result<(u64, Vec<u64>)> {
    let mut in_flight = VecDeque::new();
    let mut latencies = Vec::new();
    loop {
        let open = tokio::time::Instant::now() < deadline;
        let mut fed = false;
        while open && in_flight.len() < window as usize {
            ws.feed(Message::text(frame)).await?;
            in_flight.push_back(Instant::now());
            fed = true;
        }
        if fed {
            ws.flush().await?;
        }
        let Some(sent) = in_flight.pop_front() else { break };
        let reply = ws.next().await.context("socket closed")??;
        ensure!(reply.to_text().is_ok_and(|t| t == frame), "echo differs");
        latencies.push(sent.elapsed().as_micros() as u64);
    }
    let _ = ws.close(None).await;
    Ok((latencies.len() as u64, latencies))
}

/// A: one bidi call per socket under the protocol's flow control.
async fn portway_socket(
    mut ws: Socket,
    frame: &str,
    window: u32,
    deadline: tokio::time::Instant,
) -> anyhow::Result<(u64, Vec<u64>)> {
    let hello = next_text(&mut ws).await?;
    let hello: serde_json::Value = serde_json::from_str(&hello).context("hello")?;
    ensure!(hello["type"] == "hello", "expected hello, got {hello}");
    // Request messages the server allows before it grants more.
    let mut send_credit = hello["initialCredit"].as_u64().context("hello without initialCredit")?;
    // Reply messages this client allows: like portway.js, 16 (or twice the window, if more),
    // given back half at a time as replies arrive.
    let grant = (u64::from(window) * 2).max(16);
    ws.send(Message::text(format!(r#"{{"type":"open","id":1,"method":"{METHOD}","credit":{grant}}}"#))).await?;

    let mut first_reply: Option<String> = None;
    let mut in_flight = VecDeque::new();
    let mut latencies = Vec::new();
    let mut ungranted = 0u64;
    let mut half_closed = false;
    loop {
        let open = tokio::time::Instant::now() < deadline;
        let mut fed = false;
        while open && in_flight.len() < window as usize && send_credit > 0 {
            ws.feed(Message::text(frame)).await?;
            in_flight.push_back(Instant::now());
            send_credit -= 1;
            fed = true;
        }
        if !open && in_flight.is_empty() && !half_closed {
            ws.feed(Message::text(r#"{"type":"half_close","id":1}"#)).await?;
            half_closed = true;
            fed = true;
        }
        if fed {
            ws.flush().await?;
        }
        let text = next_text(&mut ws).await?;
        if text.starts_with(r#"{"type":"message""#) {
            let sent = in_flight.pop_front().context("a reply nobody asked for")?;
            match &first_reply {
                Some(first) => ensure!(*first == text, "reply differs from the first: {text}"),
                None => {
                    check_reply(&text)?;
                    first_reply = Some(text);
                }
            }
            latencies.push(sent.elapsed().as_micros() as u64);
            ungranted += 1;
            if ungranted >= grant / 2 {
                ws.send(Message::text(format!(r#"{{"type":"credit","id":1,"credit":{ungranted}}}"#))).await?;
                ungranted = 0;
            }
        } else if text.starts_with(r#"{"type":"credit""#) {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            send_credit += v["credit"].as_u64().context("credit frame without credit")?;
        } else if text.starts_with(r#"{"type":"status""#) {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            ensure!(v["code"] == "ok", "call ended with {text}");
            ensure!(half_closed && in_flight.is_empty(), "call ended early: {text}");
            break;
        } else if !text.starts_with(r#"{"type":"headers""#) && !text.starts_with(r#"{"type":"heartbeat""#) {
            bail!("unexpected frame: {text}");
        }
    }
    let _ = ws.close(None).await;
    Ok((latencies.len() as u64, latencies))
}

/// The next text frame (pings are answered by tungstenite itself).
pub async fn next_text(ws: &mut Socket) -> anyhow::Result<String> {
    loop {
        match ws.next().await.context("socket closed")?? {
            Message::Text(t) => return Ok(t.as_str().to_owned()),
            Message::Close(c) => bail!("socket closed by the server: {c:?}"),
            _ => {}
        }
    }
}

/// The first reply in full: a `message` frame for call 1 whose payload has [`PAYLOAD`] bytes.
fn check_reply(text: &str) -> anyhow::Result<()> {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_str(text)?;
    ensure!(v["id"] == 1, "reply for another call: {text}");
    let body = v["message"]["payload"]["body"].as_str().context("reply without a payload")?;
    let body = base64::engine::general_purpose::STANDARD.decode(body)?;
    ensure!(body.len() == PAYLOAD, "reply payload has {} bytes, not {PAYLOAD}", body.len());
    Ok(())
}
