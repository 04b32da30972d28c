//! Connect unary calls: `POST` with `application/json` or `application/proto`, and `GET`
//! for methods marked `NO_SIDE_EFFECTS`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderValue, Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tonic::Status;

use super::super::Encoding;
use super::common::{
    Adapter, Rejection, append_trailers, check_protocol_version, connect_timeout, decompress_status, error_response,
    header_str, resolve, response_gzip, too_large,
};
use crate::transcode::compression::COMPRESS_MIN_BYTES;
use crate::transcode::framing::gzip;
use crate::transcode::limits;
use crate::transcode::{CallSetup, GrpcService, Idempotency, MethodDescriptor, RequestMessages, RpcKind};

/// Serves a Connect unary request (`POST` with `application/json` or `application/proto`).
pub(super) async fn unary<S: GrpcService>(
    adapter: &Adapter<S>,
    req: Request<Body>,
    encoding: Encoding,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let content_encoding = header_str(&parts.headers, CONTENT_ENCODING);
    let gzip = response_gzip(header_str(&parts.headers, ACCEPT_ENCODING), content_encoding);
    let result = async {
        check_protocol_version(&parts.headers)?;
        let method = resolve(&adapter.invoker, parts.uri.path(), encoding)?;
        if let Some(m) = &method
            && m.kind() != RpcKind::Unary
        {
            return Err(Rejection::WrongShape(m.kind()));
        }
        let timeout = connect_timeout(&parts.headers)?;
        // The body is the message's JSON text or protobuf, perhaps compressed: bounded as
        // such here, and the decoded message by the message limit once transcoded.
        let text_limit = adapter.text_limit(encoding);
        let raw_limit = if is_identity(content_encoding) { text_limit } else { limits::compressed(text_limit) };
        let raw = read_limited(body, raw_limit).await?;
        let message = decode_body(raw, content_encoding, text_limit)?;
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
    finish_unary(adapter, setup, method.as_ref(), encoding, message, Reply { gzip, get: false }).await
}

/// Serves a Connect unary `GET` (`?encoding=json&message=...`).
pub(super) async fn get<S: GrpcService>(adapter: &Adapter<S>, req: Request<Body>) -> Response<Body> {
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
    let result = async {
        if let Some(v) = query.get("connect")
            && v != "v1"
        {
            return Err(Status::invalid_argument(format!("unsupported connect protocol version {v:?}")).into());
        }
        let method = resolve(&adapter.invoker, parts.uri.path(), encoding)?;
        match method {
            Some(m) if m.kind() != RpcKind::Unary => return Err(Rejection::WrongShape(m.kind())),
            Some(m) if m.idempotency() != Idempotency::NoSideEffects => {
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
        let compression = query.get("compression").map(String::as_str);
        let text_limit = adapter.text_limit(encoding);
        let raw_limit = if is_identity(compression) { text_limit } else { limits::compressed(text_limit) };
        if raw.len() > raw_limit {
            return Err(too_large(raw.len(), raw_limit).into());
        }
        let message = decode_body(raw, compression, text_limit)?;
        Ok((method, timeout, message))
    }
    .await;
    let (method, timeout, message) = match result {
        Ok(v) => v,
        Err(rejection) => return rejection.into_unary_response(encoding),
    };
    let gzip = response_gzip(header_str(&parts.headers, ACCEPT_ENCODING), None);
    let setup = CallSetup {
        path: parts.uri.path().to_string(),
        metadata: parts.headers,
        timeout,
        extensions: parts.extensions,
    };
    finish_unary(adapter, setup, method.as_ref(), encoding, message, Reply { gzip, get: true }).await
}

/// How the response may be sent.
struct Reply {
    /// The client takes a gzip-compressed body.
    gzip: bool,
    /// A `GET`, whose response caches may keep: they must know it varies by `accept-encoding`.
    get: bool,
}

async fn finish_unary<S: GrpcService>(
    adapter: &Adapter<S>,
    setup: CallSetup,
    method: Option<&Arc<MethodDescriptor>>,
    encoding: Encoding,
    message: Bytes,
    out: Reply,
) -> Response<Body> {
    let binary = match (encoding, method) {
        (Encoding::Json, Some(m)) => match m.request().json_to_binary(&message) {
            Ok(b) => Bytes::from(b),
            Err(e) => return Rejection::Status(Status::invalid_argument(e.0)).into_unary_response(encoding),
        },
        _ => message,
    };
    if let Err(status) = adapter.check_decoded(&binary) {
        return Rejection::Status(status).into_unary_response(encoding);
    }
    let max = adapter.max_message_bytes;
    let mut call = adapter.invoker.start(setup, RequestMessages::One(binary), max).await;
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
            let compress = out.gzip && body.len() >= COMPRESS_MIN_BYTES;
            let body = if compress { Bytes::from(gzip::compress(&body)) } else { body };
            let mut resp = Response::new(Body::from(body));
            *resp.headers_mut() = headers;
            append_trailers(resp.headers_mut(), std::mem::take(status.metadata_mut()).into_headers());
            let headers = resp.headers_mut();
            headers.insert(CONTENT_TYPE, unary_content_type(encoding));
            if compress {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            if out.get {
                headers.append(VARY, HeaderValue::from_static("accept-encoding"));
            }
            resp
        }
        Err(status) => error_response(&status, &headers, encoding),
    }
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

fn is_identity(encoding: Option<&str>) -> bool {
    matches!(encoding, None | Some("identity"))
}

fn decode_body(raw: Bytes, encoding: Option<&str>, limit: usize) -> Result<Bytes, Status> {
    match encoding {
        None | Some("identity") => Ok(raw),
        Some("gzip") => gzip::decompress(&raw, limit).map(Bytes::from).map_err(decompress_status),
        Some(other) => {
            Err(Status::unimplemented(format!("unsupported content encoding \"{other}\"; use gzip or identity")))
        }
    }
}

fn unary_content_type(encoding: Encoding) -> HeaderValue {
    HeaderValue::from_static(match encoding {
        Encoding::Json => "application/json",
        Encoding::Proto => "application/proto",
    })
}
