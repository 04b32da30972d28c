//! Plain HTTP clients (hyper, HTTP/1.1 or HTTP/2 prior knowledge) and the wire formats the
//! gateway's protocols put in HTTP bodies: 5-byte envelopes, gRPC-Web trailer frames and
//! base64 text, Connect end-of-stream messages.
//!
//! The envelope code is written here on purpose instead of reusing `portway::transcode`:
//! a test that decoded with the code under test would not notice when that code is wrong.

use std::convert::Infallible;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

/// Every test's guard against hangs: no single step should take anywhere near this long.
pub const GUARD: Duration = Duration::from_secs(10);

/// Polls `f` every 10 ms until it holds; fails the test, naming `what`, after 15 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `fut`, failing the test if it takes longer than [`GUARD`].
pub async fn guard<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut).await.expect("timed out: the gateway hung")
}

/// Which HTTP version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// HTTP/1.1.
    H1,
    /// HTTP/2 with prior knowledge (cleartext, no upgrade).
    H2,
}

impl Http {
    pub fn version(self) -> Version {
        match self {
            Http::H1 => Version::HTTP_11,
            Http::H2 => Version::HTTP_2,
        }
    }
}

/// The request body every helper sends: a full buffer or a stream fed by a channel.
pub type ReqBody = BoxBody<Bytes, Infallible>;

/// A hyper client that speaks `version` (one connection pool per client).
pub fn client(version: Http) -> Client<HttpConnector, ReqBody> {
    let mut builder = Client::builder(TokioExecutor::new());
    if version == Http::H2 {
        builder.http2_only(true);
    }
    builder.build_http()
}

/// A complete request body.
pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A request body that streams whatever is sent on the returned channel; dropping the
/// sender ends the body.
pub fn channel_body() -> (mpsc::Sender<Bytes>, ReqBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

/// A response read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `req` and reads the whole response (guarded).
pub async fn send(version: Http, req: Request<ReqBody>) -> Reply {
    let resp = send_streaming(version, req).await;
    read_reply(resp).await
}

/// Sends `req` and returns the response as soon as its headers arrive.
pub async fn send_streaming(version: Http, req: Request<ReqBody>) -> Response<Incoming> {
    let client = client(version);
    let resp = guard(client.request(req)).await.expect("HTTP request failed");
    assert_eq!(resp.version(), version.version(), "the connection did not speak {version:?}");
    resp
}

/// Reads a response to the end.
pub async fn read_reply(resp: Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let collected = guard(body.collect()).await.expect("reading the response body failed");
    let trailers = collected.trailers().cloned();
    Reply { status: parts.status, version: parts.version, headers: parts.headers, body: collected.to_bytes(), trailers }
}

/// A request builder with an absolute URI, as the hyper client needs.
pub fn request(method: &str, url: &str) -> http::request::Builder {
    Request::builder().method(method).uri(url)
}

// ---------------------------------------------------------------------------------------
// Envelopes: one flags byte, a big-endian u32 length, the payload.

/// One envelope.
pub fn frame(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(flags);
    out.extend_from_slice(&u32::try_from(payload.len()).expect("small test payload").to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Several envelopes with flags 0, back to back.
pub fn frames<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    payloads.into_iter().flat_map(|p| frame(0, p)).collect()
}

/// Splits a body into its envelopes; panics on trailing garbage.
pub fn parse_frames(mut body: &[u8]) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "truncated envelope header: {body:?}");
        let flags = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert!(body.len() >= 5 + len, "truncated envelope: wants {len} bytes, has {}", body.len() - 5);
        out.push((flags, Bytes::copy_from_slice(&body[5..5 + len])));
        body = &body[5 + len..];
    }
    out
}

/// Reads envelopes off a streaming response body one at a time.
pub struct FrameReader {
    body: Incoming,
    buf: BytesMut,
}

impl FrameReader {
    pub fn new(body: Incoming) -> Self {
        Self { body, buf: BytesMut::new() }
    }

    /// The next envelope, or `None` at the end of the body (guarded).
    pub async fn next(&mut self) -> Option<(u8, Bytes)> {
        guard(async {
            loop {
                if self.buf.len() >= 5 {
                    let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
                    if self.buf.len() >= 5 + len {
                        let flags = self.buf[0];
                        self.buf.advance(5);
                        return Some((flags, self.buf.split_to(len).freeze()));
                    }
                }
                match self.body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            self.buf.extend_from_slice(&data);
                        }
                    }
                    Some(Err(e)) => panic!("response body failed: {e}"),
                    None => {
                        assert!(self.buf.is_empty(), "body ended inside an envelope: {:?}", self.buf);
                        return None;
                    }
                }
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// gRPC-Web.

/// The gRPC-Web flag of the trailers frame.
pub const WEB_TRAILERS: u8 = 0x80;

/// Decodes a `grpc-web-text` body: base64 segments, each padded, concatenated.
pub fn decode_web_text(body: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(clean.len() % 4, 0, "grpc-web-text body is not whole base64 quads");
    let mut out = Vec::new();
    // Every quad decodes on its own, so concatenated padded segments decode too.
    for quad in clean.chunks(4) {
        out.extend(STANDARD.decode(quad).expect("valid base64"));
    }
    out
}

/// Parses the payload of a gRPC-Web trailers frame (`name: value\r\n` lines).
pub fn parse_trailer_block(block: &[u8]) -> HeaderMap {
    let text = std::str::from_utf8(block).expect("trailers are ASCII");
    let mut out = HeaderMap::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("bad trailer line {line:?}"));
        out.append(
            HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).expect("trailer name"),
            HeaderValue::from_str(value.trim()).expect("trailer value"),
        );
    }
    out
}

/// A gRPC-Web response, decoded.
#[derive(Debug)]
pub struct WebReply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// The message frames' payloads.
    pub messages: Vec<Bytes>,
    /// The trailers frame, or the headers of a trailers-only response.
    pub trailers: HeaderMap,
    /// Whether the status came in the headers (trailers-only).
    pub trailers_only: bool,
}

impl WebReply {
    /// The `grpc-status` code.
    pub fn code(&self) -> i32 {
        self.trailers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no grpc-status in {:?}", self.trailers))
    }

    /// The decoded `grpc-message`.
    pub fn message(&self) -> String {
        self.trailers
            .get("grpc-message")
            .map(|v| percent_encoding::percent_decode(v.as_bytes()).decode_utf8_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Parses a whole gRPC-Web response body (already base64-decoded for text).
pub fn parse_web(status: StatusCode, version: Version, headers: HeaderMap, body: &[u8]) -> WebReply {
    let mut messages = Vec::new();
    let mut trailers = None;
    for (flags, payload) in parse_frames(body) {
        assert!(trailers.is_none(), "a frame after the trailers frame");
        if flags & WEB_TRAILERS != 0 {
            trailers = Some(parse_trailer_block(&payload));
        } else {
            assert_eq!(flags, 0, "unexpected message flags");
            messages.push(payload);
        }
    }
    let trailers_only = trailers.is_none() && headers.contains_key("grpc-status");
    let trailers = match trailers {
        Some(t) => t,
        None if trailers_only => headers.clone(),
        None => panic!("gRPC-Web response without trailers: {headers:?}"),
    };
    WebReply { status, version, headers, messages, trailers, trailers_only }
}

/// Makes a gRPC-Web call with `messages` in one body and decodes the response.
pub async fn grpc_web_call(
    version: Http,
    text: bool,
    url: &str,
    messages: &[&[u8]],
    metadata: &[(&str, &str)],
) -> WebReply {
    let framed = frames(messages.iter().copied());
    let (content_type, body) = if text {
        ("application/grpc-web-text", STANDARD.encode(&framed).into_bytes())
    } else {
        ("application/grpc-web+proto", framed)
    };
    let mut req = request("POST", url)
        .header("content-type", content_type)
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .header("x-user-agent", "grpc-web-javascript/0.1");
    for (k, v) in metadata {
        req = req.header(*k, *v);
    }
    let reply = send(version, req.body(full(body)).expect("request")).await;
    assert_eq!(reply.status, StatusCode::OK, "gRPC-Web answers HTTP 200: {reply:?}");
    let ct = reply.header("content-type").unwrap_or_default().to_string();
    assert!(ct.starts_with(content_type), "response content type {ct:?} for a {content_type} request");
    let raw = if text { decode_web_text(&reply.body) } else { reply.body.to_vec() };
    parse_web(reply.status, reply.version, reply.headers, &raw)
}

// ---------------------------------------------------------------------------------------
// Connect.

/// Connect's end-of-stream flag.
pub const CONNECT_END: u8 = 0x02;

/// A Connect streaming response: the messages and the end-of-stream JSON.
#[derive(Debug)]
pub struct ConnectStream {
    pub messages: Vec<Bytes>,
    pub end: serde_json::Value,
}

/// Splits a Connect streaming body; the last envelope must be the end-of-stream one.
pub fn parse_connect_stream(body: &[u8]) -> ConnectStream {
    let mut frames = parse_frames(body);
    let (flags, end) = frames.pop().expect("a Connect stream ends with an end-of-stream envelope");
    assert_eq!(flags, CONNECT_END, "last envelope is not the end-of-stream message");
    for (flags, _) in &frames {
        assert_eq!(*flags, 0, "only the last envelope may carry the end-of-stream flag");
    }
    ConnectStream {
        messages: frames.into_iter().map(|(_, p)| p).collect(),
        end: serde_json::from_slice(&end).expect("end-of-stream message is JSON"),
    }
}

/// gzip, for compressed requests.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip to memory");
    enc.finish().expect("gzip to memory")
}

/// gunzip, for compressed responses.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).expect("valid gzip");
    out
}
