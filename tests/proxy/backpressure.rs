//! Flow control end to end: a WebSocket client that grants no credit holds the upstream's
//! server stream back (the upstream itself reports how far it got), and nothing in between
//! buffers the rest.

use std::time::Duration;

use futures_util::SinkExt as _;
use portway::pb::grpc::testing::{ResponseParameters, StreamingOutputCallRequest};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::failures::{next_frame, ws_open};
use crate::gateway::Proxied;
use crate::upstream::{Lang, Upstream};

const MESSAGES: usize = 400;
const SIZE: i32 = 64 * 1024;

/// The upstream's progress: the last `sent N` it printed before it went quiet for `quiet`.
async fn settled(up: &mut Upstream, quiet: Duration) -> usize {
    let mut last = 0;
    loop {
        match tokio::time::timeout(quiet, up.lines.recv()).await {
            Ok(Some(line)) => {
                if let Some(n) = line.strip_prefix("sent ").and_then(|n| n.parse().ok()) {
                    last = n;
                }
            }
            Ok(None) => panic!("the upstream's output ended"),
            // Quiet: it is not sending (or it is done).
            Err(_) => return last,
        }
    }
}

#[tokio::test]
async fn a_websocket_client_without_credit_holds_the_upstream_back() {
    for lang in Lang::ALL {
        let mut up = Upstream::start(lang, &[]).await;
        let portway = Proxied::start(&[&up]).await;
        let p = ResponseParameters { size: SIZE, ..Default::default() };
        let request = StreamingOutputCallRequest { response_parameters: vec![p; MESSAGES], ..Default::default() };
        let json = serde_json::to_string(&request).expect("JSON");
        let mut ws = ws_open(&portway, "/grpc.testing.TestService/StreamingOutputCall", &json, Some(1)).await;
        assert_eq!(next_frame(&mut ws).await["type"], "headers");
        assert_eq!(next_frame(&mut ws).await["type"], "message");
        // 26 MiB asked for; what the windows and buffers on the way hold is a small part.
        let held = settled(&mut up, Duration::from_secs(1)).await;
        assert!(
            held < MESSAGES / 4,
            "{lang:?}: the upstream sent {held} of {MESSAGES} messages to a client with no credit"
        );

        eprintln!("{lang:?}: the upstream sent {held} of {MESSAGES} while the client granted no credit");
        // Granting credit lets the rest through: the stream was held, not broken.
        let grant = serde_json::json!({"type": "credit", "id": 1, "credit": MESSAGES});
        ws.send(WsMessage::text(grant.to_string())).await.expect("grant");
        let mut received = 1;
        loop {
            let f = next_frame(&mut ws).await;
            match f["type"].as_str() {
                Some("message") => received += 1,
                Some("status") => {
                    assert_eq!(f["code"], "ok", "{lang:?}: {f}");
                    break;
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(received, MESSAGES, "{lang:?}");
        assert_eq!(settled(&mut up, Duration::from_millis(200)).await.max(held), MESSAGES, "{lang:?}");
    }
}
