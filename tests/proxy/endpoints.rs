//! Where upstreams listen: Unix sockets, and several endpoints of one upstream, balanced,
//! one of them failing and coming back.

use std::time::Duration;

use portway::Config;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{ResponseParameters, SimpleRequest, StreamingOutputCallRequest};
use portway::proxy::{ProxyConfig, UpstreamConfig};

use crate::common::http::guard;
use crate::gateway::Proxied;
use crate::upstream::{Lang, Upstream};

#[tokio::test]
async fn an_upstream_on_a_unix_socket() {
    for lang in Lang::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let up = Upstream::start_unix(lang, &dir.path().join("worker.sock")).await;
        let portway = Proxied::start(&[&up]).await;
        let mut client = TestServiceClient::new(portway.channel().await);
        let resp = guard(client.unary_call(SimpleRequest { response_size: 4, ..Default::default() }))
            .await
            .unwrap_or_else(|s| panic!("{lang:?}: {s:?}"));
        assert_eq!(resp.into_inner().payload.expect("payload").body.len(), 4);
    }
}

/// One server stream of one message: the upstream that serves it prints `sent 1`.
async fn one(client: &mut TestServiceClient<tonic::transport::Channel>) -> Result<(), tonic::Status> {
    let req =
        StreamingOutputCallRequest { response_parameters: vec![ResponseParameters::default()], ..Default::default() };
    let mut stream = guard(client.streaming_output_call(req)).await?.into_inner();
    while guard(stream.message()).await?.is_some() {}
    Ok(())
}

/// How many calls each of `a` and `b` served, once they served `total` together (a server
/// prints its line before it ends the call, but the line may reach us after the answer).
async fn split(a: &mut Upstream, b: &mut Upstream, total: usize) -> (usize, usize) {
    let (mut x, mut y) = (0, 0);
    while x + y < total {
        tokio::select! {
            Some(l) = a.lines.recv() => x += usize::from(l.starts_with("sent ")),
            Some(l) = b.lines.recv() => y += usize::from(l.starts_with("sent ")),
            () = tokio::time::sleep(Duration::from_secs(10)) => panic!("only {x} + {y} of {total} calls reported"),
        }
    }
    (x, y)
}

#[tokio::test]
async fn several_endpoints_share_the_calls_and_one_that_fails_is_left_out_until_it_is_back() {
    let mut a = Upstream::start(Lang::Python, &[]).await;
    let mut b = Upstream::start(Lang::Python, &[]).await;
    let mut proxy = ProxyConfig::default();
    let targets = vec![a.url().parse().expect("target"), b.url().parse().expect("target")];
    proxy.upstreams = vec![UpstreamConfig::new("workers", targets)];
    proxy.health_interval = Duration::from_millis(100);
    let portway = Proxied::with(proxy, Config::default()).await;
    let mut client = TestServiceClient::new(portway.channel().await);
    for _ in 0..10 {
        one(&mut client).await.expect("call");
    }
    assert_eq!(split(&mut a, &mut b, 10).await, (5, 5), "round-robin");

    // One endpoint dies: at most the call that finds out fails; the others go to the live one.
    b.kill().await;
    let mut failed = 0;
    for _ in 0..10 {
        if let Err(s) = one(&mut client).await {
            assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
            assert!(s.message().contains("upstream workers"), "{s:?}");
            failed += 1;
        }
    }
    assert!(failed <= 1, "{failed} calls failed");
    // The live one served every call that succeeded (and nothing is left unreported).
    for _ in 0..10 - failed {
        let line = a.wait_line(|l| l.starts_with("sent ")).await;
        assert_eq!(line, "sent 1");
    }
    assert!(a.lines.try_recv().is_err(), "more calls than were made");

    // Back on its address: the health checks let it rejoin the rotation.
    b.restart(&[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        one(&mut client).await.expect("call");
        let (_, from_b) = split(&mut a, &mut b, 1).await;
        if from_b > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the restarted endpoint got no call within 20 s");
    }
}
