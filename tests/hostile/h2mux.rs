//! Rows over HTTP/2: the raw-frame client of `tests/common/h2raw.rs`, several streams at
//! once. A bidi call (`FullDuplexCall`) is opened and answered before the row, the row's
//! request goes on another stream, and after it the bidi call must answer again, a new call
//! on the same connection must succeed, and the bidi call must end OK.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::common::h2raw::{
    ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, H2, HEADERS, PING, RST_STREAM, SETTINGS,
};
use super::wire::{Read, Req, Resp, env, outcome, output};
use super::{TS, bounded};

const MAX_FRAME: usize = 16 * 1024;

/// What arrived on a stream, header blocks decoded (in arrival order: HPACK's dynamic
/// table needs every block decoded in turn).
enum Ev {
    Headers { list: Vec<(String, String)>, end: bool },
    Data { payload: Vec<u8>, end: bool },
    Reset(u32),
}

pub struct Mux {
    h2: H2,
    queued: HashMap<u32, VecDeque<Ev>>,
    /// A header block waiting for its CONTINUATION frames: stream, END_STREAM, bytes.
    partial: Option<(u32, bool, Vec<u8>)>,
    /// The GOAWAY's error code, if the server sent one.
    pub goaway: Option<u32>,
    /// Why the connection ended (`closed` or `hang`), if it did.
    pub ended: Option<&'static str>,
    /// Streams whose response HEADERS were already read (the next block is trailers).
    headers_read: std::collections::HashSet<u32>,
}

impl Mux {
    pub async fn open(addr: SocketAddr) -> Self {
        Self {
            h2: H2::handshake(addr, &[]).await,
            queued: HashMap::new(),
            partial: None,
            goaway: None,
            ended: None,
            headers_read: Default::default(),
        }
    }

    pub fn next_id(&mut self) -> u32 {
        self.h2.next_stream_id()
    }

    /// Reads one frame: answers SETTINGS and PING, opens the window for data, queues the
    /// rest by stream. `false` once the connection has ended.
    async fn pump(&mut self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        let wait = Duration::from_secs(12);
        let start = tokio::time::Instant::now();
        let Some(frame) = self.h2.next_within(wait).await else {
            self.ended = Some(if start.elapsed() >= wait { "hang" } else { "closed" });
            return false;
        };
        match frame.kind {
            SETTINGS if !frame.has(ACK) => self.h2.send(SETTINGS, ACK, 0, &[]).await,
            SETTINGS => {}
            PING if !frame.has(ACK) => {
                let payload = frame.payload.clone();
                self.h2.send(PING, ACK, 0, &payload).await;
            }
            GOAWAY => self.goaway = frame.error_code(),
            DATA => {
                let n = frame.payload.len() as u32;
                if n > 0 {
                    self.h2.window_update(0, n).await;
                    if !frame.has(END_STREAM) {
                        self.h2.window_update(frame.stream, n).await;
                    }
                }
                let ev = Ev::Data { payload: frame.payload.to_vec(), end: frame.has(END_STREAM) };
                self.queued.entry(frame.stream).or_default().push_back(ev);
            }
            HEADERS | CONTINUATION => {
                let (stream, end, mut block) = match self.partial.take() {
                    Some(p) if frame.kind == CONTINUATION => p,
                    _ => (frame.stream, frame.has(END_STREAM), Vec::new()),
                };
                block.extend_from_slice(&frame.payload);
                if frame.has(END_HEADERS) {
                    let list = self.h2.decode(&block);
                    self.queued.entry(stream).or_default().push_back(Ev::Headers { list, end });
                } else {
                    self.partial = Some((stream, end, block));
                }
            }
            RST_STREAM => {
                let ev = Ev::Reset(frame.error_code().unwrap_or(0));
                self.queued.entry(frame.stream).or_default().push_back(ev);
            }
            _ => {}
        }
        true
    }

    async fn next_on(&mut self, id: u32) -> Option<Ev> {
        loop {
            if let Some(f) = self.queued.get_mut(&id).and_then(VecDeque::pop_front) {
                return Some(f);
            }
            if !self.pump().await {
                return None;
            }
        }
    }

    /// Sends a request: HEADERS (and CONTINUATION for a long block), then the body in DATA
    /// frames (one per byte when trickled); `end` closes the client's side.
    pub async fn send(&mut self, id: u32, req: &Req, end: bool) {
        let mut list: Vec<(&str, &str)> =
            vec![(":method", req.method), (":scheme", "http"), (":authority", "localhost"), (":path", &req.path)];
        list.extend(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let block = self.h2.encode(&list);
        let no_body = req.body.is_empty() && end;
        let chunks: Vec<&[u8]> = block.chunks(MAX_FRAME).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let mut flags = if last { END_HEADERS } else { 0 };
            if i == 0 && no_body {
                flags |= END_STREAM;
            }
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            if !self.h2.try_send(kind, flags, id, chunk).await {
                return;
            }
        }
        if no_body {
            return;
        }
        let size = if req.trickle { 1 } else { MAX_FRAME };
        let pieces: Vec<&[u8]> = req.body.chunks(size).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let flags = if end && i + 1 == pieces.len() { END_STREAM } else { 0 };
            if !self.h2.try_send(DATA, flags, id, piece).await {
                return;
            }
        }
        if pieces.is_empty() && end {
            self.h2.try_send(DATA, END_STREAM, id, &[]).await;
        }
    }

    /// Reads stream `id` to its end. `Err` says how it ended otherwise (`reset N`, or the
    /// connection `closed` or hung).
    pub async fn response(&mut self, id: u32) -> Result<Resp, String> {
        // A stream whose HEADERS an earlier read took (the healthy bidi call) is a 200.
        let mut seen_headers = self.headers_read.contains(&id);
        let mut resp = Resp { status: if seen_headers { 200 } else { 0 }, ..Resp::default() };
        loop {
            let Some(ev) = self.next_on(id).await else {
                return Err(self.ended.unwrap_or("closed").to_string());
            };
            match ev {
                Ev::Headers { list, end } => {
                    if seen_headers {
                        resp.trailers = list;
                    } else {
                        seen_headers = true;
                        resp.status =
                            list.iter().find(|(n, _)| n == ":status").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                        resp.headers = list;
                    }
                    if end {
                        return Ok(resp);
                    }
                }
                Ev::Data { payload, end } => {
                    resp.body.extend_from_slice(&payload);
                    if end {
                        return Ok(resp);
                    }
                }
                Ev::Reset(code) => return Err(format!("reset {code}")),
            }
        }
    }

    /// Opens the bidi call every row keeps beside it, and waits for its first answer.
    pub async fn open_healthy(&mut self) -> Result<u32, String> {
        let id = self.next_id();
        let req = Req::post(format!("{TS}/FullDuplexCall"), "application/grpc", env(0, &output(1)));
        self.send(id, &req, false).await;
        self.answer(id).await.map(|()| id)
    }

    /// Waits for a response message on `id` (its HEADERS first, the first time).
    async fn answer(&mut self, id: u32) -> Result<(), String> {
        loop {
            let Some(ev) = self.next_on(id).await else {
                return Err(format!("connection {}", self.ended.unwrap_or("closed")));
            };
            match ev {
                Ev::Data { end: true, .. } | Ev::Headers { end: true, .. } => return Err("the bidi call ended".into()),
                Ev::Headers { .. } => {
                    self.headers_read.insert(id);
                }
                Ev::Data { payload, .. } if !payload.is_empty() => return Ok(()),
                Ev::Reset(code) => return Err(format!("the bidi call was reset ({code})")),
                _ => {}
            }
        }
    }

    /// After a row: the bidi call answers again, a new call succeeds, the bidi call ends OK.
    pub async fn check_healthy(&mut self, id: u32) -> Result<(), String> {
        self.h2.try_send(DATA, 0, id, &env(0, &output(1))).await;
        self.answer(id).await?;
        let unary = self.next_id();
        self.send(unary, &Req::post(format!("{TS}/EmptyCall"), "application/grpc", env(0, &[])), true).await;
        match self.response(unary).await.map(|r| outcome(Read::Grpc, &r)) {
            Ok(o) if o == "grpc 0" => {}
            other => return Err(format!("a new call on the connection got {other:?}")),
        }
        self.h2.try_send(DATA, END_STREAM, id, &[]).await;
        match self.response(id).await.map(|r| outcome(Read::Grpc, &r)) {
            Ok(o) if o == "grpc 0" => {}
            other => return Err(format!("the bidi call ended with {other:?}")),
        }
        if let Some(code) = self.goaway {
            return Err(format!("GOAWAY {code}"));
        }
        Ok(())
    }
}

/// Runs one request over HTTP/2 beside a healthy call; the outcome, with what happened to
/// the healthy call appended if anything did (`+...`).
pub async fn run(addr: SocketAddr, read: Read, req: &Req) -> String {
    run_with(addr, req, |resp| outcome(read, resp)).await
}

/// [`run`], the response read by `read`.
pub async fn run_with(addr: SocketAddr, req: &Req, read: impl FnOnce(&Resp) -> String) -> String {
    bounded(async {
        let mut mux = Mux::open(addr).await;
        let healthy = match mux.open_healthy().await {
            Ok(id) => id,
            Err(e) => return format!("no healthy call: {e}"),
        };
        let id = mux.next_id();
        mux.send(id, req, true).await;
        let got = match mux.response(id).await {
            Ok(resp) => read(&resp),
            Err(e) => e,
        };
        match mux.check_healthy(healthy).await {
            Ok(()) => got,
            Err(e) => format!("{got} +{e}"),
        }
    })
    .await
}
