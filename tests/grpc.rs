//! Native gRPC through the gateway: the generated tonic client (and, where a test is about
//! the wire, a raw hyper HTTP/2 request) against a real gateway on a real socket.

mod common;

use std::time::Duration;

use common::http::{self, Http, Reply, full, guard, parse_frames};
use portway::Config;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::unimplemented_service_client::UnimplementedServiceClient;
use portway::pb::grpc::testing::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use prost::Message as _;
use tokio_stream::StreamExt as _;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{BinaryMetadataValue, MetadataValue};
use tonic::{Code, Request};

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";

fn payload(len: usize) -> Option<Payload> {
    Some(Payload { r#type: 0, body: vec![7u8; len] })
}

fn params(sizes: &[i32]) -> Vec<ResponseParameters> {
    sizes.iter().map(|&size| ResponseParameters { size, ..Default::default() }).collect()
}

fn sizes(msgs: &[StreamingOutputCallResponse]) -> Vec<usize> {
    msgs.iter().map(|m| m.payload.as_ref().map_or(0, |p| p.body.len())).collect()
}

/// A native gRPC request over a raw HTTP/2 connection (hyper), for tests about the wire.
async fn raw_grpc(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Reply {
    let mut req = http::request("POST", url).header("content-type", "application/grpc").header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    http::send(Http::H2, req.body(full(body)).expect("request")).await
}

/// `grpc-status` from the trailers, or from the headers of a trailers-only response.
fn grpc_status(reply: &Reply) -> i32 {
    let v = reply
        .trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| reply.headers.get("grpc-status"))
        .unwrap_or_else(|| panic!("no grpc-status: {reply:?}"));
    v.to_str().expect("ascii").parse().expect("number")
}

#[tokio::test]
async fn empty_and_unary_calls_with_payload_sizes() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    guard(client.empty_call(Empty {})).await.expect("EmptyCall");
    for (req_size, resp_size) in [(0, 0), (1, 1), (271_828, 314_159), (5, 65_536)] {
        let resp = guard(client.unary_call(SimpleRequest {
            response_size: resp_size,
            payload: payload(req_size),
            fill_server_id: true,
            ..Default::default()
        }))
        .await
        .expect("UnaryCall")
        .into_inner();
        assert_eq!(resp.payload.map(|p| p.body.len()), Some(resp_size as usize));
        assert_eq!(resp.server_id, "portway");
    }
}

#[tokio::test]
async fn server_streaming_sends_every_requested_size_in_order() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let want = [31_415, 9, 2_653, 58_979];
    let mut stream = guard(client.streaming_output_call(StreamingOutputCallRequest {
        response_parameters: params(&want),
        ..Default::default()
    }))
    .await
    .expect("StreamingOutputCall")
    .into_inner();
    let mut got = Vec::new();
    while let Some(msg) = guard(stream.message()).await.expect("message") {
        got.push(msg);
    }
    assert_eq!(sizes(&got), want.map(|s| s as usize));
}

#[tokio::test]
async fn client_streaming_aggregates_sizes() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let reqs: Vec<_> = [27_182, 8, 1_828, 45_904]
        .iter()
        .map(|&n| StreamingInputCallRequest { payload: payload(n), ..Default::default() })
        .collect();
    let resp = guard(client.streaming_input_call(tokio_stream::iter(reqs))).await.expect("StreamingInputCall");
    assert_eq!(resp.into_inner().aggregated_payload_size, 74_922);
}

#[tokio::test]
async fn full_duplex_ping_pong() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut responses = guard(client.full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .expect("FullDuplexCall")
        .into_inner();
    // Each response must arrive before the next request is sent: a real ping-pong.
    for size in [31_415, 9, 2_653, 58_979] {
        tx.send(StreamingOutputCallRequest { response_parameters: params(&[size]), ..Default::default() })
            .await
            .expect("send");
        let msg = guard(responses.message()).await.expect("message").expect("a response per request");
        assert_eq!(sizes(&[msg]), [size as usize]);
    }
    drop(tx);
    assert!(guard(responses.message()).await.expect("clean end").is_none());
}

#[tokio::test]
async fn half_duplex_answers_after_the_requests_end() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let reqs = vec![
        StreamingOutputCallRequest { response_parameters: params(&[1, 2]), ..Default::default() },
        StreamingOutputCallRequest { response_parameters: params(&[3]), ..Default::default() },
    ];
    let mut stream =
        guard(client.half_duplex_call(tokio_stream::iter(reqs))).await.expect("HalfDuplexCall").into_inner();
    let mut got = Vec::new();
    while let Some(m) = guard(stream.message()).await.expect("message") {
        got.push(m);
    }
    assert_eq!(sizes(&got), [1, 2, 3]);
}

#[tokio::test]
async fn gzip_both_ways_with_the_tonic_client() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let resp = guard(client.unary_call(SimpleRequest {
        response_size: 100_000,
        payload: payload(100_000),
        ..Default::default()
    }))
    .await
    .expect("compressed UnaryCall");
    assert_eq!(resp.metadata().get("grpc-encoding").map(|v| v.to_str().unwrap()), Some("gzip"));
    assert_eq!(resp.into_inner().payload.map(|p| p.body.len()), Some(100_000));

    let reqs: Vec<_> =
        (0..3).map(|_| StreamingInputCallRequest { payload: payload(50_000), ..Default::default() }).collect();
    let agg = guard(client.streaming_input_call(tokio_stream::iter(reqs))).await.expect("compressed stream");
    assert_eq!(agg.into_inner().aggregated_payload_size, 150_000);
}

#[tokio::test]
async fn gzip_on_the_wire() {
    let server = common::start_interop(Config::default()).await;
    let url = format!("{}{UNARY}", server.url());
    let request = SimpleRequest {
        response_size: 20_000,
        payload: payload(20_000),
        response_compressed: Some(portway::pb::grpc::testing::BoolValue { value: true }),
        ..Default::default()
    };

    // A compressed request (flag 1, grpc-encoding: gzip) asking for a compressed response.
    let compressed = http::gzip(&request.encode_to_vec());
    let reply = guard(raw_grpc(
        &url,
        http::frame(1, &compressed),
        &[("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")],
    ))
    .await;
    assert_eq!(grpc_status(&reply), 0, "{reply:?}");
    assert_eq!(reply.header("grpc-encoding"), Some("gzip"), "the response must be compressed");
    let frames = parse_frames(&reply.body);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, 1, "compressed flag on the response message");
    assert!(frames[0].1.len() < 1_000, "20,000 zero-ish bytes compress well: {}", frames[0].1.len());
    let resp = SimpleResponse::decode(&http::gunzip(&frames[0].1)[..]).expect("a SimpleResponse");
    assert_eq!(resp.payload.map(|p| p.body.len()), Some(20_000));

    // Without grpc-accept-encoding the response is not compressed.
    let plain = guard(raw_grpc(&url, http::frame(0, &request.encode_to_vec()), &[])).await;
    assert_eq!(grpc_status(&plain), 0);
    assert_eq!(parse_frames(&plain.body)[0].0, 0);
}

#[tokio::test]
async fn deadline_ends_a_stream_and_cancels_its_handler() {
    let (server, mut dropped) = common::start_scripted(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let mut req = Request::new(StreamingOutputCallRequest {
        response_parameters: vec![
            ResponseParameters { size: 1, ..Default::default() },
            ResponseParameters { size: 2, interval_us: 30_000_000, ..Default::default() },
        ],
        ..Default::default()
    });
    req.set_timeout(Duration::from_millis(300));
    let mut stream = guard(client.streaming_output_call(req)).await.expect("stream starts").into_inner();
    let first = guard(stream.message()).await.expect("first message").expect("one");
    assert_eq!(sizes(&[first]), [1]);
    let err = guard(stream.message()).await.expect_err("the deadline passes before the second message");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_eq!(guard(dropped.recv()).await, Some("streaming_output_call"), "the handler must be dropped");
}

#[tokio::test]
async fn deadline_on_a_slow_unary_call_cancels_its_handler() {
    let (server, mut dropped) = common::start_scripted(Config::default()).await;
    let slow = SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::SLOW.to_vec() }),
        ..Default::default()
    };
    // A raw request: tonic's channel would also time out on the client side and say CANCELLED.
    let reply = guard(raw_grpc(
        &format!("{}{UNARY}", server.url()),
        http::frame(0, &slow.encode_to_vec()),
        &[("grpc-timeout", "200m")],
    ))
    .await;
    assert_eq!(grpc_status(&reply), Code::DeadlineExceeded as i32, "{reply:?}");
    assert_eq!(guard(dropped.recv()).await, Some("unary_call"));
}

#[tokio::test]
async fn malformed_grpc_timeout_is_internal() {
    let server = common::start_interop(Config::default()).await;
    let reply = guard(raw_grpc(
        &format!("{}{UNARY}", server.url()),
        http::frame(0, &SimpleRequest::default().encode_to_vec()),
        &[("grpc-timeout", "soon")],
    ))
    .await;
    // gRPC libraries never answer INVALID_ARGUMENT themselves; grpc-go says INTERNAL.
    assert_eq!(grpc_status(&reply), Code::Internal as i32, "{reply:?}");
}

const TRAILING: [u8; 3] = [0xab, 0xab, 0xab];

fn with_metadata<T>(mut req: Request<T>) -> Request<T> {
    req.metadata_mut().insert("x-grpc-test-echo-initial", MetadataValue::from_static("test_initial_metadata_value"));
    req.metadata_mut().insert_bin("x-grpc-test-echo-trailing-bin", BinaryMetadataValue::from_bytes(&TRAILING));
    req
}

#[tokio::test]
async fn custom_metadata_is_echoed_as_headers_and_trailers() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let trailing = TRAILING;

    // Streaming: headers and trailers are kept apart, so each must be where it belongs.
    let req = with_metadata(Request::new(tokio_stream::iter(vec![StreamingOutputCallRequest {
        response_parameters: params(&[3]),
        ..Default::default()
    }])));
    let resp = guard(client.full_duplex_call(req)).await.expect("FullDuplexCall");
    assert_eq!(resp.metadata().get("x-grpc-test-echo-initial").unwrap(), "test_initial_metadata_value");
    assert!(resp.metadata().get_bin("x-grpc-test-echo-trailing-bin").is_none(), "trailing echo sent as a header");
    let mut stream = resp.into_inner();
    while guard(stream.message()).await.expect("message").is_some() {}
    let trailers = guard(stream.trailers()).await.expect("trailers").expect("some trailers");
    assert_eq!(trailers.get_bin("x-grpc-test-echo-trailing-bin").unwrap().to_bytes().unwrap(), &trailing[..]);

    // Unary success (tonic merges trailers into the response metadata).
    let resp = guard(client.unary_call(with_metadata(Request::new(SimpleRequest::default())))).await.expect("ok");
    assert_eq!(resp.metadata().get("x-grpc-test-echo-initial").unwrap(), "test_initial_metadata_value");
    assert_eq!(resp.metadata().get_bin("x-grpc-test-echo-trailing-bin").unwrap().to_bytes().unwrap(), &trailing[..]);

    // Unary error: the metadata rides on the status.
    let failing = SimpleRequest {
        response_status: Some(EchoStatus { code: 2, message: "test status message".into() }),
        ..Default::default()
    };
    let status = guard(client.unary_call(with_metadata(Request::new(failing)))).await.expect_err("fails");
    assert_eq!(status.code(), Code::Unknown);
    assert_eq!(status.message(), "test status message");
    assert_eq!(status.metadata().get("x-grpc-test-echo-initial").unwrap(), "test_initial_metadata_value");
    assert_eq!(status.metadata().get_bin("x-grpc-test-echo-trailing-bin").unwrap().to_bytes().unwrap(), &trailing[..]);
}

#[tokio::test]
async fn special_characters_in_status_messages_survive() {
    let server = common::start_interop(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
    let status = guard(client.unary_call(SimpleRequest {
        response_status: Some(EchoStatus { code: 2, message: message.into() }),
        ..Default::default()
    }))
    .await
    .expect_err("fails");
    assert_eq!(status.code(), Code::Unknown);
    assert_eq!(status.message(), message);
}

#[tokio::test]
async fn status_details_pass_through() {
    let (server, _dropped) = common::start_scripted(Config::default()).await;
    let mut client = TestServiceClient::new(server.channel().await);
    let status = guard(client.unary_call(SimpleRequest {
        payload: Some(Payload { r#type: 0, body: common::scripted::DETAILS.to_vec() }),
        ..Default::default()
    }))
    .await
    .expect_err("fails with details");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no such thing");
    assert_eq!(status.details(), &common::scripted::details().encode_to_vec()[..]);
}

#[tokio::test]
async fn unimplemented_methods_and_services() {
    let server = common::start_interop(Config::default()).await;
    let channel = server.channel().await;
    let status = guard(TestServiceClient::new(channel.clone()).unimplemented_call(Empty {})).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    let status = guard(UnimplementedServiceClient::new(channel).unimplemented_call(Empty {})).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    // An unknown method of a known service.
    let reply =
        guard(raw_grpc(&format!("{}/grpc.testing.TestService/NoSuchMethod", server.url()), http::frame(0, &[]), &[]))
            .await;
    assert_eq!(grpc_status(&reply), Code::Unimplemented as i32);
}

#[tokio::test]
async fn reflection_v1_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let server = common::start_interop(Config::default()).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let ask = |m| ServerReflectionRequest { host: String::new(), message_request: Some(m) };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol("grpc.testing.TestService".into())),
    ];
    let mut stream =
        guard(client.server_reflection_info(tokio_stream::iter(requests))).await.expect("rpc").into_inner();
    let mut replies: Vec<ServerReflectionResponse> = Vec::new();
    while let Some(r) = guard(stream.next()).await {
        replies.push(r.expect("reply"));
    }
    assert_eq!(replies.len(), 2);
    let Some(MessageResponse::ListServicesResponse(list)) = &replies[0].message_response else {
        panic!("not a service list: {:?}", replies[0]);
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in ["grpc.testing.TestService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) = &replies[1].message_response else {
        panic!("no descriptor for TestService: {:?}", replies[1]);
    };
    let file = pbjson_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).expect("descriptor");
    assert_eq!(file.package(), "grpc.testing");
    assert!(file.service.iter().any(|s| s.name() == "TestService"), "descriptor does not define TestService");
}

#[tokio::test]
async fn truncated_frame_is_an_error_not_a_hang() {
    let server = common::start_interop(Config::default()).await;
    let mut body = http::frame(0, &SimpleRequest { response_size: 1, ..Default::default() }.encode_to_vec());
    body.truncate(body.len() - 1);
    let reply = guard(raw_grpc(&format!("{}{UNARY}", server.url()), body, &[])).await;
    assert_eq!(grpc_status(&reply), Code::Internal as i32, "{reply:?}");
}

#[tokio::test]
async fn responses_stream_as_they_are_produced() {
    // The first message must arrive while the handler still sleeps before the second:
    // the gateway must not buffer a native gRPC response.
    let server = common::start_interop(Config::default()).await;
    let req = StreamingOutputCallRequest {
        response_parameters: vec![
            ResponseParameters { size: 5, ..Default::default() },
            ResponseParameters { size: 6, interval_us: 30_000_000, ..Default::default() },
        ],
        ..Default::default()
    };
    let resp = http::send_streaming(
        Http::H2,
        http::request("POST", &format!("{}/grpc.testing.TestService/StreamingOutputCall", server.url()))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(http::frame(0, &req.encode_to_vec())))
            .expect("request"),
    )
    .await;
    let mut reader = http::FrameReader::new(resp.into_body());
    let (flags, msg) = reader.next().await.expect("first message before the 30 s pause");
    assert_eq!(flags, 0);
    let first = StreamingOutputCallResponse::decode(msg).expect("decode");
    assert_eq!(sizes(&[first]), [5]);
}

#[tokio::test]
async fn deadline_while_the_client_stream_is_open() {
    // The generated client over a plain hyper HTTP/2 client: tonic's channel would time the
    // call out on the client side too (as CANCELLED), hiding what the server answers.
    let server = common::start_interop(Config::default()).await;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<tonic::body::Body>();
    let mut client = TestServiceClient::with_origin(hyper, server.url().parse().expect("uri"));
    let (tx, rx) = tokio::sync::mpsc::channel::<StreamingInputCallRequest>(1);
    tx.send(StreamingInputCallRequest { payload: payload(3), ..Default::default() }).await.unwrap();
    let mut req = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.set_timeout(Duration::from_millis(200));
    // The request stream stays open (tx is alive): only the deadline can end the call.
    let status = guard(client.streaming_input_call(req)).await.expect_err("deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    drop(tx);
}
