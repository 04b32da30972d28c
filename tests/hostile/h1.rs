//! Rows over HTTP/1.1: the raw client of `tests/common/h1raw.rs` writes exactly the row's
//! bytes; after the response, the next request on the same connection must succeed, or, if
//! the response announced `connection: close`, the connection must end cleanly (outcome
//! `+close`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::common::h1raw;
use super::wire::{Read, Req, Resp, outcome};
use super::{TS, bounded};

/// The request's head and body as bytes on the wire.
fn head(req: &Req) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\nhost: localhost\r\n", req.method, req.path);
    if !req.body.is_empty() || req.method == "POST" {
        out.push_str(&format!("content-length: {}\r\n", req.body.len()));
    }
    for (n, v) in &req.headers {
        if n != "te" {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

pub async fn run(addr: SocketAddr, read: Read, req: &Req) -> String {
    bounded(async {
        let (mut reader, mut write) = h1raw::connect(addr).await;
        if write.write_all(&head(req)).await.is_err() {
            return "write failed".into();
        }
        if req.trickle {
            for b in &req.body {
                if write.write_all(&[*b]).await.is_err() {
                    return "write failed".into();
                }
                // The pace of the attack, not a wait for readiness.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } else if write.write_all(&req.body).await.is_err() {
            return "write failed".into();
        }
        let raw = match reader.response().await {
            Ok(r) => r,
            Err(e) => return format!("no response ({e})"),
        };
        let closes = raw.closes();
        let resp = Resp { status: raw.status, headers: raw.headers, body: raw.body, trailers: Vec::new() };
        let got = outcome(read, &resp);
        if closes {
            return if reader.closed().await {
                format!("{got} +close")
            } else {
                format!("{got} +close announced, still open")
            };
        }
        let next = Req::post(format!("{TS}/EmptyCall"), "application/json", "{}");
        if write.write_all(&head(&next)).await.is_err() || write.write_all(&next.body).await.is_err() {
            return format!("{got} +the next request could not be written");
        }
        match reader.response().await {
            Ok(r) if r.status == 200 => got,
            Ok(r) => format!("{got} +the next request got {}", r.status),
            Err(e) => format!("{got} +the next request failed ({e})"),
        }
    })
    .await
}
