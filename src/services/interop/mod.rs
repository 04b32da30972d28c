//! `grpc.testing.TestService`, written to the published gRPC interop test spec
//! (`doc/interop-test-descriptions.md` in the gRPC repository), so that standard interop
//! clients (and portway's own tests) can exercise every RPC kind, status codes, metadata
//! echo, payload sizes, response intervals and per-message compression.
//!
//! Sizes a client asks for are bounded by the message limit: a payload larger than it is
//! refused with `RESOURCE_EXHAUSTED` before anything is allocated, and streamed responses are
//! produced one at a time as the client reads them.

mod compression;
mod echo;

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use tonic::{Code, Status, Streaming};

pub use compression::{CallContext, PerMessageCompression};
pub use echo::EchoMetadata;

use crate::pb::grpc::testing::test_service_server::{TestService, TestServiceServer};
use crate::pb::grpc::testing::{
    BoolValue, EchoStatus, Empty, Payload, PayloadType, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};

/// The message limit the handlers assume when no [`CallContext`] tells them one (a
/// `TestService` served without [`PerMessageCompression`]): portway's default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// `HalfDuplexCall` holds the response parameters of every request until the client
/// half-closes; it holds at most this many.
pub const MAX_HALF_DUPLEX_RESPONSES: usize = 10_000;

/// What [`service`] returns: the handlers behind per-message compression and the metadata echo.
pub type InteropService = EchoMetadata<PerMessageCompression<TestServiceServer<Interop>>>;

/// The interop test service: echoes `x-grpc-test-echo-initial` as a response header and
/// `x-grpc-test-echo-trailing-bin` as a trailer, compresses per message as asked, and
/// bounds every message at `max_message_bytes` (decompressed).
pub fn service(max_message_bytes: usize) -> InteropService {
    // No tonic compression: PerMessageCompression decompresses requests and compresses the
    // responses the handlers ask for. No tonic encoding limit either: it would answer
    // OUT_OF_RANGE where the gateway's limit answers RESOURCE_EXHAUSTED, and the handlers
    // already refuse payloads over the limit.
    let server = TestServiceServer::new(Interop).max_decoding_message_size(max_message_bytes);
    EchoMetadata::new(PerMessageCompression::new(server, max_message_bytes))
}

/// The handlers. Stateless.
#[derive(Debug, Clone, Copy, Default)]
pub struct Interop;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The call's context, or one that knows only the default limit and compresses nothing.
fn context<T>(req: &tonic::Request<T>) -> Option<CallContext> {
    req.extensions().get::<CallContext>().cloned()
}

fn limit(ctx: Option<&CallContext>) -> usize {
    ctx.map_or(DEFAULT_MAX_MESSAGE_BYTES, |c| c.max_message_bytes)
}

fn payload(size: i32, limit: usize) -> Result<Option<Payload>, Status> {
    let size = usize::try_from(size).map_err(|_| Status::invalid_argument(format!("negative payload size {size}")))?;
    if size > limit {
        return Err(Status::resource_exhausted(format!(
            "a response payload of {size} bytes is larger than the message limit of {limit} bytes"
        )));
    }
    Ok(Some(Payload { r#type: PayloadType::Compressable as i32, body: vec![0u8; size] }))
}

fn requested_status(status: Option<&EchoStatus>) -> Option<Status> {
    let s = status?;
    (s.code != 0).then(|| Status::new(Code::from_i32(s.code), s.message.clone()))
}

fn wants(flag: Option<&BoolValue>) -> bool {
    flag.is_some_and(|b| b.value)
}

/// Takes the flag of the request message just read; `INVALID_ARGUMENT` if the client said it
/// would compress it and did not (the spec's `CompressedRequest` feature).
fn check_compressed(ctx: Option<&CallContext>, expect: Option<&BoolValue>) -> Result<(), Status> {
    let Some(ctx) = ctx else { return Ok(()) };
    let compressed = ctx.next_request_compressed();
    if wants(expect) && !compressed {
        return Err(Status::invalid_argument("expect_compressed is set, but the request message was not compressed"));
    }
    Ok(())
}

fn simple(req: &SimpleRequest, ctx: Option<&CallContext>) -> Result<SimpleResponse, Status> {
    check_compressed(ctx, req.expect_compressed.as_ref())?;
    if let Some(status) = requested_status(req.response_status.as_ref()) {
        return Err(status);
    }
    let response = SimpleResponse {
        payload: payload(req.response_size, limit(ctx))?,
        server_id: if req.fill_server_id { "portway".into() } else { String::new() },
        ..Default::default()
    };
    if let Some(ctx) = ctx {
        ctx.compress_next_response(wants(req.response_compressed.as_ref()));
    }
    Ok(response)
}

/// One streamed response for `p`, after its interval.
async fn respond(p: &ResponseParameters, ctx: Option<&CallContext>) -> Result<StreamingOutputCallResponse, Status> {
    if p.interval_us > 0 {
        tokio::time::sleep(Duration::from_micros(p.interval_us.unsigned_abs().into())).await;
    }
    let response = StreamingOutputCallResponse { payload: payload(p.size, limit(ctx))? };
    if let Some(ctx) = ctx {
        ctx.compress_next_response(wants(p.compressed.as_ref()));
    }
    Ok(response)
}

#[tonic::async_trait]
impl TestService for Interop {
    async fn empty_call(&self, req: tonic::Request<Empty>) -> Result<tonic::Response<Empty>, Status> {
        check_compressed(context(&req).as_ref(), None)?;
        Ok(tonic::Response::new(Empty {}))
    }

    async fn unary_call(&self, req: tonic::Request<SimpleRequest>) -> Result<tonic::Response<SimpleResponse>, Status> {
        let ctx = context(&req);
        simple(req.get_ref(), ctx.as_ref()).map(tonic::Response::new)
    }

    async fn cacheable_unary_call(
        &self,
        req: tonic::Request<SimpleRequest>,
    ) -> Result<tonic::Response<SimpleResponse>, Status> {
        let ctx = context(&req);
        let mut resp = tonic::Response::new(simple(req.get_ref(), ctx.as_ref())?);
        resp.metadata_mut().insert("cache-control", tonic::metadata::MetadataValue::from_static("max-age=60, public"));
        Ok(resp)
    }

    type StreamingOutputCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn streaming_output_call(
        &self,
        req: tonic::Request<StreamingOutputCallRequest>,
    ) -> Result<tonic::Response<Self::StreamingOutputCallStream>, Status> {
        let ctx = context(&req);
        check_compressed(ctx.as_ref(), None)?;
        let req = req.into_inner();
        let stream = async_stream::try_stream! {
            for p in &req.response_parameters {
                yield respond(p, ctx.as_ref()).await?;
            }
            if let Some(status) = requested_status(req.response_status.as_ref()) {
                Err(status)?;
            }
        };
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn streaming_input_call(
        &self,
        req: tonic::Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<tonic::Response<StreamingInputCallResponse>, Status> {
        let ctx = context(&req);
        let mut stream = req.into_inner();
        let mut total: usize = 0;
        while let Some(msg) = stream.message().await? {
            check_compressed(ctx.as_ref(), msg.expect_compressed.as_ref())?;
            total = total.saturating_add(msg.payload.map_or(0, |p| p.body.len()));
        }
        let aggregated_payload_size =
            i32::try_from(total).map_err(|_| Status::out_of_range("aggregated payload over 2 GiB"))?;
        Ok(tonic::Response::new(StreamingInputCallResponse { aggregated_payload_size }))
    }

    type FullDuplexCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn full_duplex_call(
        &self,
        req: tonic::Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<tonic::Response<Self::FullDuplexCallStream>, Status> {
        let ctx = context(&req);
        let mut input = req.into_inner();
        let stream = async_stream::try_stream! {
            while let Some(msg) = input.message().await? {
                check_compressed(ctx.as_ref(), None)?;
                if let Some(status) = requested_status(msg.response_status.as_ref()) {
                    Err(status)?;
                }
                for p in &msg.response_parameters {
                    yield respond(p, ctx.as_ref()).await?;
                }
            }
        };
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    type HalfDuplexCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn half_duplex_call(
        &self,
        req: tonic::Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<tonic::Response<Self::HalfDuplexCallStream>, Status> {
        let ctx = context(&req);
        let mut input = req.into_inner();
        // Only the response parameters wait for the half-close, not the request payloads;
        // the responses are produced as the client reads them.
        let mut params = Vec::new();
        let mut status = None;
        while let Some(msg) = input.message().await? {
            check_compressed(ctx.as_ref(), None)?;
            if status.is_some() {
                continue;
            }
            status = requested_status(msg.response_status.as_ref());
            if status.is_none() {
                params.extend(msg.response_parameters);
            }
            if params.len() > MAX_HALF_DUPLEX_RESPONSES {
                return Err(Status::resource_exhausted(format!(
                    "HalfDuplexCall holds at most {MAX_HALF_DUPLEX_RESPONSES} responses until the half-close"
                )));
            }
        }
        if let Some(status) = status {
            return Err(status);
        }
        let stream = async_stream::try_stream! {
            for p in &params {
                yield respond(p, ctx.as_ref()).await?;
            }
        };
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn unimplemented_call(&self, _: tonic::Request<Empty>) -> Result<tonic::Response<Empty>, Status> {
        Err(Status::unimplemented("UnimplementedCall is not implemented, on purpose"))
    }
}

#[cfg(test)]
mod tests;
