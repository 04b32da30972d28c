//! WebSocket load: `conns` connections, each sending one text message (the same JSON the
//! Connect benchmarks send) and waiting for its echo before sending the next, until the time
//! is up. A message counts once its echo has arrived intact.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::child::Server;
use crate::report::Sample;
use crate::servers::{WS_READ_BUFFER, WS_WRITE_BUFFER};

pub async fn run(server: &Server, conns: u32, duration: Duration) -> anyhow::Result<Sample> {
    let url = format!("ws://{}/", server.addr);
    let config = WebSocketConfig::default().read_buffer_size(WS_READ_BUFFER).write_buffer_size(WS_WRITE_BUFFER);
    let mut sockets = Vec::new();
    for _ in 0..conns {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true).await?;
        sockets.push(ws);
    }
    let text = crate::calls::request_json();
    let cpu_before = server.cpu_time()?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut ws in sockets {
        let text = text.clone();
        tasks.spawn(async move {
            let mut count = 0u64;
            let mut latencies = Vec::new();
            while tokio::time::Instant::now() < deadline {
                let sent = Instant::now();
                ws.send(Message::text(text.clone())).await?;
                let reply = ws.next().await.context("connection closed")??;
                ensure!(reply.to_text().is_ok_and(|t| t == text), "echo differs");
                latencies.push(sent.elapsed().as_micros() as u64);
                count += 1;
            }
            let _ = ws.close(None).await;
            anyhow::Ok((count, latencies))
        });
    }
    let mut count = 0;
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
