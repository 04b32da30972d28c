//! A raw HTTP/2 client: frames written and read by hand on a tokio `TcpStream` (RFC 9113),
//! with HPACK from the `loona-hpack` crate. Library clients (h2, hyper, tonic) hide exactly
//! what these tests are about — which frames a response is made of, a GOAWAY, a stream past
//! the limit — and refuse to send the abusive sequences the abuse tests need.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::http::GUARD;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// One frame as read off the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Bytes,
}

impl Frame {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        self.payload.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A short description, for failure messages: `HEADERS[END_STREAM,END_HEADERS](12)`.
    pub fn describe(&self) -> String {
        let name = match self.kind {
            DATA => "DATA",
            HEADERS => "HEADERS",
            RST_STREAM => "RST_STREAM",
            SETTINGS => "SETTINGS",
            PING => "PING",
            GOAWAY => "GOAWAY",
            WINDOW_UPDATE => "WINDOW_UPDATE",
            CONTINUATION => "CONTINUATION",
            _ => "OTHER",
        };
        let mut flags = Vec::new();
        if matches!(self.kind, DATA | HEADERS) && self.has(END_STREAM) {
            flags.push("END_STREAM");
        }
        if matches!(self.kind, HEADERS | CONTINUATION) && self.has(END_HEADERS) {
            flags.push("END_HEADERS");
        }
        format!("{name}[{}]({})", flags.join(","), self.payload.len())
    }
}

/// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// A response as a sequence of frames on one stream, its header blocks decoded.
#[derive(Debug, Default)]
pub struct Stream {
    pub frames: Vec<Frame>,
    /// Every header block on the stream (response headers, then trailers), decoded.
    pub blocks: Vec<Vec<(String, String)>>,
    pub data: BytesMut,
    /// The stream was reset (with this code).
    pub reset: Option<u32>,
    /// The connection ended (GOAWAY code, or `None` for EOF) before the stream did.
    pub connection_ended: bool,
}

impl Stream {
    pub fn header(&self, block: usize, name: &str) -> Option<&str> {
        self.blocks.get(block)?.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name` in the last header block that has it (trailers win over headers).
    pub fn last(&self, name: &str) -> Option<&str> {
        self.blocks.iter().rev().find_map(|b| b.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()))
    }

    pub fn describe(&self) -> String {
        self.frames.iter().map(Frame::describe).collect::<Vec<_>>().join(" ")
    }
}

/// One HTTP/2 connection, driven frame by frame.
pub struct H2 {
    tcp: TcpStream,
    buf: BytesMut,
    encoder: loona_hpack::Encoder<'static>,
    decoder: loona_hpack::Decoder<'static>,
    /// Header block fragments of a HEADERS frame waiting for its CONTINUATION frames.
    partial: Option<(Frame, Vec<u8>)>,
    /// The server's SETTINGS.
    pub settings: Vec<(u16, u32)>,
    /// Frames read while looking for something else (on other streams, GOAWAY).
    pub other: Vec<Frame>,
    /// Whether [`H2::stream`] grants the server more window as data arrives.
    pub auto_window: bool,
    next_stream: u32,
}

impl H2 {
    /// TCP only: nothing is sent yet.
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp =
            tokio::time::timeout(GUARD, TcpStream::connect(addr)).await.expect("connect timed out").expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        Self {
            tcp,
            buf: BytesMut::new(),
            encoder: loona_hpack::Encoder::new(),
            decoder: loona_hpack::Decoder::new(),
            partial: None,
            settings: Vec::new(),
            other: Vec::new(),
            auto_window: true,
            next_stream: 1,
        }
    }

    /// Connects, sends the preface and `settings`, and reads the server's SETTINGS (acking
    /// them). The server's ACK of ours is left for later reads to skip.
    pub async fn handshake(addr: SocketAddr, settings: &[(u16, u32)]) -> Self {
        let mut h2 = Self::connect(addr).await;
        h2.send_raw(PREFACE).await;
        h2.settings(settings).await;
        loop {
            let frame = h2.next().await.expect("the server's SETTINGS");
            if frame.kind == SETTINGS && !frame.has(ACK) {
                h2.settings = frame
                    .payload
                    .chunks(6)
                    .map(|p| (u16::from_be_bytes([p[0], p[1]]), u32::from_be_bytes([p[2], p[3], p[4], p[5]])))
                    .collect();
                h2.send(SETTINGS, ACK, 0, &[]).await;
                return h2;
            }
        }
    }

    /// A server setting, if it sent one.
    pub fn setting(&self, id: u16) -> Option<u32> {
        self.settings.iter().find(|(i, _)| *i == id).map(|(_, v)| *v)
    }

    /// The next client stream id (odd, increasing).
    pub fn next_stream_id(&mut self) -> u32 {
        let id = self.next_stream;
        self.next_stream += 2;
        id
    }

    /// Writes raw bytes; `false` if the connection is gone.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        matches!(tokio::time::timeout(GUARD, self.tcp.write_all(bytes)).await, Ok(Ok(())))
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        assert!(self.try_send_raw(bytes).await, "writing to the server failed");
    }

    /// Encodes one frame.
    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = Vec::with_capacity(9 + len);
        out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    pub async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        self.send_raw(&Self::frame(kind, flags, stream, payload)).await;
    }

    pub async fn try_send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> bool {
        self.try_send_raw(&Self::frame(kind, flags, stream, payload)).await
    }

    pub async fn settings(&mut self, settings: &[(u16, u32)]) {
        let payload: Vec<u8> =
            settings.iter().flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes())).collect();
        self.send(SETTINGS, 0, 0, &payload).await;
    }

    /// HPACK-encodes a header list (pseudo-headers first, as given).
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        self.encoder.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    /// Sends a request's HEADERS frame (one frame, END_HEADERS).
    pub async fn headers(&mut self, stream: u32, headers: &[(&str, &str)], end_stream: bool) {
        let block = self.encode(headers);
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.send(HEADERS, flags, stream, &block).await;
    }

    /// The request headers of a POST to `path` on this server.
    pub fn post<'a>(path: &'a str, content_type: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "localhost"),
            (":path", path),
            ("content-type", content_type),
        ];
        h.extend_from_slice(extra);
        h
    }

    pub async fn data(&mut self, stream: u32, bytes: &[u8], end_stream: bool) {
        self.send(DATA, if end_stream { END_STREAM } else { 0 }, stream, bytes).await;
    }

    pub async fn window_update(&mut self, stream: u32, increment: u32) {
        self.send(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes()).await;
    }

    pub async fn rst(&mut self, stream: u32, code: u32) {
        self.send(RST_STREAM, 0, stream, &code.to_be_bytes()).await;
    }

    pub async fn ping(&mut self, payload: [u8; 8]) {
        self.send(PING, 0, 0, &payload).await;
    }

    /// The next frame, `None` when the connection ends (EOF or reset) or nothing arrives
    /// within the guard time.
    pub async fn next(&mut self) -> Option<Frame> {
        self.next_within(GUARD).await
    }

    /// The next frame, `None` when the connection ends or nothing arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let head = self.buf.split_to(9);
                    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    let payload = self.buf.split_to(len).freeze();
                    return Some(Frame { kind: head[3], flags: head[4], stream, payload });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Whether the server ends the connection within `wait` (reads and drops frames until
    /// then; answers nothing). Returns the GOAWAY it sent on the way, if any.
    pub async fn closed_within(&mut self, wait: Duration) -> (bool, Option<Frame>) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut goaway = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return (false, goaway);
            }
            match self.next_within(left).await {
                Some(f) if f.kind == GOAWAY => goaway = Some(f),
                Some(_) => {}
                None => return (tokio::time::Instant::now() < deadline, goaway),
            }
        }
    }

    /// Decodes a complete header block.
    pub fn decode(&mut self, block: &[u8]) -> Vec<(String, String)> {
        self.decoder
            .decode(block)
            .expect("the server's header block decodes")
            .into_iter()
            .map(|(n, v)| (String::from_utf8_lossy(&n).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            .collect()
    }

    /// Reads frames until `stream` ends (END_STREAM, RST_STREAM, or the connection ends),
    /// answering SETTINGS and PING on the way and, with `auto_window`, opening the window as
    /// data arrives. Frames of other streams are kept in [`H2::other`].
    pub async fn stream(&mut self, id: u32) -> Stream {
        let mut out = Stream::default();
        // A HEADERS frame with END_STREAM whose block continues: the stream ends with the block.
        let mut ends_with_block = false;
        loop {
            let Some(frame) = self.next().await else {
                out.connection_ended = true;
                return out;
            };
            match frame.kind {
                SETTINGS if !frame.has(ACK) => self.send(SETTINGS, ACK, 0, &[]).await,
                PING if !frame.has(ACK) => {
                    let payload = frame.payload.clone();
                    self.send(PING, ACK, 0, &payload).await;
                }
                GOAWAY => {
                    self.other.push(frame);
                    out.connection_ended = true;
                    return out;
                }
                _ if frame.stream != id => self.other.push(frame),
                HEADERS | CONTINUATION => {
                    out.frames.push(frame.clone());
                    if frame.kind == HEADERS {
                        ends_with_block = frame.has(END_STREAM);
                    }
                    if let Some(block) = self.header_fragment(&frame) {
                        let decoded = self.decode(&block);
                        out.blocks.push(decoded);
                        if ends_with_block {
                            return out;
                        }
                    }
                }
                DATA => {
                    out.frames.push(frame.clone());
                    out.data.extend_from_slice(&frame.payload);
                    if self.auto_window && !frame.payload.is_empty() {
                        let n = frame.payload.len() as u32;
                        self.window_update(0, n).await;
                        if !frame.has(END_STREAM) {
                            self.window_update(id, n).await;
                        }
                    }
                    if frame.has(END_STREAM) {
                        return out;
                    }
                }
                RST_STREAM => {
                    out.reset = frame.error_code();
                    out.frames.push(frame);
                    return out;
                }
                _ => out.frames.push(frame),
            }
        }
    }

    /// Collects header block fragments; the whole block once END_HEADERS arrives.
    fn header_fragment(&mut self, frame: &Frame) -> Option<Vec<u8>> {
        let mut payload = frame.payload.clone();
        if frame.kind == HEADERS {
            // Strip padding and priority fields if present.
            let mut pad = 0;
            if frame.has(0x8) {
                pad = payload.get_u8() as usize;
            }
            if frame.has(0x20) {
                payload.advance(5);
            }
            payload.truncate(payload.len() - pad);
            if frame.has(END_HEADERS) {
                return Some(payload.to_vec());
            }
            self.partial = Some((frame.clone(), payload.to_vec()));
            return None;
        }
        let (_, block) = self.partial.as_mut()?;
        block.extend_from_slice(&payload);
        if frame.has(END_HEADERS) {
            return self.partial.take().map(|(_, b)| b);
        }
        None
    }
}

/// A 5-byte envelope (gRPC, gRPC-Web) around `payload`.
pub fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What the server sent while a client flooded it, counted by [`Flood`]'s reader.
#[derive(Debug, Default, Clone)]
pub struct FloodReport {
    pub frames: u64,
    /// The GOAWAY's error code, if the server sent one.
    pub goaway: Option<u32>,
    /// RST_STREAM frames by error code.
    pub resets: std::collections::BTreeMap<u32, u64>,
    pub ping_acks: u64,
    pub settings_acks: u64,
    /// HEADERS frames (responses).
    pub headers: u64,
    /// The server closed the connection.
    pub closed: bool,
}

/// A connection split for flooding: the test writes as fast as it likes while a task reads
/// and counts everything the server sends (so the server is never blocked on a client that
/// does not read, unless the test wants that: see [`H2::flood_without_reading`]).
pub struct Flood {
    write: tokio::net::tcp::OwnedWriteHalf,
    report: std::sync::Arc<std::sync::Mutex<FloodReport>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    /// Kept so that a connection flooded without reading is not closed by dropping it.
    _read: Option<tokio::net::tcp::OwnedReadHalf>,
}

impl H2 {
    /// Splits the connection: writes go through the returned [`Flood`], a task reads.
    pub fn flood(self) -> Flood {
        let (mut read, write) = self.tcp.into_split();
        let report = std::sync::Arc::new(std::sync::Mutex::new(FloodReport::default()));
        let counted = report.clone();
        let mut buf = self.buf;
        let reader = tokio::spawn(async move {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                while buf.len() >= 9 {
                    let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                    if buf.len() < 9 + len {
                        break;
                    }
                    let head = buf.split_to(9);
                    let payload = buf.split_to(len);
                    let mut r = counted.lock().unwrap();
                    r.frames += 1;
                    let code = payload.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    match head[3] {
                        GOAWAY => r.goaway = payload.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                        RST_STREAM => *r.resets.entry(code.unwrap_or(u32::MAX)).or_default() += 1,
                        PING if head[4] & ACK != 0 => r.ping_acks += 1,
                        SETTINGS if head[4] & ACK != 0 => r.settings_acks += 1,
                        HEADERS => r.headers += 1,
                        _ => {}
                    }
                }
                match read.read(&mut chunk).await {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => {
                        counted.lock().unwrap().closed = true;
                        return;
                    }
                }
            }
        });
        Flood { write, report, reader: Some(reader), _read: None }
    }

    /// Splits the connection but reads nothing: the server's answers pile up on its side.
    pub fn flood_without_reading(self) -> Flood {
        let (read, write) = self.tcp.into_split();
        Flood { write, report: Default::default(), reader: None, _read: Some(read) }
    }
}

impl Flood {
    /// Writes `bytes` within `wait`; `false` if the server stopped reading or closed.
    pub async fn send(&mut self, bytes: &[u8], wait: Duration) -> bool {
        matches!(tokio::time::timeout(wait, self.write.write_all(bytes)).await, Ok(Ok(())))
    }

    /// What the server sent so far.
    pub fn report(&self) -> FloodReport {
        self.report.lock().unwrap().clone()
    }

    /// Waits up to `wait` for the server to close the connection; the report either way.
    pub async fn wait_closed(&mut self, wait: Duration) -> FloodReport {
        if let Some(reader) = self.reader.as_mut() {
            let _ = tokio::time::timeout(wait, reader).await;
        }
        self.report()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}
