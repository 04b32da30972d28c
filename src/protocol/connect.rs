//! The Connect protocol: JSON (and binary protobuf) over plain HTTP, so that `curl`,
//! Connect clients and `buf curl` can call any method.
//!
//! - unary: `POST /pkg.Svc/Method` with `application/json` or `application/proto`; errors
//!   as `{"code": "not_found", "message": ..., "details": [...]}` with the mapped HTTP status;
//!   trailers as `trailer-*` headers;
//! - unary over `GET` for methods marked `NO_SIDE_EFFECTS`
//!   (`?encoding=json&message=...[&base64=1][&compression=gzip]`);
//! - streaming: `application/connect+json` / `+proto` envelopes, ending with the
//!   end-of-stream envelope `{"error": ..., "metadata": ...}`; always HTTP 200.
//!
//! Every call goes to the service stack in-process as native gRPC (see
//! [`crate::transcode::call`]); `Connect-Timeout-Ms` becomes `grpc-timeout`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tonic::{Code, Status};

use super::Encoding;
use crate::gateway::Shared;
use crate::transcode::framing::{self, Decoder, FLAG_COMPRESSED, FLAG_END_STREAM, gzip};
use crate::transcode::status::{ErrorBody, http_status};
use crate::transcode::{CallEvent, CallSetup, MethodDescriptor, RequestMessages, RpcKind, call};

// `HeaderName`s, not `&str`s: a lookup by `&str` parses the name on every request.
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("connect-protocol-version");
const TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
const STREAM_ENCODING: HeaderName = HeaderName::from_static("connect-content-encoding");

/// Serves a Connect unary request (`POST` with `application/json` or `application/proto`).
pub async fn unary(shared: Arc<Shared>, req: Request<Body>, encoding: Encoding) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let method = shared.methods.get(parts.uri.path()).cloned();
    let result = async {
        check_protocol_version(&parts.headers)?;
        let method = resolve(&shared, parts.uri.path(), method.as_deref(), encoding)?;
        if let Some(m) = method
            && m.kind() != RpcKind::Unary
        {
            return Err(Rejection::WrongShape(m.kind()));
        }
        let timeout = connect_timeout(&parts.headers)?;
        let content_encoding = header_str(&parts.headers, CONTENT_ENCODING);
        let raw = read_limited(body, shared.config.max_message_bytes).await?;
        let message = decode_body(raw, content_encoding, shared.config.max_message_bytes)?;
        Ok((method, timeout, message))
    }
    .await;
    let (method, timeout, message) = match result {
        Ok(v) => v,
        Err(rejection) => return rejection.into_unary_response(encoding),
    };
    let setup = CallSetup {
        path: parts.uri.path().to_string(),
        metadata: parts.headers,
        timeout,
        extensions: parts.extensions,
    };
    finish_unary(&shared, setup, method, encoding, message).await
}

/// Serves a Connect unary `GET` (`?encoding=json&message=...`).
pub async fn get(shared: Arc<Shared>, req: Request<Body>) -> Response<Body> {
    let (parts, _body) = req.into_parts();
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let encoding = match query.get("encoding").map(String::as_str) {
        Some("json") => Encoding::Json,
        Some("proto") => Encoding::Proto,
        other => {
            return Rejection::Status(Status::invalid_argument(format!("unsupported encoding {other:?}")))
                .into_unary_response(Encoding::Json);
        }
    };
    let method = shared.methods.get(parts.uri.path()).cloned();
    let result = async {
        if let Some(v) = query.get("connect")
            && v != "v1"
        {
            return Err(Status::invalid_argument(format!("unsupported connect protocol version {v:?}")).into());
        }
        let method = resolve(&shared, parts.uri.path(), method.as_deref(), encoding)?;
        match method {
            Some(m) if m.kind() != RpcKind::Unary => return Err(Rejection::WrongShape(m.kind())),
            Some(m) if m.idempotency() != crate::transcode::Idempotency::NoSideEffects => {
                return Err(Rejection::GetNotAllowed);
            }
            _ => {}
        }
        let timeout = connect_timeout(&parts.headers)?;
        let raw = query.get("message").map(String::as_str).unwrap_or_default();
        let raw: Bytes = if query.get("base64").is_some_and(|v| v == "1") {
            let trimmed = raw.trim_end_matches('=');
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(trimmed)
                .map_err(|e| Status::invalid_argument(format!("message is not valid base64url: {e}")))?
                .into()
        } else {
            Bytes::from(raw.to_string())
        };
        if raw.len() > shared.config.max_message_bytes {
            return Err(too_large(raw.len(), shared.config.max_message_bytes).into());
        }
        let message = decode_body(raw, query.get("compression").map(String::as_str), shared.config.max_message_bytes)?;
        Ok((method, timeout, message))
    }
    .await;
    let (method, timeout, message) = match result {
        Ok(v) => v,
        Err(rejection) => return rejection.into_unary_response(encoding),
    };
    let setup = CallSetup {
        path: parts.uri.path().to_string(),
        metadata: parts.headers,
        timeout,
        extensions: parts.extensions,
    };
    finish_unary(&shared, setup, method, encoding, message).await
}

async fn finish_unary(
    shared: &Shared,
    setup: CallSetup,
    method: Option<&MethodDescriptor>,
    encoding: Encoding,
    message: Bytes,
) -> Response<Body> {
    let binary = match (encoding, method) {
        (Encoding::Json, Some(m)) => match m.request().json_to_binary(&message) {
            Ok(b) => Bytes::from(b),
            Err(e) => return Rejection::Status(Status::invalid_argument(e.0)).into_unary_response(encoding),
        },
        _ => message,
    };
    let max = shared.config.max_message_bytes;
    let mut call = call::start(&shared.stack, setup, RequestMessages::One(binary), max).await;
    let headers = call.take_headers();
    match call.unary().await {
        Ok((reply, mut status)) => {
            let body = match (encoding, method) {
                (Encoding::Json, Some(m)) => match m.response().binary_to_json(&reply) {
                    Ok(j) => Bytes::from(j),
                    Err(e) => {
                        tracing::error!(method = m.path(), error = %e, "service sent an undecodable response");
                        return error_response(
                            &Status::internal("service sent an invalid response"),
                            &headers,
                            encoding,
                        );
                    }
                },
                _ => reply,
            };
            let mut resp = Response::new(Body::from(body));
            *resp.headers_mut() = headers;
            append_trailers(resp.headers_mut(), std::mem::take(status.metadata_mut()).into_headers());
            resp.headers_mut().insert(CONTENT_TYPE, unary_content_type(encoding));
            resp
        }
        Err(status) => error_response(&status, &headers, encoding),
    }
}

/// Serves a Connect streaming request (`application/connect+json` or `+proto`).
pub async fn stream(shared: Arc<Shared>, req: Request<Body>, encoding: Encoding) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let method = shared.methods.get(parts.uri.path()).cloned();
    let checked = (|| {
        check_protocol_version(&parts.headers)?;
        let m = resolve(&shared, parts.uri.path(), method.as_deref(), encoding)?;
        if let Some(m) = m
            && m.kind() == RpcKind::Unary
        {
            return Err(Rejection::WrongShape(m.kind()));
        }
        let compressed = match header_str(&parts.headers, STREAM_ENCODING) {
            None | Some("identity") => false,
            Some("gzip") => true,
            Some(other) => {
                return Err(Status::unimplemented(format!("unsupported {STREAM_ENCODING} {other:?}")).into());
            }
        };
        Ok((connect_timeout(&parts.headers)?, compressed))
    })();
    let (timeout, compressed) = match checked {
        Ok(v) => v,
        Err(Rejection::Status(status)) => return stream_response(encoding, HeaderMap::new(), end_only(&status)),
        Err(rejection) => return rejection.into_unary_response(encoding),
    };

    let max = shared.config.max_message_bytes;
    let client_streams = method.as_ref().is_none_or(|m| m.kind().client_streams());
    let reader = RequestReader { method: method.clone(), encoding, compressed, max };
    let (failed_tx, failed_rx) = oneshot::channel::<Status>();
    let messages = if client_streams {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(reader.pump(body, tx, failed_tx));
        RequestMessages::Stream(rx)
    } else {
        match reader.read_one(body).await {
            Ok(m) => RequestMessages::One(m),
            Err(status) => return stream_response(encoding, HeaderMap::new(), end_only(&status)),
        }
    };
    let setup = CallSetup {
        path: parts.uri.path().to_string(),
        metadata: parts.headers,
        timeout,
        extensions: parts.extensions,
    };
    let mut call = call::start(&shared.stack, setup, messages, max).await;
    let headers = call.take_headers();

    let out = async_stream::stream! {
        let mut failed_rx = failed_rx;
        let mut reader_done = false;
        loop {
            let event = if reader_done {
                call.next().await
            } else {
                tokio::select! {
                    biased;
                    failure = &mut failed_rx => {
                        reader_done = true;
                        match failure {
                            // The request stream was bad: the call is abandoned (and so cancelled).
                            Ok(status) => CallEvent::End(status),
                            Err(_) => continue,
                        }
                    }
                    event = call.next() => event,
                }
            };
            match event {
                CallEvent::Message(bin) => {
                    let payload = match (encoding, method.as_deref()) {
                        (Encoding::Json, Some(m)) => match m.response().binary_to_json(&bin) {
                            Ok(j) => j,
                            Err(e) => {
                                tracing::error!(method = m.path(), error = %e, "service sent an undecodable response");
                                yield Ok::<_, std::convert::Infallible>(end_stream(&Status::internal("service sent an invalid response")));
                                break;
                            }
                        },
                        _ => bin.to_vec(),
                    };
                    yield Ok(framing::encode(0, &payload));
                }
                CallEvent::End(status) => {
                    yield Ok(end_stream(&status));
                    break;
                }
            }
        }
    };
    stream_response(encoding, headers, Body::from_stream(out))
}

fn end_only(status: &Status) -> Body {
    Body::from(end_stream(status))
}

/// Reads Connect request envelopes and turns them into binary messages.
struct RequestReader {
    method: Option<Arc<MethodDescriptor>>,
    encoding: Encoding,
    compressed: bool,
    max: usize,
}

impl RequestReader {
    fn message(&self, env: framing::Envelope) -> Result<Bytes, Status> {
        if env.flags & FLAG_END_STREAM != 0 {
            return Err(Status::invalid_argument("clients may not send an end-of-stream envelope"));
        }
        let payload = if env.flags & FLAG_COMPRESSED != 0 {
            if !self.compressed {
                return Err(Status::internal("compressed message without connect-content-encoding"));
            }
            Bytes::from(gzip::decompress(&env.payload, self.max).map_err(decompress_status)?)
        } else {
            env.payload
        };
        match (self.encoding, &self.method) {
            (Encoding::Json, Some(m)) => {
                m.request().json_to_binary(&payload).map(Bytes::from).map_err(|e| Status::invalid_argument(e.0))
            }
            _ => Ok(payload),
        }
    }

    /// Reads exactly one message (server-streaming calls). Any other count is a request
    /// cardinality violation: `UNIMPLEMENTED`, as gRPC (`doc/statuscodes.md`) and the Connect
    /// implementations answer it.
    async fn read_one(&self, mut body: Body) -> Result<Bytes, Status> {
        let mut decoder = Decoder::new(self.max);
        let mut found = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Status::invalid_argument(format!("reading request: {e}")))?;
            if let Ok(data) = frame.into_data() {
                decoder.push(&data);
            }
            while let Some(env) = decoder.next_envelope().map_err(frame_status)? {
                if found.is_some() {
                    return Err(Status::unimplemented("server-streaming method got more than one request message"));
                }
                found = Some(self.message(env)?);
            }
        }
        decoder.finish().map_err(frame_status)?;
        found.ok_or_else(|| Status::unimplemented("server-streaming method got no request message"))
    }

    /// Feeds every message to `tx`; on bad input reports the status on `failed`.
    async fn pump(self, mut body: Body, tx: mpsc::Sender<Bytes>, failed: oneshot::Sender<Status>) {
        let mut decoder = Decoder::new(self.max);
        let result: Result<(), Status> = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| Status::invalid_argument(format!("reading request: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    decoder.push(&data);
                }
                while let Some(env) = decoder.next_envelope().map_err(frame_status)? {
                    let message = self.message(env)?;
                    if tx.send(message).await.is_err() {
                        return Ok(()); // The call is over; nobody reads more.
                    }
                }
            }
            decoder.finish().map_err(frame_status)
        }
        .await;
        if let Err(status) = result {
            let _ = failed.send(status);
        }
    }
}

fn frame_status(e: framing::FrameError) -> Status {
    match e {
        framing::FrameError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        framing::FrameError::Truncated(_) => Status::invalid_argument(e.to_string()),
    }
}

/// Why a request was refused before any call started.
enum Rejection {
    Status(Status),
    WrongShape(RpcKind),
    GetNotAllowed,
}

impl From<Status> for Rejection {
    fn from(s: Status) -> Self {
        Self::Status(s)
    }
}

impl Rejection {
    fn into_unary_response(self, encoding: Encoding) -> Response<Body> {
        match self {
            Self::Status(status) => error_response(&status, &HeaderMap::new(), encoding),
            Self::WrongShape(kind) => {
                let hint = if kind == RpcKind::Unary {
                    "a unary method: use application/json or application/proto"
                } else {
                    "a streaming method: use application/connect+json or application/connect+proto"
                };
                let mut resp =
                    error_response(&Status::unimplemented(format!("this is {hint}")), &HeaderMap::new(), encoding);
                *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
                resp
            }
            Self::GetNotAllowed => {
                let status =
                    Status::unimplemented("GET is only allowed for methods marked idempotency_level = NO_SIDE_EFFECTS");
                let mut resp = error_response(&status, &HeaderMap::new(), encoding);
                *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST"));
                resp
            }
        }
    }
}

/// The method, if JSON needs it. Binary protobuf is relayed as is, so a method the table
/// does not know (a proxied service, say) still works with `application/proto`.
fn resolve<'a>(
    shared: &Shared,
    path: &str,
    method: Option<&'a MethodDescriptor>,
    encoding: Encoding,
) -> Result<Option<&'a MethodDescriptor>, Rejection> {
    match (method, encoding) {
        (Some(m), _) => Ok(Some(m)),
        (None, Encoding::Proto) => Ok(None),
        (None, Encoding::Json) => {
            let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
            let msg = if shared.methods.has_service(service) {
                format!("unknown method {path}")
            } else {
                format!("unknown service {service}")
            };
            Err(Status::unimplemented(msg).into())
        }
    }
}

fn check_protocol_version(headers: &HeaderMap) -> Result<(), Status> {
    match header_str(headers, PROTOCOL_VERSION) {
        None | Some("1") => Ok(()),
        Some(v) => Err(Status::invalid_argument(format!("unsupported {PROTOCOL_VERSION}: {v:?}"))),
    }
}

fn connect_timeout(headers: &HeaderMap) -> Result<Option<Duration>, Status> {
    match header_str(headers, TIMEOUT_MS) {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(v.parse::<u64>().ok().map(Duration::from_millis))
        }
        Some(v) => Err(Status::invalid_argument(format!("invalid {TIMEOUT_MS}: {v:?}"))),
    }
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn decompress_status(e: gzip::DecompressError) -> Status {
    match e {
        gzip::DecompressError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        gzip::DecompressError::Invalid(_) => Status::invalid_argument(e.to_string()),
    }
}

fn too_large(len: usize, limit: usize) -> Status {
    Status::resource_exhausted(format!("message of {len} bytes is larger than the limit of {limit} bytes"))
}

/// Reads a whole request body, refusing more than `limit` bytes.
///
/// Written out rather than `Limited::new(body, limit).collect()`: a unary request body is
/// nearly always a single frame, which this hands on as is, where `collect` builds a buffer
/// list and copies it out (a measurable share of a small Connect call).
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, Status> {
    let too_large = || Status::resource_exhausted(format!("request body is larger than the limit of {limit} bytes"));
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Status::invalid_argument(format!("reading request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        len = len.saturating_add(data.len());
        if len > limit {
            return Err(too_large());
        }
        if let Some(buf) = joined.as_mut() {
            buf.extend_from_slice(&data);
        } else if let Some(head) = first.take() {
            let mut buf = BytesMut::with_capacity(len);
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&data);
            joined = Some(buf);
        } else {
            first = Some(data);
        }
    }
    Ok(match (joined, first) {
        (Some(buf), _) => buf.freeze(),
        (None, Some(head)) => head,
        (None, None) => Bytes::new(),
    })
}

fn decode_body(raw: Bytes, encoding: Option<&str>, limit: usize) -> Result<Bytes, Status> {
    match encoding {
        None | Some("identity") => Ok(raw),
        Some("gzip") => gzip::decompress(&raw, limit).map(Bytes::from).map_err(decompress_status),
        Some(other) => {
            Err(Status::unimplemented(format!("unsupported content encoding {other:?}; use gzip or identity")))
        }
    }
}

fn unary_content_type(encoding: Encoding) -> HeaderValue {
    HeaderValue::from_static(match encoding {
        Encoding::Json => "application/json",
        Encoding::Proto => "application/proto",
    })
}

/// `trailer-` prefixed headers: how Connect unary responses carry trailers.
fn append_trailers(headers: &mut HeaderMap, trailers: HeaderMap) {
    let mut last = None;
    for (name, value) in trailers {
        if let Some(n) = name {
            last = HeaderName::from_bytes(format!("trailer-{n}").as_bytes()).ok();
        }
        if let Some(n) = &last {
            headers.append(n.clone(), value);
        }
    }
}

/// A Connect unary error: the mapped HTTP status and the JSON error object.
pub fn error_response(status: &Status, headers: &HeaderMap, _encoding: Encoding) -> Response<Body> {
    let body = serde_json::to_vec(&ErrorBody::from_status(status)).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = http_status(status.code());
    *resp.headers_mut() = headers.clone();
    append_trailers(resp.headers_mut(), status.metadata().clone().into_headers());
    // Connect errors are always JSON, whatever the request's encoding.
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn stream_response(encoding: Encoding, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.headers_mut() = headers;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(match encoding {
            Encoding::Json => "application/connect+json",
            Encoding::Proto => "application/connect+proto",
        }),
    );
    resp
}

#[derive(Serialize)]
struct EndStream {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, Vec<String>>,
}

/// The end-of-stream envelope for `status` (OK or not), with its trailers as metadata.
fn end_stream(status: &Status) -> Bytes {
    let error = (status.code() != Code::Ok).then(|| ErrorBody::from_status(status));
    let mut metadata: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in status.metadata().clone().into_headers().iter() {
        if let Ok(v) = value.to_str() {
            metadata.entry(name.as_str().to_string()).or_default().push(v.to_string());
        }
    }
    let json = serde_json::to_vec(&EndStream { error, metadata }).unwrap_or_else(|_| b"{}".to_vec());
    framing::encode(FLAG_END_STREAM, &json)
}
