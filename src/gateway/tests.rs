//! The gateway on a stub service: the protocol marker, layers, dispatch.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::*;
use crate::testing::Stub;

fn json_post(path: &str) -> Request<Body> {
    Request::post(path).header("content-type", "application/json").body(Body::from("{}")).unwrap()
}

/// Layers see which protocol a request came in on; the service never does.
#[tokio::test]
async fn layers_see_the_protocol_and_the_service_does_not() {
    let stub = Stub::default();
    let layer_saw: Arc<Mutex<Vec<Option<Protocol>>>> = Arc::default();
    let record = layer_saw.clone();
    let gateway = Gateway::builder(stub.clone())
        .layer(tower::util::MapRequestLayer::new(move |req: Request<tonic::body::Body>| {
            record.lock().unwrap().push(req.extensions().get::<Protocol>().copied());
            req
        }))
        .build();
    let resp = gateway.clone().oneshot(json_post("/grpc.testing.TestService/UnaryCall")).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    let grpc = Request::post("/grpc.testing.TestService/UnaryCall")
        .header("content-type", "application/grpc")
        .body(Body::from(crate::transcode::framing::encode(0, &[])))
        .unwrap();
    let resp = gateway.oneshot(grpc).await.unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    assert_eq!(
        *layer_saw.lock().unwrap(),
        [Some(Protocol::ConnectUnary(crate::protocol::Encoding::Json)), Some(Protocol::Grpc)]
    );
    assert!(stub.seen().iter().all(|s| s.protocol.is_none()), "{:?}", stub.seen());
    assert_eq!(stub.seen().len(), 2);
}

#[tokio::test]
async fn every_protocol_reaches_its_adapter() {
    let stub = Stub::default();
    let gateway = Gateway::builder(stub.clone()).build();
    let health = gateway.clone().oneshot(Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(health.status(), http::StatusCode::OK);
    assert_eq!(health.into_body().collect().await.unwrap().to_bytes(), "SERVING\n");
    let media = Request::post("/a.B/C").header("content-type", "text/plain").body(Body::empty()).unwrap();
    let resp = gateway.clone().oneshot(media).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(resp.headers().contains_key("accept-post"));
    let upgrade = Request::post("/ws").header("upgrade", "websocket").body(Body::empty()).unwrap();
    let resp = gateway.oneshot(upgrade).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::METHOD_NOT_ALLOWED, "the handshake's own answer");
    let paths: Vec<String> = stub.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/grpc.health.v1.Health/Check"]);
}

/// A shared layer sees the protocol marker (the service still does not), runs outside the
/// buffered layers, and a stack with only shared layers has no buffer: it builds outside a
/// Tokio runtime, where a buffer's worker task could not be spawned.
#[test]
fn shared_layers_see_the_protocol_and_skip_the_buffer() {
    let stub = Stub::default();
    type Seen = Vec<(&'static str, Option<Protocol>)>;
    let saw: Arc<Mutex<Seen>> = Arc::default();
    let record = |name: &'static str| {
        let saw = saw.clone();
        tower::util::MapRequestLayer::new(move |req: Request<tonic::body::Body>| {
            saw.lock().unwrap().push((name, req.extensions().get::<Protocol>().copied()));
            req
        })
    };
    // Built here, with no runtime.
    let gateway = Gateway::builder(stub.clone()).shared_layer(record("outer")).shared_layer(record("inner")).build();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let resp = gateway.oneshot(json_post("/grpc.testing.TestService/UnaryCall")).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
    });
    let connect = Some(Protocol::ConnectUnary(crate::protocol::Encoding::Json));
    assert_eq!(*saw.lock().unwrap(), [("outer", connect), ("inner", connect)]);
    assert!(stub.seen().iter().all(|s| s.protocol.is_none()), "{:?}", stub.seen());

    // With buffered layers as well, the shared ones come first, whatever the order of adding.
    saw.lock().unwrap().clear();
    runtime.block_on(async {
        let gateway = Gateway::builder(stub.clone()).layer(record("buffered")).shared_layer(record("shared")).build();
        let resp = gateway.oneshot(json_post("/grpc.testing.TestService/UnaryCall")).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
    });
    assert_eq!(*saw.lock().unwrap(), [("shared", connect), ("buffered", connect)]);
}

/// A panic in a shared layer is `INTERNAL` for that call, and the next call is served.
#[tokio::test]
async fn a_panic_in_a_shared_layer_is_internal() {
    let stub = Stub::default();
    let gateway = Gateway::builder(stub.clone())
        .shared_layer(tower::util::MapRequestLayer::new(|req: Request<tonic::body::Body>| {
            assert!(req.headers().get("x-panic").is_none(), "asked to panic");
            req
        }))
        .build();
    let mut bad = json_post("/grpc.testing.TestService/UnaryCall");
    bad.headers_mut().insert("x-panic", http::HeaderValue::from_static("1"));
    let resp = gateway.clone().oneshot(bad).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::INTERNAL_SERVER_ERROR, "Connect's form of INTERNAL");
    let resp = gateway.oneshot(json_post("/grpc.testing.TestService/UnaryCall")).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
}
