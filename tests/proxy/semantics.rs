//! Call semantics end to end: deadlines forwarded as `grpc-timeout` (capped by the gateway's
//! policy), a client that cancels or goes away cancels the upstream's call, message limits
//! on both sides (a client stream with an oversized message is never forwarded cut short),
//! compression passed through untouched.

use std::time::Duration;

use futures_util::SinkExt as _;
use portway::Config;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{
    Payload, ResponseParameters, SimpleRequest, StreamingInputCallRequest, StreamingOutputCallRequest,
};
use portway::proxy::{ProxyConfig, UpstreamConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tonic::Code;
use tonic::codec::CompressionEncoding;

use crate::common::http::{self, Http, full, guard};
use crate::failures::{next_frame, ws_open};
use crate::gateway::Proxied;
use crate::upstream::{Lang, Upstream};

const REPORT_DEADLINE: &str = "x-upstream-deadline-ms";

async fn proxied(up: &Upstream, config: Config) -> Proxied {
    let mut proxy = ProxyConfig::default();
    proxy.upstreams = vec![UpstreamConfig::new("worker", vec![up.url().parse().expect("target")])];
    proxy.max_call_timeout = config.max_call_timeout;
    Proxied::with(proxy, config).await
}

/// What the upstream says it had left of the deadline of a unary call made with `timeout`.
async fn deadline_seen(portway: &Proxied, timeout: Option<Duration>) -> Option<u64> {
    let mut client = TestServiceClient::new(portway.channel().await);
    let mut req = tonic::Request::new(SimpleRequest::default());
    req.metadata_mut().insert(REPORT_DEADLINE, "1".parse().expect("value"));
    if let Some(t) = timeout {
        req.set_timeout(t);
    }
    let resp = guard(client.unary_call(req)).await.expect("call");
    let seen = resp.metadata().get(REPORT_DEADLINE).expect("reported").to_str().expect("ascii").to_owned();
    (seen != "none").then(|| seen.parse().expect("milliseconds"))
}

#[tokio::test]
async fn deadlines_reach_the_upstream_capped_by_the_gateway() {
    for lang in Lang::ALL {
        let up = Upstream::start(lang, &[]).await;
        let open = proxied(&up, Config::default()).await;
        assert_eq!(deadline_seen(&open, None).await, None, "{lang:?}: no deadline, none forwarded");
        let left = deadline_seen(&open, Some(Duration::from_secs(20))).await.expect("a deadline");
        assert!((10_000..=20_000).contains(&left), "{lang:?}: {left} ms left of 20 s");

        let mut config = Config::default();
        config.max_call_timeout = Some(Duration::from_secs(3));
        let capped = proxied(&up, config).await;
        for asked in [None, Some(Duration::from_secs(20))] {
            let left = deadline_seen(&capped, asked).await.expect("the cap is a deadline");
            assert!(left <= 3_000 && left > 1_000, "{lang:?}: {left} ms left with a cap of 3 s (asked {asked:?})");
        }
        let left = deadline_seen(&capped, Some(Duration::from_secs(2))).await.expect("a deadline");
        assert!(left <= 2_000, "{lang:?}: a shorter deadline than the cap stays: {left}");

        // Connect's header becomes the same grpc-timeout.
        let reply = http::send(
            Http::H1,
            http::request("POST", &format!("{}/grpc.testing.TestService/UnaryCall", open.url()))
                .header("content-type", "application/json")
                .header("connect-timeout-ms", "15000")
                .header(REPORT_DEADLINE, "1")
                .body(full("{}"))
                .expect("request"),
        )
        .await;
        let left: u64 = reply.header(REPORT_DEADLINE).expect("reported").parse().expect("ms");
        assert!((5_000..=15_000).contains(&left), "{lang:?}: Connect: {left} ms left of 15 s");
    }
}

fn slow_stream() -> StreamingOutputCallRequest {
    let p = ResponseParameters { size: 10, interval_us: 50_000, ..Default::default() };
    StreamingOutputCallRequest { response_parameters: vec![p; 1000], ..Default::default() }
}

#[tokio::test]
async fn a_client_that_cancels_or_leaves_cancels_the_upstream_call() {
    for lang in Lang::ALL {
        let mut up = Upstream::start(lang, &[]).await;
        let portway = proxied(&up, Config::default()).await;
        let cancelled = |l: &str| l == "cancelled";

        // Native gRPC: the client drops the stream (RST_STREAM).
        let mut client = TestServiceClient::new(portway.channel().await);
        let mut stream = client.streaming_output_call(slow_stream()).await.expect("stream").into_inner();
        assert!(stream.message().await.expect("message").is_some());
        drop(stream);
        up.wait_line(cancelled).await;

        // WebSocket: a `cancel` frame, then a socket that closes mid-call.
        let json = serde_json::to_string(&slow_stream()).expect("JSON");
        let method = "/grpc.testing.TestService/StreamingOutputCall";
        let mut ws = ws_open(&portway, method, &json, None).await;
        assert_eq!(next_frame(&mut ws).await["type"], "headers");
        ws.send(WsMessage::text(r#"{"type":"cancel","id":1}"#)).await.expect("cancel");
        up.wait_line(cancelled).await;
        let mut ws = ws_open(&portway, method, &json, None).await;
        assert_eq!(next_frame(&mut ws).await["type"], "headers");
        drop(ws);
        up.wait_line(cancelled).await;

        // Connect over HTTP/1.1: the connection closes mid-stream.
        let env = http::frame(0, json.as_bytes());
        let req = http::request("POST", &format!("{}{method}", portway.url()))
            .header("content-type", "application/connect+json")
            .body(full(env))
            .expect("request");
        let resp = http::send_streaming(Http::H1, req).await;
        assert_eq!(resp.status(), 200);
        drop(resp);
        up.wait_line(cancelled).await;
    }
}

#[tokio::test]
async fn message_limits_hold_both_ways_and_a_client_stream_is_never_cut_short() {
    for lang in Lang::ALL {
        let up = Upstream::start(lang, &[]).await;
        let mut config = Config::default();
        config.max_message_bytes = 64 * 1024;
        let portway = proxied(&up, config).await;
        let mut client = TestServiceClient::new(portway.channel().await);
        let payload = |n: usize| Some(Payload { r#type: 0, body: vec![1; n] });

        let ok = guard(client.unary_call(SimpleRequest {
            response_size: 60_000,
            payload: payload(60_000),
            ..Default::default()
        }))
        .await
        .expect("under the limit");
        assert_eq!(ok.into_inner().payload.expect("payload").body.len(), 60_000);
        let big_request =
            guard(client.unary_call(SimpleRequest { payload: payload(100_000), ..Default::default() })).await;
        assert_eq!(big_request.expect_err("over").code(), Code::ResourceExhausted, "{lang:?}");
        let big_response =
            guard(client.unary_call(SimpleRequest { response_size: 100_000, ..Default::default() })).await;
        assert_eq!(big_response.expect_err("over").code(), Code::ResourceExhausted, "{lang:?}");

        // A client stream whose third message is too large: the upstream must not answer
        // for the first two as if they were all.
        let messages = [1_000, 1_000, 100_000, 1_000]
            .map(|n| StreamingInputCallRequest { payload: payload(n), ..Default::default() });
        let status = guard(client.streaming_input_call(futures_util::stream::iter(messages)))
            .await
            .expect_err("the oversized message fails the call");
        assert_eq!(status.code(), Code::ResourceExhausted, "{lang:?}: {status:?}");
        assert!(status.message().contains("larger than the limit"), "{lang:?}: {status:?}");
    }
}

#[tokio::test]
async fn compressed_messages_pass_through_untouched() {
    for lang in Lang::ALL {
        let up = Upstream::start(lang, &[]).await;
        let portway = proxied(&up, Config::default()).await;
        let mut client = TestServiceClient::new(portway.channel().await)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
        let req = SimpleRequest {
            response_size: 50_000,
            payload: Some(Payload { r#type: 0, body: vec![0; 50_000] }),
            ..Default::default()
        };
        let resp = guard(client.unary_call(req)).await.unwrap_or_else(|s| panic!("{lang:?}: {s:?}"));
        assert_eq!(resp.into_inner().payload.expect("payload").body.len(), 50_000);
    }
}
