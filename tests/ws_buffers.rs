//! The WebSocket buffers, `--ws-read-buffer-bytes` and `--ws-write-buffer-bytes`, and what each
//! changes that a client or an operator can see.
//!
//! - The read buffer is allocated for every socket and filled on its first read (tungstenite
//!   zeroes it before reading into it), so it is resident memory per socket: the test opens
//!   sockets on the real binary and watches its `VmRSS` grow by about the buffer each, or not.
//! - The write buffer is a flush threshold: frames are held until more than that many bytes
//!   wait (or until no more frames are queued), then written together. Over HTTP/2 (RFC 8441)
//!   every write becomes its own DATA frame, so a raw HTTP/2 client sees how the server's frames
//!   were grouped into writes: one WebSocket frame per DATA frame with no buffer, groups bounded
//!   by the threshold with one.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use common::child::Portway;
use common::h2raw::{self, DATA, H2, HEADERS};
use common::http::guard;
use futures_util::{SinkExt as _, StreamExt as _};
use portway::Config;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a `portway.v1.json` socket, reads its `hello`, sends a `ping` and reads the `pong`:
/// the server has read from it.
async fn socket_that_was_read(addr: std::net::SocketAddr) -> Socket {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse().unwrap());
    let (mut ws, _) = guard(tokio_tungstenite::connect_async(req)).await.unwrap();
    ws.send(Message::text(r#"{"type":"ping","data":1}"#)).await.unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = guard(ws.next()).await else { continue };
        if text.contains(r#""pong""#) {
            return ws;
        }
    }
}

/// How much the server's resident memory grows (KiB) when `SOCKETS` sockets have been read from.
async fn growth_with_read_buffer(bytes: usize) -> u64 {
    const SOCKETS: usize = 16;
    let server = Portway::start(&["--ws-read-buffer-bytes", &bytes.to_string()]).await;
    // One socket first, so that what every socket costs besides its buffer is in the baseline.
    let first = socket_that_was_read(server.addr).await;
    let before = server.rss_kib();
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(socket_that_was_read(server.addr).await);
    }
    let after = server.rss_kib();
    drop((first, sockets));
    after.saturating_sub(before)
}

/// 16 sockets with a 4 MiB read buffer each hold at least 48 MiB more (of the 64 MiB their
/// buffers take); with a 4 KiB buffer they hold far less. With the setting ignored (8 KiB), the
/// first run would fail.
#[tokio::test]
async fn the_read_buffer_is_memory_per_socket() {
    let big = growth_with_read_buffer(4 << 20).await;
    let small = growth_with_read_buffer(4 << 10).await;
    println!("16 sockets: +{big} KiB with a 4 MiB read buffer, +{small} KiB with 4 KiB");
    assert!(big >= 48 * 1024, "16 sockets with 4 MiB read buffers grew the server by only {big} KiB");
    assert!(small < 16 * 1024, "16 sockets with 4 KiB read buffers grew the server by {small} KiB");
}

/// A client WebSocket frame: text, FIN, masked with a zero key (RFC 6455 §5.3 lets any key
/// be used; zero leaves the payload as it is).
fn client_text_frame(text: &str) -> Vec<u8> {
    let len = text.len();
    let mut out = vec![0x81];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(text.as_bytes());
    out
}

/// Splits server (unmasked) WebSocket frames; panics on a partial one: a write holds whole frames.
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2 && bytes[1] & 0x80 == 0, "a server frame header: {bytes:?}");
        let (len, at) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        assert!(bytes.len() >= at + len, "a DATA frame ends inside a WebSocket frame");
        out.push((bytes[0] & 0x0f, bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    out
}

/// Opens a socket over HTTP/2 on a gateway with `write_buffer` bytes of write buffer, sends 40
/// `ping`s in one DATA frame, and returns the server's DATA frames until the 40th `pong`, each
/// as the WebSocket frames it holds.
///
/// The test runs on one thread (tokio's current-thread runtime, the gateway in it too), so the
/// socket's reader answers the pings it has read one after another, queueing up to 16 `pong`s
/// before its writer runs: the writer always finds several waiting.
async fn pong_writes(write_buffer: usize) -> Vec<Vec<(u8, Vec<u8>)>> {
    let mut config = Config::default();
    config.websocket.write_buffer_bytes = write_buffer;
    let server = common::start_interop(config).await;
    let mut h2 = H2::handshake(server.addr, &[]).await;
    assert_eq!(h2.setting(h2raw::SETTINGS_ENABLE_CONNECT_PROTOCOL), Some(1));
    let id = h2.next_stream_id();
    let connect = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "http"),
        (":authority", "localhost"),
        (":path", "/ws"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "portway.v1.json"),
    ];
    h2.headers(id, &connect, false).await;
    let mut hello = false;
    while !hello {
        let f = h2.next().await.expect("the handshake's answer and the hello");
        match f.kind {
            HEADERS if f.stream == id => {
                let block = h2.decode(&f.payload);
                assert!(block.iter().any(|(n, v)| n == ":status" && v == "200"), "{block:?}");
            }
            DATA if f.stream == id => {
                hello = server_frames(&f.payload).iter().any(|(_, p)| p.starts_with(b"{\"type\":\"hello\""))
            }
            _ => {}
        }
    }
    let pings: Vec<u8> = (0..40).flat_map(|i| client_text_frame(&format!(r#"{{"type":"ping","data":{i}}}"#))).collect();
    h2.data(id, &pings, false).await;
    let (mut writes, mut pongs) = (Vec::new(), 0);
    while pongs < 40 {
        let f = h2.next().await.expect("the pongs");
        if f.kind != DATA || f.stream != id {
            continue;
        }
        let frames = server_frames(&f.payload);
        pongs += frames.iter().filter(|(_, p)| p.starts_with(b"{\"type\":\"pong\"")).count();
        writes.push(frames);
    }
    writes
}

/// No write buffer: every frame is written on its own. A 512-byte buffer: frames are grouped,
/// and a write is never larger than the threshold plus the frame that crossed it. With the
/// setting ignored (8 KiB), the first run would see the pongs grouped and the second one write.
#[tokio::test]
async fn the_write_buffer_groups_frames_up_to_its_threshold() {
    let unbuffered = pong_writes(0).await;
    println!(
        "write buffer 0: {} writes of {:?} frames",
        unbuffered.len(),
        unbuffered.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(unbuffered.iter().all(|w| w.len() == 1), "with no write buffer, frames were grouped: {unbuffered:?}");

    let threshold = 512;
    let buffered = pong_writes(threshold).await;
    let sizes: Vec<usize> = buffered.iter().map(|w| w.iter().map(|(_, p)| p.len() + 2).sum()).collect();
    println!(
        "write buffer {threshold}: {} writes of {:?} frames, {sizes:?} bytes",
        buffered.len(),
        buffered.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(buffered.iter().any(|w| w.len() > 1), "with a write buffer, no frames were grouped: {sizes:?}");
    for write in &buffered {
        let largest = write.iter().map(|(_, p)| p.len() + 2).max().unwrap_or(0);
        let total: usize = write.iter().map(|(_, p)| p.len() + 2).sum();
        assert!(total <= threshold + largest, "a {total}-byte write past the {threshold}-byte threshold: {sizes:?}");
    }
}
