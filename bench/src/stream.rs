//! Streaming load: `conns` HTTP/2 connections × `streams` bidirectional
//! `grpc.testing.TestService/FullDuplexCall` streams each. Every stream sends one message of
//! [`PAYLOAD`] bytes asking for one reply of the same size, waits for the reply (so each round
//! trip is one latency sample), and repeats until the time is up; then it half-closes and must
//! see the stream end with status OK. A message counts only once its reply has arrived.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use portway::pb::grpc::testing as pb;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use crate::calls::PAYLOAD;
use crate::child::Server;
use crate::h2load::Budget;
use crate::report::Sample;

fn message() -> pb::StreamingOutputCallRequest {
    pb::StreamingOutputCallRequest {
        response_parameters: vec![pb::ResponseParameters { size: PAYLOAD as i32, ..Default::default() }],
        payload: Some(pb::Payload { r#type: pb::PayloadType::Compressable as i32, body: vec![7u8; PAYLOAD] }),
        ..Default::default()
    }
}

/// Runs the streaming load against `server` for a time, or for a number of messages in all
/// (split evenly over the streams; the total must be a multiple of their number).
pub async fn run(server: &Server, conns: u32, streams: u32, budget: Budget) -> anyhow::Result<Sample> {
    let per_stream = match budget {
        Budget::Time(_) => None,
        Budget::Requests(n) => {
            let streams = u64::from(conns * streams);
            ensure!(n % streams == 0, "{n} messages do not split evenly over {streams} streams");
            Some(n / streams)
        }
    };
    let duration = match budget {
        Budget::Time(d) => d,
        Budget::Requests(_) => Duration::from_secs(3600),
    };
    let url = format!("http://{}", server.addr);
    // Connect first (one connection per channel), so that set-up is not timed.
    let mut clients = Vec::new();
    for _ in 0..conns {
        let channel = Endpoint::from_shared(url.clone())?.tcp_nodelay(true).connect().await?;
        clients.push(TestServiceClient::new(channel));
    }
    let cpu_before = server.cpu_time()?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for client in &clients {
        for _ in 0..streams {
            tasks.spawn(one_stream(client.clone(), deadline, per_stream));
        }
    }
    let mut count = 0u64;
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (n, lat) = done??;
        count += n;
        latencies.extend(lat);
    }
    let elapsed = started.elapsed();
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    ensure!(count > 0, "no messages completed");
    Ok(Sample::new(count, elapsed, cpu, latencies))
}

async fn one_stream(
    mut client: TestServiceClient<tonic::transport::Channel>,
    deadline: tokio::time::Instant,
    limit: Option<u64>,
) -> anyhow::Result<(u64, Vec<u64>)> {
    let (tx, rx) = mpsc::channel::<pb::StreamingOutputCallRequest>(1);
    let requests = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut request = tonic::Request::new(requests);
    if crate::calls::edge() {
        request.metadata_mut().insert("authorization", crate::calls::BENCH_AUTHORIZATION.parse()?);
    }
    let mut responses = client.full_duplex_call(request).await?.into_inner();
    let msg = message();
    let mut count = 0u64;
    let mut latencies = Vec::new();
    while tokio::time::Instant::now() < deadline && limit.is_none_or(|l| count < l) {
        let sent = Instant::now();
        tx.send(msg.clone()).await.context("request stream closed")?;
        let reply = responses.message().await?.context("stream ended early")?;
        ensure!(reply.payload.is_some_and(|p| p.body.len() == PAYLOAD), "wrong reply payload");
        latencies.push(sent.elapsed().as_micros() as u64);
        count += 1;
    }
    drop(tx);
    // The stream must end cleanly: `message()` turns a non-OK grpc-status into an error.
    ensure!(responses.message().await?.is_none(), "unexpected extra reply");
    Ok((count, latencies))
}
