//! Connect unary request bodies: read whole whatever their framing, refused past the limit.

mod common;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portway::Config;

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";

async fn send<B>(req: Request<B>) -> (StatusCode, serde_json::Value)
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(req).await.expect("request");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

/// A chunked (no content-length) body sent as `chunks` separate frames.
fn chunked<C: Into<String>>(
    chunks: Vec<C>,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>>> {
    StreamBody::new(stream::iter(chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c.into()))))))
}

#[tokio::test]
async fn a_body_in_many_chunks_is_read_whole() {
    let server = common::start_interop(Config::default()).await;
    let req = Request::post(format!("{}{UNARY}", server.url()))
        .header("content-type", "application/json")
        .body(chunked(vec!["{\"response", "Size\"", ":", "5}"]))
        .expect("request");
    let (status, json) = send(req).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["payload"]["body"], "AAAAAAA=");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let mut config = Config::default();
    config.max_message_bytes = 32;
    let server = common::start_interop(config).await;
    let big = format!(r#"{{"responseSize":1,"payload":{{"body":"{}"}}}}"#, "A".repeat(64));

    // With a content-length: refused before the body is read.
    let req = Request::post(format!("{}{UNARY}", server.url()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(big)))
        .expect("request");
    let (status, json) = send(req).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert_eq!(json["code"], "resource_exhausted");

    // Chunked: the limit is on the decoded message (here 48 bytes of payload), whatever
    // the framing of its text.
    let req = Request::post(format!("{}{UNARY}", server.url()))
        .header("content-type", "application/json")
        .body(chunked(vec![
            "{\"responseSize\":1,",
            "\"payload\":{\"body\":\"",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}}",
        ]))
        .expect("request");
    let (status, json) = send(req).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert_eq!(json["code"], "resource_exhausted");

    // JSON text past its own bound (twice the limit plus 64 KiB) is refused unparsed, here
    // whitespace that would decode to nothing.
    let padded = format!("{{{}\"responseSize\":1}}", " ".repeat(70 * 1024));
    let req = Request::post(format!("{}{UNARY}", server.url()))
        .header("content-type", "application/json")
        .body(chunked(vec![padded]))
        .expect("request");
    let (status, json) = send(req).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert_eq!(json["code"], "resource_exhausted");

    // Within the limit, the same server answers.
    let req = Request::post(format!("{}{UNARY}", server.url()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"responseSize":1}"#)))
        .expect("request");
    let (status, json) = send(req).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}
