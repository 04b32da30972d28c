//! A `grpc.testing.TestService` of the tests' own, mounted like any user service: the
//! interop behaviour, plus what the interop service cannot do on request (a slow unary
//! call, errors with `grpc-status-details-bin`, a handler that panics) and a report when a
//! handler is dropped, which is how the tests see that a deadline really cancelled the work.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use portway::pb::grpc::testing::test_service_server::{TestService, TestServiceServer};
use portway::pb::grpc::testing::{
    Empty, SimpleRequest, SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use portway::services::interop::{EchoMetadata, Interop};
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::{Code, Request, Response, Status, Streaming};

/// `UnaryCall` payload body: wait a minute before answering (for deadline tests).
pub const SLOW: &[u8] = b"slow";
/// `UnaryCall` payload body: fail with `NOT_FOUND` and [`details`].
pub const DETAILS: &[u8] = b"details";
/// `UnaryCall` payload body: the handler panics. `StreamingOutputCall` payload body: the
/// response stream yields its first message, then panics (after the handler returned).
pub const PANIC: &[u8] = b"panic";

/// The `google.rpc.Status` the [`DETAILS`] call fails with.
pub fn details() -> portway::pb::google::rpc::Status {
    portway::pb::google::rpc::Status {
        code: Code::NotFound as i32,
        message: "no such thing".into(),
        details: vec![portway::protojson::Any {
            type_url: "type.googleapis.com/grpc.testing.Empty".into(),
            value: vec![0xde, 0xad, 0xbe, 0xef].into(),
        }],
    }
}

/// Reports on a channel when dropped, unless disarmed first.
struct DropReport(Option<(mpsc::UnboundedSender<&'static str>, &'static str)>);

impl DropReport {
    fn new(tx: &mpsc::UnboundedSender<&'static str>, what: &'static str) -> Self {
        Self(Some((tx.clone(), what)))
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for DropReport {
    fn drop(&mut self) {
        if let Some((tx, what)) = self.0.take() {
            let _ = tx.send(what);
        }
    }
}

/// See the module docs. `dropped` receives a method name whenever a slow unary handler or
/// a server stream is dropped before finishing.
#[derive(Clone)]
pub struct Scripted {
    dropped: mpsc::UnboundedSender<&'static str>,
}

impl Scripted {
    /// The service, wrapped in the interop metadata echo like the real one, and the
    /// receiver of its drop reports.
    pub fn service() -> (EchoMetadata<TestServiceServer<Scripted>>, mpsc::UnboundedReceiver<&'static str>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EchoMetadata::new(TestServiceServer::new(Scripted { dropped: tx })), rx)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TestService for Scripted {
    async fn empty_call(&self, req: Request<Empty>) -> Result<Response<Empty>, Status> {
        Interop.empty_call(req).await
    }

    async fn unary_call(&self, req: Request<SimpleRequest>) -> Result<Response<SimpleResponse>, Status> {
        let body = req.get_ref().payload.as_ref().map(|p| p.body.clone()).unwrap_or_default();
        if body == SLOW {
            let report = DropReport::new(&self.dropped, "unary_call");
            tokio::time::sleep(Duration::from_secs(60)).await;
            report.disarm(); // finished: not a cancellation
        }
        if body == PANIC {
            panic!("the scripted handler panics, as asked");
        }
        if body == DETAILS {
            let d = details();
            return Err(Status::with_details(Code::NotFound, d.message.clone(), d.encode_to_vec().into()));
        }
        Interop.unary_call(req).await
    }

    async fn cacheable_unary_call(&self, req: Request<SimpleRequest>) -> Result<Response<SimpleResponse>, Status> {
        Interop.cacheable_unary_call(req).await
    }

    type StreamingOutputCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn streaming_output_call(
        &self,
        req: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<Self::StreamingOutputCallStream>, Status> {
        let panics = req.get_ref().payload.as_ref().is_some_and(|p| p.body == PANIC);
        let inner = Interop.streaming_output_call(req).await?.into_inner();
        let report = DropReport::new(&self.dropped, "streaming_output_call");
        if panics {
            let mut sent = false;
            let stream = inner.map(move |item| {
                let _ = &report;
                assert!(!sent, "the scripted stream panics after its first message, as asked");
                sent = true;
                item
            });
            return Ok(Response::new(Box::pin(stream)));
        }
        // The stream owns the report: dropping the stream (cancelling the call) sends it.
        let stream = inner.map(move |item| {
            let _ = &report;
            item
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn streaming_input_call(
        &self,
        req: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        Interop.streaming_input_call(req).await
    }

    type FullDuplexCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn full_duplex_call(
        &self,
        req: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::FullDuplexCallStream>, Status> {
        Interop.full_duplex_call(req).await
    }

    type HalfDuplexCallStream = BoxStream<StreamingOutputCallResponse>;

    async fn half_duplex_call(
        &self,
        req: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::HalfDuplexCallStream>, Status> {
        Interop.half_duplex_call(req).await
    }

    async fn unimplemented_call(&self, req: Request<Empty>) -> Result<Response<Empty>, Status> {
        Interop.unimplemented_call(req).await
    }
}
