//! A handler that panics, on every protocol: the call ends with `INTERNAL` in the
//! protocol's own form, the connection's other calls go on, and the process keeps serving.
//! Two places: in the handler (before any response), and in a streaming response body
//! polled after the handler returned (the response has begun; the status comes in trailers).

use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{Payload, ResponseParameters, SimpleRequest, StreamingOutputCallRequest};
use prost::Message as _;
use serde_json::json;

use super::common::scripted::PANIC;
use super::grpc::{Case, Over, run_cases};
use super::h2mux::run_with;
use super::wire::{Read, Req, b64, env};
use super::ws_json::{ws_row, ws_run};
use super::{Row, TS, common, config, judge};

fn panicking_unary() -> Vec<u8> {
    SimpleRequest { payload: Some(Payload { body: PANIC.to_vec(), ..Default::default() }), ..Default::default() }
        .encode_to_vec()
}

/// Three responses asked for; the stream panics when the second is due.
fn panicking_stream() -> Vec<u8> {
    StreamingOutputCallRequest {
        payload: Some(Payload { body: PANIC.to_vec(), ..Default::default() }),
        response_parameters: vec![ResponseParameters { size: 1, ..Default::default() }; 3],
        ..Default::default()
    }
    .encode_to_vec()
}

const PANIC_JSON: &str = r#"{"payload":{"body":"cGFuaWM="}}"#;
const PANIC_STREAM_JSON: &str =
    r#"{"payload":{"body":"cGFuaWM="},"responseParameters":[{"size":1},{"size":1},{"size":1}]}"#;

/// How a native gRPC stream whose body panics ends.
async fn native_stream(addr: std::net::SocketAddr) -> String {
    let req = Req::post(format!("{TS}/StreamingOutputCall"), "application/grpc", env(0, &panicking_stream()));
    // The response had begun (headers sent) when the body panicked: the status comes in
    // trailers. Messages the service produced but tonic had not flushed yet are lost with
    // the panicking body.
    run_with(addr, &req, |resp| {
        let shape = if resp.trailers.is_empty() { "trailers-only" } else { "headers, then trailers" };
        format!("{shape}, {}", super::wire::outcome(Read::Grpc, resp))
    })
    .await
}

#[tokio::test]
async fn a_panicking_handler_ends_only_its_own_call() {
    let (server, _dropped) = common::start_scripted(config()).await;
    let addr = server.addr;
    let unary = format!("{TS}/UnaryCall");
    let out = format!("{TS}/StreamingOutputCall");
    let case = |name: &str, read, req, want, over| Case { name: name.to_string(), read, req, want, over };
    let web_stream = env(0, &panicking_stream());
    let cases = vec![
        case(
            "panic/grpc-unary",
            Read::Grpc,
            Req::post(&unary, "application/grpc", env(0, &panicking_unary())),
            "grpc 13",
            Over::H2,
        ),
        case(
            "panic/grpc-web-unary",
            Read::GrpcWeb,
            Req::post(&unary, "application/grpc-web+proto", env(0, &panicking_unary())),
            "grpc 13",
            Over::Both,
        ),
        case(
            "panic/grpc-web-text-stream",
            Read::GrpcWebText,
            Req::post(&out, "application/grpc-web-text", b64(&web_stream)),
            "grpc 13",
            Over::Both,
        ),
        case(
            "panic/connect-json-unary",
            Read::Connect,
            Req::post(&unary, "application/json", PANIC_JSON),
            "connect 500 internal",
            Over::Both,
        ),
        case(
            "panic/connect-proto-unary",
            Read::Connect,
            Req::post(&unary, "application/proto", panicking_unary()),
            "connect 500 internal",
            Over::Both,
        ),
        case(
            "panic/connect-stream",
            Read::ConnectStream,
            Req::post(&out, "application/connect+json", env(0, PANIC_STREAM_JSON.as_bytes())),
            "end internal",
            Over::Both,
        ),
    ];
    let mut rows = run_cases(addr, cases).await;
    rows.push(Row {
        name: "panic/grpc-stream h2".into(),
        want: "headers, then trailers, grpc 13".into(),
        got: native_stream(addr).await,
    });
    let ws_unary = json!({"type":"open","id":2,"method":unary,"message":{"payload":{"body":"cGFuaWM="}},"end":true});
    let ws_stream = format!(r#"{{"type":"open","id":2,"method":"{out}","message":{PANIC_STREAM_JSON},"end":true}}"#);
    for (name, frame) in [("panic/websocket-unary", ws_unary.to_string()), ("panic/websocket-stream", ws_stream)] {
        let r = ws_row(name, frame, Some(2), "status internal");
        rows.push(Row { name: name.into(), want: "status internal".into(), got: ws_run(addr, &r).await });
    }
    judge("panic", &rows);

    // The process still serves, on a new connection.
    let mut client = TestServiceClient::new(server.channel().await);
    let reply = client
        .unary_call(SimpleRequest { response_size: 3, ..Default::default() })
        .await
        .expect("a call after the panics");
    assert_eq!(reply.into_inner().payload.map(|p| p.body.len()), Some(3));
}
