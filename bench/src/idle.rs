//! Memory per idle connection: a fresh server, a few warm-up connections, its RSS; then `n`
//! connections that sit idle; the RSS again. (after − before) / n is what an idle client costs
//! the server.
//!
//! - HTTP/2 ([`run`]): each connection completes the handshake and one successful unary call.
//! - WebSocket ([`run_ws`]): each socket completes the upgrade; against portway it asks for
//!   `portway.v1.json` and waits for the `hello` frame, so the session is fully set up.
//!
//! Client sockets are bound to source addresses spread over 127.0.0.2–127.0.0.254, so that
//! repeated samples never run out of ephemeral ports (closed client sockets wait in TIME_WAIT).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::calls;
use crate::child::Server;

/// One open client connection; dropping it closes the connection.
struct Conn {
    _send: h2::client::SendRequest<Bytes>,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Returns the server's RSS (bytes) before and after `n` idle connections were opened.
pub async fn run(server: &Server, n: usize) -> anyhow::Result<(u64, u64)> {
    measure(server, n, "connection", open).await
}

/// Returns the server's RSS (bytes) before and after `n` idle WebSockets were opened.
pub async fn run_ws(server: &Server, n: usize) -> anyhow::Result<(u64, u64)> {
    let portway = server.kind == crate::servers::Kind::Portway;
    measure(server, n, "WebSocket", move |addr, i| open_ws(addr, portway, i)).await
}

/// The server's RSS before and after `n` idle clients were opened with `open(addr, i)`,
/// 256 at a time; the clients are dropped afterwards.
async fn measure<T, F, Fut>(server: &Server, n: usize, what: &str, open: F) -> anyhow::Result<(u64, u64)>
where
    T: Send + 'static,
    F: Fn(SocketAddr, usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    // Warm-up: lazily initialised state (thread-locals, allocator arenas, the routes) is not
    // per-connection memory.
    for i in 0..8 {
        drop(open(server.addr, i).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss()?;

    let limit = Arc::new(Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = limit.clone().acquire_owned().await?;
        let opening = open(server.addr, i);
        tasks.spawn(async move {
            let conn = opening.await;
            drop(permit);
            conn
        });
    }
    let mut held = Vec::with_capacity(n);
    while let Some(conn) = tasks.join_next().await {
        held.push(conn?.with_context(|| format!("opening an idle {what}"))?);
    }
    ensure!(held.len() == n, "opened {} of {n} {what}s", held.len());
    // Let the server finish whatever it does after a call (buffers returned to the allocator).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss()?;
    drop(held);
    Ok((before, after))
}

/// A client socket bound to the loopback source address number `i` (of 253).
pub fn source_socket(i: usize) -> anyhow::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    let source = Ipv4Addr::new(127, 0, 0, (2 + i % 253) as u8);
    socket.bind(SocketAddr::new(source.into(), 0))?;
    Ok(socket)
}

async fn open_ws(
    addr: SocketAddr,
    portway: bool,
    i: usize,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
    let mut ws = crate::ws::connect(addr, portway, i).await?;
    if portway {
        let hello = crate::ws::next_text(&mut ws).await?;
        ensure!(hello.starts_with(r#"{"type":"hello""#), "expected hello, got {hello}");
    }
    Ok(ws)
}

async fn open(addr: SocketAddr, i: usize) -> anyhow::Result<Conn> {
    let tcp = source_socket(i)?.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = h2::client::handshake(tcp).await?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await?;
    let call = calls::grpc();
    let mut req = http::Request::post(format!("http://{addr}{}", call.path)).body(())?;
    for (name, value) in &call.headers {
        req.headers_mut().insert(*name, http::HeaderValue::from_static(value));
    }
    let (resp, mut body_tx) = send.send_request(req, false)?;
    body_tx.send_data(call.body.clone(), true)?;
    let resp = resp.await?;
    ensure!(resp.status() == http::StatusCode::OK, "HTTP {}", resp.status());
    let mut body = resp.into_body();
    let mut received = bytes::BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?.context("no trailers")?;
    ensure!(trailers.get("grpc-status").is_some_and(|s| s == "0"), "grpc-status {:?}", trailers.get("grpc-status"));
    let frames = calls::frames(received.freeze())?;
    ensure!(frames.len() == 1, "expected one response message, got {}", frames.len());
    calls::check_message(&frames[0].1)?;
    Ok(Conn { _send: send, task })
}
