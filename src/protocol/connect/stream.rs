//! Connect streaming calls: `application/connect+json` / `+proto` envelopes both ways,
//! ending with the end-of-stream envelope; always HTTP 200.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt as _;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tonic::{Code, Status};

use super::super::Encoding;
use super::common::{
    Adapter, Rejection, STREAM_ACCEPT_ENCODING, STREAM_ENCODING, check_protocol_version, check_text, connect_timeout,
    decompress_status, frame_status, header_str, resolve, response_gzip, too_large,
};
use crate::transcode::compression::COMPRESS_MIN_BYTES;
use crate::transcode::framing::{self, Decoder, FLAG_COMPRESSED, FLAG_END_STREAM, gzip};
use crate::transcode::limits;
use crate::transcode::status::ErrorBody;
use crate::transcode::{CallEvent, CallSetup, GrpcService, MethodDescriptor, RequestMessages, RpcKind};

/// Serves a Connect streaming request (`application/connect+json` or `+proto`).
pub(super) async fn stream<S: GrpcService>(
    adapter: &Adapter<S>,
    req: Request<Body>,
    encoding: Encoding,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let checked = (|| {
        check_protocol_version(&parts.headers)?;
        let m = resolve(&adapter.invoker, parts.uri.path(), encoding)?;
        if let Some(m) = &m
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
        Ok((m, connect_timeout(&parts.headers)?, compressed))
    })();
    let (method, timeout, compressed) = match checked {
        Ok(v) => v,
        Err(Rejection::Status(status)) => return stream_response(encoding, HeaderMap::new(), end_only(&status)),
        Err(rejection) => return rejection.into_unary_response(encoding),
    };
    let compress =
        response_gzip(header_str(&parts.headers, STREAM_ACCEPT_ENCODING), header_str(&parts.headers, STREAM_ENCODING));

    let max = adapter.max_message_bytes;
    let client_streams = method.as_ref().is_none_or(|m| m.kind().client_streams());
    let text_limit = adapter.text_limit(encoding);
    let reader = RequestReader { method: method.clone(), encoding, compressed, max, text_limit };
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
    let mut call = adapter.invoker.start(setup, messages, max).await;
    let mut headers = call.take_headers();
    if compress {
        headers.insert(STREAM_ENCODING, HeaderValue::from_static("gzip"));
    }

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
                    yield Ok(if compress && payload.len() >= COMPRESS_MIN_BYTES {
                        framing::encode(FLAG_COMPRESSED, &gzip::compress(&payload))
                    } else {
                        framing::encode(0, &payload)
                    });
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
    /// The message limit, on decoded (binary) messages.
    max: usize,
    /// The bound on a message's text before decoding (`Adapter::text_limit`).
    text_limit: usize,
}

impl RequestReader {
    fn message(&self, env: framing::Envelope) -> Result<Bytes, Status> {
        // Where every Connect request envelope is read: the protocol defines two flag bits.
        let unknown = env.flags & !(FLAG_COMPRESSED | FLAG_END_STREAM);
        if unknown != 0 {
            return Err(Status::invalid_argument(format!(
                "an envelope has the flags {:#04x}, with bits the Connect protocol does not define ({unknown:#04x})",
                env.flags
            )));
        }
        if env.flags & FLAG_END_STREAM != 0 {
            return Err(Status::invalid_argument("clients may not send an end-of-stream envelope"));
        }
        let payload = if env.flags & FLAG_COMPRESSED != 0 {
            if !self.compressed {
                return Err(Status::internal("compressed message without connect-content-encoding"));
            }
            Bytes::from(gzip::decompress(&env.payload, self.text_limit).map_err(decompress_status)?)
        } else {
            check_text(&env.payload, self.text_limit)?;
            env.payload
        };
        let binary = match (self.encoding, &self.method) {
            (Encoding::Json, Some(m)) => {
                Bytes::from(m.request().json_to_binary(&payload).map_err(|e| Status::invalid_argument(e.0))?)
            }
            _ => payload,
        };
        if binary.len() > self.max {
            return Err(too_large(binary.len(), self.max));
        }
        Ok(binary)
    }

    /// The envelope decoder: a compressed envelope may be a little longer than its text.
    fn decoder(&self) -> Decoder {
        Decoder::new(if self.compressed { limits::compressed(self.text_limit) } else { self.text_limit })
    }

    /// Reads exactly one message (server-streaming calls). Any other count is a request
    /// cardinality violation: `UNIMPLEMENTED`, as gRPC (`doc/statuscodes.md`) and the Connect
    /// implementations answer it.
    async fn read_one(&self, mut body: Body) -> Result<Bytes, Status> {
        let mut decoder = self.decoder();
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
        let mut decoder = self.decoder();
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
