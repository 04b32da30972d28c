//! The one call every unary benchmark makes — `grpc.testing.TestService/UnaryCall` with a
//! payload of [`PAYLOAD`] bytes and `response_size` [`PAYLOAD`], so the reply carries as many —
//! in each protocol's encoding, and a spot check that sends it with a client of our own and
//! verifies the answer (gRPC status 0 and the payload) before any load is put on a server.

use std::net::SocketAddr;

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use bytes::{Buf as _, Bytes};
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portway::pb::grpc::testing as pb;
use prost::Message as _;

/// Request and response payload size in bytes.
pub const PAYLOAD: usize = 128;

/// The path every unary benchmark calls.
pub const UNARY_PATH: &str = "/grpc.testing.TestService/UnaryCall";

/// How a response must look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Native gRPC: one message, `grpc-status: 0` in the trailers.
    Grpc,
    /// gRPC-Web (binary): one message frame, then a trailer frame with `grpc-status:0`.
    GrpcWeb,
    /// Connect unary JSON: the response message as canonical JSON.
    ConnectJson,
    /// Connect unary proto: the response message as binary protobuf.
    ConnectProto,
}

/// One request as h2load sends it.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub path: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Bytes,
    pub expect: Expect,
}

fn request_message() -> pb::SimpleRequest {
    pb::SimpleRequest {
        response_size: PAYLOAD as i32,
        payload: Some(pb::Payload { r#type: pb::PayloadType::Compressable as i32, body: vec![7u8; PAYLOAD] }),
        ..Default::default()
    }
}

fn framed(msg: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// The request JSON (canonical protobuf JSON, as a Connect or curl client sends it).
pub fn request_json() -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(vec![7u8; PAYLOAD]);
    format!(r#"{{"responseSize":{PAYLOAD},"payload":{{"body":"{body}"}}}}"#)
}

/// The API key of the `PORTWAY_BENCH_OBSERVE=edge` server (`servers::edge_layers`).
pub const BENCH_KEY: &str = "bench-key-7f3a9c2e";
/// The `authorization` header that carries it.
pub const BENCH_AUTHORIZATION: &str = "Bearer bench-key-7f3a9c2e";

/// Whether the server checks API keys (`PORTWAY_BENCH_OBSERVE=edge`; client and server
/// share the environment), so that every call must carry [`BENCH_KEY`].
pub fn edge() -> bool {
    std::env::var("PORTWAY_BENCH_OBSERVE").is_ok_and(|v| v == "edge")
}

fn with_key(mut headers: Vec<(&'static str, &'static str)>) -> Vec<(&'static str, &'static str)> {
    if edge() {
        headers.push(("authorization", BENCH_AUTHORIZATION));
    }
    headers
}

pub fn grpc() -> HttpCall {
    HttpCall {
        path: UNARY_PATH,
        headers: with_key(vec![("content-type", "application/grpc"), ("te", "trailers")]),
        body: framed(&request_message().encode_to_vec()),
        expect: Expect::Grpc,
    }
}

pub fn grpc_web() -> HttpCall {
    HttpCall {
        path: UNARY_PATH,
        headers: with_key(vec![
            ("content-type", "application/grpc-web+proto"),
            ("accept", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ]),
        body: framed(&request_message().encode_to_vec()),
        expect: Expect::GrpcWeb,
    }
}

pub fn connect_json() -> HttpCall {
    HttpCall {
        path: UNARY_PATH,
        headers: with_key(vec![("content-type", "application/json"), ("connect-protocol-version", "1")]),
        body: Bytes::from(request_json()),
        expect: Expect::ConnectJson,
    }
}

pub fn connect_proto() -> HttpCall {
    HttpCall {
        path: UNARY_PATH,
        headers: with_key(vec![("content-type", "application/proto"), ("connect-protocol-version", "1")]),
        body: Bytes::from(request_message().encode_to_vec()),
        expect: Expect::ConnectProto,
    }
}

/// Sends `call` once over HTTP/1.1 or HTTP/2 (prior knowledge), verifies the answer and
/// returns the response body length.
pub async fn spot_check(addr: SocketAddr, call: &HttpCall, h1: bool) -> anyhow::Result<u64> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let io = TokioIo::new(tcp);
    // HTTP/1.1 takes the origin form and a Host header; HTTP/2 the full URI.
    let uri = if h1 { call.path.to_string() } else { format!("http://{addr}{}", call.path) };
    let mut req = Request::post(uri).body(Full::new(call.body.clone()))?;
    if h1 {
        req.headers_mut().insert(http::header::HOST, HeaderValue::from_str(&addr.to_string())?);
    }
    for (name, value) in &call.headers {
        req.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    let resp = if h1 {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        send.send_request(req).await?
    } else {
        *req.version_mut() = http::Version::HTTP_2;
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        send.send_request(req).await?
    };
    let (parts, body) = resp.into_parts();
    ensure!(parts.status == http::StatusCode::OK, "HTTP {}", parts.status);
    let collected = body.collect().await.context("reading the response body")?;
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    let len = bytes.len() as u64;
    match call.expect {
        Expect::Grpc => {
            let status = trailers.as_ref().and_then(|t| t.get("grpc-status")).or(parts.headers.get("grpc-status"));
            ensure!(status.is_some_and(|s| s == "0"), "grpc-status {status:?}");
            let frames = frames(bytes)?;
            ensure!(frames.len() == 1 && frames[0].0 == 0, "expected one message frame");
            check_message(&frames[0].1)?;
        }
        Expect::GrpcWeb => {
            let frames = frames(bytes)?;
            ensure!(frames.len() == 2, "expected a message and a trailer frame, got {}", frames.len());
            check_message(&frames[0].1)?;
            ensure!(frames[1].0 & 0x80 != 0, "second frame is not a trailer frame");
            let trailer = String::from_utf8_lossy(&frames[1].1).to_ascii_lowercase();
            ensure!(
                trailer.lines().any(|l| l.trim().replace(' ', "") == "grpc-status:0"),
                "trailers without grpc-status 0: {trailer:?}"
            );
        }
        Expect::ConnectJson => {
            let resp: pb::SimpleResponse = serde_json::from_slice(&bytes).context("response JSON")?;
            ensure!(resp.payload.as_ref().is_some_and(|p| p.body.len() == PAYLOAD), "wrong payload in {resp:?}");
        }
        Expect::ConnectProto => check_message(&bytes)?,
    }
    Ok(len)
}

/// The response carries the payload asked for.
pub fn check_message(bytes: &[u8]) -> anyhow::Result<()> {
    let resp = pb::SimpleResponse::decode(bytes)?;
    ensure!(resp.payload.is_some_and(|p| p.body.len() == PAYLOAD), "wrong payload");
    Ok(())
}

/// Splits a body into 5-byte-prefixed frames: (flags, payload).
pub fn frames(mut bytes: Bytes) -> anyhow::Result<Vec<(u8, Bytes)>> {
    let mut out = Vec::new();
    while bytes.has_remaining() {
        if bytes.len() < 5 {
            bail!("truncated frame header");
        }
        let flags = bytes.get_u8();
        let len = bytes.get_u32() as usize;
        if bytes.len() < len {
            bail!("truncated frame");
        }
        out.push((flags, bytes.split_to(len)));
    }
    Ok(out)
}
