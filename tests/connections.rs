//! The listener's limits, one test each: first byte / preface, header, body, write and idle
//! timeouts; HTTP/2 keepalive; connections per address; the reserve that keeps a full table
//! from locking clients out; header list size on HTTP/1.1. Clients are raw sockets, so the
//! tests see exactly what the server does on the wire.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::h2raw::{self, H2};
use common::http::guard;
use portway::Config;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

fn config(edit: impl FnOnce(&mut portway::config::HttpConfig)) -> Config {
    let mut config = Config::default();
    edit(&mut config.http);
    config
}

/// Whether the server closes `tcp` within `wait` (EOF or reset, after any bytes it sends).
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, read_all).await.is_ok()
}

/// Sends `GET /healthz` on a new connection and returns the status line.
async fn healthz(addr: SocketAddr) -> String {
    guard(async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("write");
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
    })
    .await
}

async fn open_count_is(server: &common::TestServer, n: u64) {
    guard(async {
        while server.metrics.connections_open() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

fn timeouts(server: &common::TestServer, phase: &str) -> u64 {
    server.metrics.connection_events.timeouts(phase)
}

#[tokio::test]
async fn silent_connections_and_half_prefaces_are_closed() {
    let server = common::start_interop(config(|h| h.first_byte_timeout = Duration::from_millis(300))).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(&h2raw::PREFACE[..12]).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "a silent connection stayed open");
    assert!(closed_within(&mut half, Duration::from_secs(5)).await, "half a preface kept the connection open");
    assert_eq!(timeouts(&server, "first_byte"), 2);
    open_count_is(&server, 0).await;
}

#[tokio::test]
async fn a_full_table_of_silent_connections_does_not_lock_clients_out() {
    // Silent connections would be closed only after a minute; the reserve must not wait.
    let server = common::start_interop(config(|h| {
        h.max_connections = 50;
        h.first_byte_timeout = Duration::from_secs(60);
        // Reclaim at once (the default waits for a second without progress).
        h.reclaim_after = Some(Duration::ZERO);
    }))
    .await;
    let mut attackers = Vec::new();
    for _ in 0..50 {
        attackers.push(TcpStream::connect(server.addr).await.unwrap());
    }
    open_count_is(&server, 50).await;
    for round in 0..20 {
        assert!(healthz(server.addr).await.starts_with("HTTP/1.1 200"), "client {round} was locked out");
    }
    assert!(server.metrics.connection_events.reclaimed() >= 1);
    // Still never more than the limit.
    assert!(server.metrics.connections_open() <= 50);
}

#[tokio::test]
async fn without_the_reserve_a_full_table_refuses() {
    let server = common::start_interop(config(|h| {
        h.max_connections = 3;
        h.reclaim_after = None;
    }))
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    open_count_is(&server, 3).await;
    assert_eq!(healthz(server.addr).await, "", "a connection over the limit got an answer");
    drop(held);
    open_count_is(&server, 0).await;
    assert!(healthz(server.addr).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_are_limited_per_address() {
    let server = common::start_interop(config(|h| h.max_connections_per_address = 2)).await;
    let a = TcpStream::connect(server.addr).await.unwrap();
    let b = TcpStream::connect(server.addr).await.unwrap();
    open_count_is(&server, 2).await;
    assert_eq!(healthz(server.addr).await, "", "a third connection from 127.0.0.1 was served");
    // Another address is not affected (all of 127.0.0.0/8 is loopback on Linux).
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), 0)).unwrap();
    let mut other = guard(socket.connect(server.addr)).await.expect("connect from 127.0.0.2");
    other.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    guard(other.read_to_string(&mut out)).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    drop((a, b));
    open_count_is(&server, 0).await;
    assert!(healthz(server.addr).await.starts_with("HTTP/1.1 200"));
    assert!(server.metrics.render().contains("portway_connections_refused_per_address_total 1"));
}

#[tokio::test]
async fn idle_http2_connections_get_goaway() {
    let server = common::start_interop(config(|h| h.idle_timeout = Duration::from_millis(300))).await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    // One call, then nothing.
    let id = h2.next_stream_id();
    h2.headers(id, &[(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/healthz")], true).await;
    let reply = h2.stream(id).await;
    assert_eq!(reply.header(0, ":status"), Some("200"));
    let (closed, goaway) = h2.closed_within(Duration::from_secs(5)).await;
    assert!(closed, "an idle HTTP/2 connection stayed open");
    let goaway = goaway.expect("a GOAWAY before the close");
    assert_eq!(goaway.error_code(), Some(h2raw::NO_ERROR));
    assert_eq!(timeouts(&server, "idle"), 1);
}

#[tokio::test]
async fn open_streams_keep_a_connection_from_idling_out() {
    // Neither the idle timeout nor the body timeout ends a quiet native gRPC client stream.
    let server = common::start_interop(config(|h| {
        h.idle_timeout = Duration::from_millis(200);
        h.body_timeout = Duration::from_millis(200);
    }))
    .await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    let id = h2.next_stream_id();
    let headers = H2::post("/grpc.testing.TestService/StreamingInputCall", "application/grpc", &[("te", "trailers")]);
    h2.headers(id, &headers, false).await;
    // A client stream open for several idle timeouts; its connection must stay.
    let (closed, _) = h2.closed_within(Duration::from_millis(800)).await;
    assert!(!closed, "a connection with an open stream was closed as idle");
    h2.data(id, &h2raw::envelope(0, &[]), true).await;
    let reply = h2.stream(id).await;
    assert_eq!(reply.last("grpc-status"), Some("0"), "{}", reply.describe());
}

#[tokio::test]
async fn idle_http1_connections_are_closed() {
    let server = common::start_interop(config(|h| h.idle_timeout = Duration::from_millis(300))).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn an_http2_header_block_that_never_ends_times_out() {
    let server = common::start_interop(config(|h| h.header_read_timeout = Duration::from_millis(300))).await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    let block = h2.encode(&H2::post("/grpc.testing.TestService/EmptyCall", "application/grpc", &[]));
    // HEADERS without END_HEADERS, then half of the block in a CONTINUATION, then nothing.
    let (first, rest) = block.split_at(block.len() / 2);
    h2.send(h2raw::HEADERS, 0, 1, first).await;
    h2.send(h2raw::CONTINUATION, 0, 1, &rest[..rest.len() / 2]).await;
    let (closed, _) = h2.closed_within(Duration::from_secs(5)).await;
    assert!(closed, "a header block that never ends kept the connection");
    assert_eq!(timeouts(&server, "header"), 1);
}

#[tokio::test]
async fn a_slow_http1_request_head_times_out() {
    let server = common::start_interop(config(|h| h.header_read_timeout = Duration::from_millis(300))).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow").await.unwrap();
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await);
    guard(async {
        while timeouts(&server, "header") != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_stalled_request_body_fails_the_call() {
    let server = common::start_interop(config(|h| h.body_timeout = Duration::from_millis(300))).await;
    // HTTP/2: a gRPC-Web body that stops halfway; the call ends, the connection stays.
    let mut h2 = H2::handshake(server.addr, &[]).await;
    let id = h2.next_stream_id();
    let headers = H2::post("/grpc.testing.TestService/UnaryCall", "application/grpc-web+proto", &[]);
    h2.headers(id, &headers, false).await;
    h2.data(id, &[0, 0, 0, 0, 10, 0x10], false).await; // 1 of 10 announced bytes
    let reply = h2.stream(id).await;
    assert!(!reply.connection_ended, "{}", reply.describe());
    assert!(
        reply.reset.is_some() || reply.last("grpc-status").is_some_and(|s| s != "0"),
        "a stalled body ended in success: {}",
        reply.describe()
    );
    assert_eq!(timeouts(&server, "body"), 1);

    // HTTP/1.1: a Connect body that stops halfway; an error answer, then the connection ends.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"POST /grpc.testing.TestService/UnaryCall HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"responseSize\":",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    guard(tcp.read_to_end(&mut out)).await.expect("the server answers and closes");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 5"), "{text}");
    assert_eq!(timeouts(&server, "body"), 2);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed() {
    let server = common::start_interop(config(|h| h.write_timeout = Duration::from_millis(300))).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = guard(socket.connect(server.addr)).await.unwrap();
    // 32 messages of 1 MB (more in JSON), never read: more than any socket buffers hold.
    let params = vec![r#"{"size":1000000}"#; 32].join(",");
    let message = format!(r#"{{"responseParameters":[{params}]}}"#);
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message.as_bytes());
    let head = format!(
        "POST /grpc.testing.TestService/StreamingOutputCall HTTP/1.1\r\nhost: x\r\n\
         content-type: application/connect+json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    guard(async {
        while timeouts(&server, "write") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    open_count_is(&server, 0).await;
    drop(tcp);
}

#[tokio::test]
async fn an_http2_client_that_never_opens_its_window_is_closed() {
    let server = common::start_interop(config(|h| h.write_timeout = Duration::from_millis(300))).await;
    let mut h2 = H2::handshake(server.addr, &[(h2raw::SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    h2.auto_window = false;
    let id = h2.next_stream_id();
    let headers = H2::post("/grpc.testing.TestService/UnaryCall", "application/grpc", &[("te", "trailers")]);
    h2.headers(id, &headers, false).await;
    // SimpleRequest { response_size: 100000 }: field 2, varint.
    h2.data(id, &h2raw::envelope(0, &[0x10, 0xa0, 0x8d, 0x06]), true).await;
    let (closed, goaway) = h2.closed_within(Duration::from_secs(5)).await;
    assert!(closed, "a zero-window client kept its connection");
    assert!(goaway.is_some(), "no GOAWAY before the close");
    assert_eq!(timeouts(&server, "write"), 1);
}

#[tokio::test]
async fn http2_keepalive_pings_and_closes_on_silence() {
    let server = common::start_interop(config(|h| {
        h.http2_keepalive_interval = Some(Duration::from_millis(200));
        h.http2_keepalive_timeout = Duration::from_millis(200);
    }))
    .await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    let ping = guard(async {
        loop {
            let f = h2.next().await.expect("a frame");
            if f.kind == h2raw::PING && !f.has(h2raw::ACK) {
                return f;
            }
        }
    })
    .await;
    assert_eq!(ping.payload.len(), 8);
    // Never answered: the server gives up on the connection.
    let (closed, _) = h2.closed_within(Duration::from_secs(5)).await;
    assert!(closed, "a peer that never answers pings kept its connection");
}

#[tokio::test]
async fn http1_header_lists_over_the_limit_get_431() {
    let server = common::start_interop(config(|h| h.max_header_list_bytes = 2048)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let big = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(4096));
    tcp.write_all(big.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = guard(tcp.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    let small =
        format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-small: {}\r\nconnection: close\r\n\r\n", "a".repeat(512));
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(small.as_bytes()).await.unwrap();
    let mut out = String::new();
    guard(tcp.read_to_string(&mut out)).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test]
async fn an_upgraded_websocket_holds_its_slot_and_can_be_reclaimed() {
    let server = common::start_interop(config(|h| {
        h.max_connections = 1;
        h.reclaim_after = Some(Duration::ZERO);
    }))
    .await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}/ws",
        server.addr
    ))
    .unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().unwrap());
    let (mut ws, _) = guard(tokio_tungstenite::connect_async(req)).await.expect("websocket");
    use futures_util::StreamExt as _;
    guard(ws.next()).await.expect("hello").expect("hello frame");
    // The socket still holds the only slot after the upgrade.
    assert_eq!(server.metrics.connections_open(), 1);
    // A new client reclaims it: the quiet WebSocket is closed, the client served.
    assert!(healthz(server.addr).await.starts_with("HTTP/1.1 200"));
    let ended = guard(async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    let () = ended;
}
