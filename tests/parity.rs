//! Parity: the same calls through every protocol give the same response messages, the same
//! metadata and the same status codes.
//!
//! Each protocol is a `ProtocolClient` in `common/protocols.rs` (native gRPC, gRPC-Web binary and text, Connect JSON
//! and proto, WebSocket JSON); a new protocol joins the comparison with one more
//! implementation in its `clients`.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::http::{self, Http, full, guard};
use common::protocols::{ECHO_INITIAL, ECHO_TRAILING, Native, Outcome, ProtocolClient as _, Rpc, clients, rpc};
use portway::Config;
use portway::pb::grpc::testing::{EchoStatus, Empty, Payload, SimpleRequest, SimpleResponse};
use tonic::Code;

/// Makes the call through every protocol and returns the outcomes, checking they agree;
/// `compare_messages: false` compares codes only (for errors the gateway itself raises,
/// whose wording may differ per protocol).
async fn same_everywhere(
    server: &common::TestServer,
    rpc: &Rpc,
    metadata: &[(&str, &str)],
    timeout: Option<Duration>,
    compare_messages: bool,
) -> Outcome {
    let clients = clients(server);
    let calls = clients.iter().map(|c| async move { (c.name(), guard(c.unary(rpc, metadata, timeout)).await) });
    let outcomes = futures_util::future::join_all(calls).await;
    let (first_name, first) = outcomes[0].clone();
    for (name, o) in &outcomes[1..] {
        if compare_messages {
            assert_eq!(o, &first, "{} differs between {first_name} and {name}", rpc.path);
        } else {
            assert_eq!(o.code, first.code, "{} code differs between {first_name} and {name}: {o:?}", rpc.path);
        }
    }
    first
}

fn echo() -> Vec<(&'static str, &'static str)> {
    vec![(ECHO_INITIAL, "parity-value"), (ECHO_TRAILING, "q6ur")]
}

fn unary(req: SimpleRequest) -> Rpc {
    rpc::<SimpleRequest, SimpleResponse>("/grpc.testing.TestService/UnaryCall", req)
}

#[tokio::test]
async fn successful_calls_agree() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let md = echo();
    let cases = vec![
        rpc::<Empty, Empty>("/grpc.testing.TestService/EmptyCall", Empty {}),
        unary(SimpleRequest::default()),
        unary(SimpleRequest { response_size: 10, fill_server_id: true, ..Default::default() }),
        unary(SimpleRequest {
            response_size: 100_000,
            payload: Some(Payload { r#type: 0, body: vec![9; 50_000] }),
            ..Default::default()
        }),
        rpc::<SimpleRequest, SimpleResponse>(
            "/grpc.testing.TestService/CacheableUnaryCall",
            SimpleRequest { response_size: 3, ..Default::default() },
        ),
    ];
    for case in &cases {
        let o = same_everywhere(&server, case, &md, None, true).await;
        assert_eq!(o.code, 0, "{}: {o:?}", case.path);
        assert!(o.response.is_some());
        assert_eq!(o.headers_echo.as_deref(), Some("parity-value"), "{}", case.path);
        assert_eq!(o.trailers_echo.as_deref(), Some(&[0xab, 0xab, 0xab][..]), "{}", case.path);
    }
    // Without metadata, none comes back.
    let o = same_everywhere(&server, &cases[1], &[], None, true).await;
    assert_eq!((o.headers_echo, o.trailers_echo), (None, None));
}

#[tokio::test]
async fn every_status_code_agrees() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let md = echo();
    for code in 1..=16 {
        let message = format!("status {code}: with spaces, % and ☺");
        let case = unary(SimpleRequest {
            response_status: Some(EchoStatus { code, message: message.clone() }),
            ..Default::default()
        });
        let o = same_everywhere(&server, &case, &md, None, true).await;
        assert_eq!(o.code, code);
        assert_eq!(o.message, message);
        assert_eq!(o.response, None);
        assert_eq!(o.trailers_echo.as_deref(), Some(&[0xab, 0xab, 0xab][..]), "code {code}");
    }
}

#[tokio::test]
async fn error_details_agree() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let case = unary(SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::DETAILS.to_vec() }),
        ..Default::default()
    });
    let o = same_everywhere(&server, &case, &[], None, true).await;
    assert_eq!(o.code, Code::NotFound as i32);
    assert_eq!(o.details, vec![("grpc.testing.Empty".to_string(), vec![0xde, 0xad, 0xbe, 0xef])]);
}

#[tokio::test]
async fn deadline_exceeded_agrees() {
    let (server, mut dropped) = common::start_scripted(Config::default()).await;
    let case = unary(SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::SLOW.to_vec() }),
        ..Default::default()
    });
    let o = same_everywhere(&server, &case, &[], Some(Duration::from_millis(200)), true).await;
    assert_eq!(o.code, Code::DeadlineExceeded as i32, "{o:?}");
    // Every protocol's call was cancelled on the server.
    for _ in clients(&server) {
        assert_eq!(guard(dropped.recv()).await, Some("unary_call"));
    }
}

#[tokio::test]
async fn unknown_methods_are_unimplemented_everywhere() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let empty = |path| rpc::<Empty, Empty>(path, Empty {});
    for case in [
        empty("/grpc.testing.TestService/UnimplementedCall"),
        empty("/grpc.testing.UnimplementedService/UnimplementedCall"),
        empty("/grpc.testing.TestService/NoSuchMethod"),
        empty("/no.such.Service/Method"),
    ] {
        let o = same_everywhere(&server, &case, &[], None, false).await;
        assert_eq!(o.code, Code::Unimplemented as i32, "{}", case.path);
    }
    // The service's own UNIMPLEMENTED keeps its message everywhere.
    let o = same_everywhere(&server, &empty("/grpc.testing.TestService/UnimplementedCall"), &[], None, true).await;
    assert_eq!(o.message, "UnimplementedCall is not implemented, on purpose");
}

#[tokio::test]
async fn raw_bodies_match_byte_for_byte() {
    // Beyond decoded equality: the binary protocols relay the service's bytes untouched.
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let case = unary(SimpleRequest { response_size: 7, fill_server_id: true, ..Default::default() });
    let native = Native { url: server.url() };
    let o = guard(native.unary(&case, &[], None)).await;
    let reply = http::send(
        Http::H2,
        http::request("POST", &format!("{}{}", server.url(), case.path))
            .header("content-type", "application/proto")
            .body(full(case.proto.clone()))
            .expect("request"),
    )
    .await;
    assert_eq!(o.response.as_deref(), Some(&reply.body[..]));
}

#[tokio::test]
async fn max_call_timeout_caps_calls_without_a_deadline() {
    let mut config = Config::default();
    config.max_call_timeout = Some(Duration::from_millis(200));
    let (server, mut dropped) = common::start_scripted(config).await;
    let slow = unary(SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::SLOW.to_vec() }),
        ..Default::default()
    });
    let o = same_everywhere(&server, &slow, &[], None, true).await;
    assert_eq!(o.code, Code::DeadlineExceeded as i32, "{o:?}");
    for _ in clients(&server) {
        assert_eq!(guard(dropped.recv()).await, Some("unary_call"));
    }
    // A longer deadline asked by the client is capped too.
    let o = same_everywhere(&server, &slow, &[], Some(Duration::from_secs(30)), true).await;
    assert_eq!(o.code, Code::DeadlineExceeded as i32, "{o:?}");
    // Fast calls are unaffected.
    let o = same_everywhere(&server, &unary(SimpleRequest::default()), &[], None, true).await;
    assert_eq!(o.code, 0);
}
