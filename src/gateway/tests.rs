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
