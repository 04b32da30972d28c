//! Calls forwarded to real upstreams, compared with the same calls made to them directly.

use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{ResponseParameters, SimpleRequest, StreamingOutputCallRequest};

use crate::common::http::{self, Http, full};
use crate::gateway::Proxied;
use crate::upstream::{Lang, Upstream};

#[tokio::test]
async fn unary_and_streams_reach_the_upstream_over_native_grpc_and_connect() {
    for lang in Lang::ALL {
        let up = Upstream::start(lang, &[]).await;
        let portway = Proxied::start(&[&up]).await;
        let mut client = TestServiceClient::new(portway.channel().await);
        let resp = client
            .unary_call(SimpleRequest { response_size: 5, ..Default::default() })
            .await
            .unwrap_or_else(|s| panic!("{lang:?}: {s:?}"));
        assert_eq!(resp.into_inner().payload.expect("payload").body.len(), 5, "{lang:?}");
        let mut stream = client
            .streaming_output_call(StreamingOutputCallRequest {
                response_parameters: vec![
                    ResponseParameters { size: 1, ..Default::default() },
                    ResponseParameters { size: 2, ..Default::default() },
                ],
                ..Default::default()
            })
            .await
            .expect("stream")
            .into_inner();
        let mut sizes = Vec::new();
        while let Some(m) = stream.message().await.expect("message") {
            sizes.push(m.payload.expect("payload").body.len());
        }
        assert_eq!(sizes, [1, 2], "{lang:?}");

        let reply = http::send(
            Http::H1,
            http::request("POST", &format!("{}/portway.upstream.Echo/Reflect", portway.url()))
                .header("content-type", "application/json")
                .body(full(r#"{"big":"12","counts":{"b":"2","a":"1"},"textChoice":"x","at":"2024-01-01T00:00:00Z"}"#))
                .expect("request"),
        )
        .await;
        assert_eq!(reply.status, 200, "{lang:?}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(
            String::from_utf8_lossy(&reply.body),
            r#"{"big":"12","counts":{"a":"1","b":"2"},"at":"2024-01-01T00:00:00Z","textChoice":"x"}"#,
            "{lang:?}"
        );
    }
}
