//! `grpc.testing.TestService`, written to the published gRPC interop test spec, so that
//! standard interop clients (and portway's own tests) can exercise every RPC kind,
//! status codes, metadata echo, payload sizes and response intervals.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::Frame;
use pin_project_lite::pin_project;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Status, Streaming};

use crate::pb::grpc::testing::test_service_server::{TestService, TestServiceServer};
use crate::pb::grpc::testing::{
    EchoStatus, Empty, Payload, PayloadType, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// The interop test service, wrapped so that it echoes `x-grpc-test-echo-initial` as a
/// response header and `x-grpc-test-echo-trailing-bin` as a trailer.
pub fn service(max_message_bytes: usize) -> EchoMetadata<TestServiceServer<Interop>> {
    let server = TestServiceServer::new(Interop)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    EchoMetadata { inner: server }
}

/// The handlers. Stateless.
#[derive(Debug, Clone, Copy, Default)]
pub struct Interop;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn payload(size: i32) -> Result<Option<Payload>, Status> {
    let size = usize::try_from(size).map_err(|_| Status::invalid_argument(format!("negative payload size {size}")))?;
    Ok(Some(Payload { r#type: PayloadType::Compressable as i32, body: vec![0u8; size] }))
}

fn requested_status(status: Option<&EchoStatus>) -> Option<Status> {
    let s = status?;
    (s.code != 0).then(|| Status::new(Code::from_i32(s.code), s.message.clone()))
}

fn simple(req: SimpleRequest) -> Result<SimpleResponse, Status> {
    if let Some(status) = requested_status(req.response_status.as_ref()) {
        return Err(status);
    }
    Ok(SimpleResponse {
        payload: payload(req.response_size)?,
        server_id: if req.fill_server_id { "portway".into() } else { String::new() },
        ..Default::default()
    })
}

fn respond(params: &[ResponseParameters]) -> Result<Vec<StreamingOutputCallResponse>, Status> {
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        out.push(StreamingOutputCallResponse { payload: payload(p.size)? });
    }
    Ok(out)
}

fn interval(p: &ResponseParameters) -> Option<Duration> {
    (p.interval_us > 0).then(|| Duration::from_micros(p.interval_us.unsigned_abs().into()))
}

#[tonic::async_trait]
impl TestService for Interop {
    async fn empty_call(&self, _: tonic::Request<Empty>) -> Result<tonic::Response<Empty>, Status> {
        Ok(tonic::Response::new(Empty {}))
    }

    async fn unary_call(&self, req: tonic::Request<SimpleRequest>) -> Result<tonic::Response<SimpleResponse>, Status> {
        simple(req.into_inner()).map(tonic::Response::new)
    }

    async fn cacheable_unary_call(
        &self,
        req: tonic::Request<SimpleRequest>,
    ) -> Result<tonic::Response<SimpleResponse>, Status> {
        let mut resp = tonic::Response::new(simple(req.into_inner())?);
        resp.metadata_mut().insert("cache-control", tonic::metadata::MetadataValue::from_static("max-age=60, public"));
        Ok(resp)
    }

    type StreamingOutputCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn streaming_output_call(
        &self,
        req: tonic::Request<StreamingOutputCallRequest>,
    ) -> Result<tonic::Response<Self::StreamingOutputCallStream>, Status> {
        let req = req.into_inner();
        let stream = async_stream::try_stream! {
            for p in &req.response_parameters {
                if let Some(d) = interval(p) {
                    tokio::time::sleep(d).await;
                }
                yield StreamingOutputCallResponse { payload: payload(p.size)? };
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
        let mut stream = req.into_inner();
        let mut total: usize = 0;
        while let Some(msg) = stream.message().await? {
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
        let mut input = req.into_inner();
        let stream = async_stream::try_stream! {
            while let Some(msg) = input.message().await? {
                if let Some(status) = requested_status(msg.response_status.as_ref()) {
                    Err(status)?;
                }
                for p in &msg.response_parameters {
                    if let Some(d) = interval(p) {
                        tokio::time::sleep(d).await;
                    }
                    yield StreamingOutputCallResponse { payload: payload(p.size)? };
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
        let mut input = req.into_inner();
        let mut buffered = Vec::new();
        while let Some(msg) = input.message().await? {
            buffered.push(msg);
        }
        let mut out = Vec::new();
        for msg in &buffered {
            if let Some(status) = requested_status(msg.response_status.as_ref()) {
                return Err(status);
            }
            out.extend(respond(&msg.response_parameters)?);
        }
        Ok(tonic::Response::new(Box::pin(futures_util::stream::iter(out.into_iter().map(Ok)))))
    }

    async fn unimplemented_call(&self, _: tonic::Request<Empty>) -> Result<tonic::Response<Empty>, Status> {
        Err(Status::unimplemented("UnimplementedCall is not implemented, on purpose"))
    }
}

/// Echoes the interop metadata. tonic lets a handler set response headers but not
/// trailers on success, so the trailing echo is added to the response body's trailers here.
#[derive(Debug, Clone)]
pub struct EchoMetadata<S> {
    inner: S,
}

impl<S> EchoMetadata<S> {
    /// Wraps any `TestService` server (or any gRPC service) so that it echoes the interop
    /// metadata; lets a program host its own `TestService` implementation and still pass
    /// the interop metadata tests.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for EchoMetadata<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<Request<Body>> for EchoMetadata<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let initial = req.headers().get(ECHO_INITIAL).cloned();
        let trailing = req.headers().get(ECHO_TRAILING).cloned();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let Ok(mut resp) = fut.await;
            if let Some(v) = initial {
                resp.headers_mut().insert(HeaderName::from_static(ECHO_INITIAL), v);
            }
            let Some(trailing) = trailing else { return Ok(resp) };
            if resp.headers().contains_key("grpc-status") {
                // Trailers-only response: the headers are the trailers.
                resp.headers_mut().insert(HeaderName::from_static(ECHO_TRAILING), trailing);
                return Ok(resp);
            }
            Ok(resp.map(|body| Body::new(AddTrailer { inner: body, value: Some(trailing) })))
        })
    }
}

pin_project! {
    struct AddTrailer {
        #[pin]
        inner: Body,
        value: Option<HeaderValue>,
    }
}

impl http_body::Body for AddTrailer {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        match futures_util::ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    if let Some(v) = this.value.take() {
                        trailers.insert(HeaderName::from_static(ECHO_TRAILING), v);
                    }
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            }))),
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(this.value.take().map(|v| {
                let mut trailers = HeaderMap::new();
                trailers.insert(HeaderName::from_static(ECHO_TRAILING), v);
                Ok(Frame::trailers(trailers))
            })),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.value.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
