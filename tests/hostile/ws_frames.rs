//! Malformed WebSocket frames (RFC 6455), written as raw bytes on a `TcpStream`: the
//! frames tungstenite would refuse to send. A frame-level violation closes the socket with
//! its close code (every call on it ends: RFC 6455 leaves no way to skip a broken frame);
//! anything else leaves the socket serving, which a call opened after the row shows. A
//! second socket, with a call open on it the whole time, must not notice any row.

use std::net::SocketAddr;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::ws_json::{check_healthy_round, connect, finish_healthy, open_healthy};
use super::{Row, TS, bounded, common, config, judge};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client frame: FIN, RSV bits (in their place), opcode, masked unless `masked` is false.
fn frame(fin: bool, rsv: u8, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | rsv | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn text(s: &str) -> Vec<u8> {
    frame(true, 0, TEXT, true, s.as_bytes())
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    frame(true, 0, CLOSE, true, &[&code.to_be_bytes()[..], reason].concat())
}

/// A frame header that declares `len` payload bytes (64-bit length), masked, no payload.
fn header_claiming(len: u64) -> Vec<u8> {
    [&[0x81u8, 0x80 | 127][..], &len.to_be_bytes(), &MASK].concat()
}

async fn handshake(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let req = "GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
               sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               sec-websocket-protocol: portway.v1.json\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.map_err(|e| e.to_string())?);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(String::from_utf8_lossy(&head).into_owned());
    }
    Ok(tcp)
}

/// Reads one server frame: (opcode, payload); `Err` at the end of the stream.
async fn read_frame(tcp: &mut TcpStream) -> Result<(u8, Vec<u8>), String> {
    let eof = |e: std::io::Error| format!("eof ({})", e.kind());
    let b0 = tcp.read_u8().await.map_err(eof)?;
    let b1 = tcp.read_u8().await.map_err(eof)?;
    let len = match b1 & 0x7f {
        126 => u64::from(tcp.read_u16().await.map_err(eof)?),
        127 => tcp.read_u64().await.map_err(eof)?,
        n => u64::from(n),
    };
    let mut payload = vec![0; len as usize];
    tcp.read_exact(&mut payload).await.map_err(eof)?;
    Ok((b0 & 0x0f, payload))
}

/// Sends the row's bytes, then a unary call; reads what the server makes of both:
/// `close N`, or what came before the call's `status` (`error R`, `pong`) followed by
/// `then ok`.
async fn outcome(tcp: &mut TcpStream, bytes: &[u8]) -> String {
    let open = json!({"type":"open","id":5,"method":format!("{TS}/EmptyCall"),"message":{},"end":true});
    if tcp.write_all(bytes).await.is_err() || tcp.write_all(&text(&open.to_string())).await.is_err() {
        return "write failed".into();
    }
    let mut seen: Vec<String> = Vec::new();
    loop {
        let (op, payload) = match read_frame(tcp).await {
            Ok(f) => f,
            Err(e) => return [seen, vec![e]].concat().join(", "),
        };
        match op {
            CLOSE => {
                let code = payload.get(..2).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                seen.push(format!("close {code}"));
                return seen.join(", ");
            }
            PONG => seen.push("pong".into()),
            TEXT => {
                let v: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
                match v["type"].as_str() {
                    Some("error") => seen.push(format!("error {}", v["reason"].as_str().unwrap_or("?"))),
                    Some("pong") => seen.push("pong".into()),
                    Some("status") if v["id"] == 5 => {
                        seen.push(format!("then {}", v["code"].as_str().unwrap_or("?")));
                        return seen.join(", ");
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

struct FrameRow {
    name: &'static str,
    bytes: Vec<u8>,
    want: &'static str,
}

fn rows() -> Vec<FrameRow> {
    let r = |name, bytes, want| FrameRow { name, bytes, want };
    let ping_text = br#"{"type":"ping","data":"x"}"#;
    let mut many = frame(false, 0, TEXT, true, &ping_text[..14]);
    for _ in 0..10_000 {
        many.extend(frame(false, 0, 0, true, &[]));
    }
    many.extend(frame(true, 0, 0, true, &ping_text[14..]));
    let accented = r#"{"type":"ping","data":"é"}"#.as_bytes();
    let split = accented.iter().position(|&b| b >= 0x80).unwrap() + 1;
    let big = vec![b' '; 60 * 1024];
    vec![
        r("opcode-3", frame(true, 0, 0x3, true, b"{}"), "close 1002"),
        r("opcode-11", frame(true, 0, 0xb, true, b""), "close 1002"),
        r("unmasked", frame(true, 0, TEXT, false, b"{}"), "close 1002"),
        r("rsv1", frame(true, 0x40, TEXT, true, b"{}"), "close 1002"),
        r("rsv2", frame(true, 0x20, TEXT, true, b"{}"), "close 1002"),
        r("rsv3", frame(true, 0x10, TEXT, true, b"{}"), "close 1002"),
        r("ping-of-126-bytes", frame(true, 0, PING, true, &[0; 126]), "close 1002"),
        r("fragmented-ping", frame(false, 0, PING, true, b"x"), "close 1002"),
        r("fragmented-close", frame(false, 0, CLOSE, true, &1000u16.to_be_bytes()), "close 1002"),
        r("continuation-without-start", frame(true, 0, 0, true, b"{}"), "close 1002"),
        r(
            "new-message-inside-a-fragmented-one",
            [frame(false, 0, TEXT, true, b"{"), text("{}")].concat(),
            "close 1002",
        ),
        r("text-not-utf8", frame(true, 0, TEXT, true, &[0xff, 0xfe, 0x41]), "close 1007"),
        r(
            "fragments-not-utf8",
            [frame(false, 0, TEXT, true, b"\"\xc3"), frame(true, 0, 0, true, b"\xff\"")].concat(),
            "close 1007",
        ),
        r(
            "utf8-split-across-fragments",
            [frame(false, 0, TEXT, true, &accented[..split - 1]), frame(true, 0, 0, true, &accented[split - 1..])]
                .concat(),
            "pong, then ok",
        ),
        r("10000-empty-fragments", many, "pong, then ok"),
        r(
            "fragments-past-the-frame-limit",
            // 3 × 60 KiB: past the frame limit (the JSON text bound, 2 × LIMIT + 64 KiB, plus 64 KiB).
            [frame(false, 0, TEXT, true, &big), frame(false, 0, 0, true, &big), frame(false, 0, 0, true, &big)]
                .concat(),
            "close 1009",
        ),
        r("length-of-1-tib", header_claiming(1 << 40), "close 1009"),
        r("length-with-the-top-bit-set", header_claiming(1 << 63), "close 1002"),
        r("close-code-999", close(999, b""), "close 1002"),
        r("close-code-1005", close(1005, b""), "close 1002"),
        r("close-code-1006", close(1006, b""), "close 1002"),
        r("close-code-1016", close(1016, b""), "close 1002"),
        r("close-code-5000", close(5000, b""), "close 1002"),
        r("close-of-one-byte", frame(true, 0, CLOSE, true, &[3]), "close 1002"),
        r("close-reason-not-utf8", close(1000, b"\xff\xfe"), "close 1007"),
        r("close-1000", close(1000, b"bye"), "close 1000"),
        r("close-4001", close(4001, b""), "close 4001"),
        r("binary", frame(true, 0, BINARY, true, &[1, 2, 3]), "error binary_frame, then ok"),
        r("ping-of-125-bytes", frame(true, 0, PING, true, &[7; 125]), "pong, then ok"),
        r("unsolicited-pong", frame(true, 0, PONG, true, b"?"), "then ok"),
        r("empty-text", text(""), "error malformed_frame, then ok"),
    ]
}

#[tokio::test]
async fn websocket_wire_frames() {
    let server = common::start_interop(config()).await;
    let mut healthy = connect(server.addr).await.expect("the healthy socket");
    open_healthy(&mut healthy).await.expect("the healthy call");
    let mut results = Vec::new();
    for r in rows() {
        let got = bounded(async {
            let mut tcp = match handshake(server.addr).await {
                Ok(t) => t,
                Err(e) => return format!("handshake failed: {e}"),
            };
            let got = outcome(&mut tcp, &r.bytes).await;
            match check_healthy_round(&mut healthy).await {
                Ok(()) => got,
                Err(e) => format!("{got} +the other socket: {e}"),
            }
        })
        .await;
        results.push(Row { name: format!("websocket-frame/{}", r.name), want: r.want.into(), got });
    }
    let end = bounded(async { finish_healthy(&mut healthy).await.err().unwrap_or_else(|| "ok".into()) }).await;
    assert_eq!(end, "ok", "the call beside every row ends OK");
    judge("websocket-frame", &results);
}
