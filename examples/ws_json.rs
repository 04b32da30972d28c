//! Run with: `cargo run --example ws_json -- ws://127.0.0.1:8080/ws` (a gateway from
//! `cargo run --release -- --interop` in another shell).
//!
//! A WebSocket client (tokio-tungstenite) speaking portway's JSON protocol,
//! `portway.v1.json` (docs/websocket-protocol.md): several calls multiplexed on one socket,
//! each frame a JSON object — a unary `Put`, a server-streaming `Watch`, a client-streaming
//! `PutMany` that waits for the server's credit, and a compare-and-set error with its details.

use std::collections::HashMap;
use std::error::Error;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const SVC: &str = "/portway.state.v1.StateService";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", "portway.v1.json".parse()?);
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await?;
    println!("connected, subprotocol {:?}", response.headers().get("sec-websocket-protocol"));

    let hello = next_frame(&mut ws).await?;
    let credit = hello["initialCredit"].as_u64().ok_or("no initialCredit in hello")?;
    println!("hello: {hello}");
    let prefix = format!("examples/ws/{}", std::process::id());

    // Call 1: a watch of the prefix (server streaming). Call 2: a unary put (one frame).
    send(&mut ws, json!({"type": "open", "id": 1, "method": format!("{SVC}/Watch"), "message": {"key": prefix, "prefix": true}, "end": true})).await?;
    let mut to_send: Vec<Value> = Vec::new();
    let mut send_credit = credit;
    let mut put_sent = false;
    let mut done: HashMap<u64, Value> = HashMap::new();
    let mut watched = 0;

    while done.len() < 4 {
        // Fill call 3 up to its credit, then half-close it.
        while send_credit > 0 && !to_send.is_empty() {
            let message = to_send.pop().ok_or("empty")?;
            let mut frame = json!({"type": "message", "id": 3, "message": message});
            if to_send.is_empty() {
                frame["end"] = json!(true);
            }
            send(&mut ws, frame).await?;
            send_credit -= 1;
        }
        let frame = next_frame(&mut ws).await?;
        let id = frame["id"].as_u64().unwrap_or_default();
        match frame["type"].as_str() {
            Some("message") if id == 1 && frame["message"]["created"] == json!(true) && !put_sent => {
                // The watch is registered: now write.
                put_sent = true;
                let put = json!({"key": format!("{prefix}/doc"), "value": {"title": "hello"}});
                send(
                    &mut ws,
                    json!({"type": "open", "id": 2, "method": format!("{SVC}/Put"), "message": put, "end": true}),
                )
                .await?;
                // Call 3: PutMany (client streaming); its 40 messages go out as credit allows.
                send(&mut ws, json!({"type": "open", "id": 3, "method": format!("{SVC}/PutMany")})).await?;
                to_send = (0..40).rev().map(|i| json!({"key": format!("{prefix}/many/{i:02}"), "value": i})).collect();
            }
            Some("message") if id == 1 => {
                watched += frame["message"]["events"].as_array().map_or(0, Vec::len);
                println!("watch: revision {} ({watched} events so far)", frame["message"]["revision"]);
                if watched == 41 {
                    send(&mut ws, json!({"type": "cancel", "id": 1})).await?;
                    // Call 4: a compare-and-set that cannot hold.
                    let cas = json!({"key": format!("{prefix}/doc"), "expectedRevision": "0"});
                    send(
                        &mut ws,
                        json!({"type": "open", "id": 4, "method": format!("{SVC}/Put"), "message": cas, "end": true}),
                    )
                    .await?;
                }
            }
            Some("message") => println!("call {id}: {}", frame["message"]),
            Some("credit") if id == 3 => send_credit += frame["credit"].as_u64().unwrap_or_default(),
            Some("status") => {
                println!(
                    "call {id} ended: {} {}",
                    frame["code"],
                    frame.get("details").map(Value::to_string).unwrap_or_default()
                );
                done.insert(id, frame);
            }
            _ => {}
        }
    }
    let ok = |id: u64| done.get(&id).map(|f| f["code"].clone());
    if ok(2) != Some(json!("ok")) || ok(3) != Some(json!("ok")) || ok(1) != Some(json!("canceled")) {
        return Err(format!("unexpected statuses: {done:?}").into());
    }
    if ok(4) != Some(json!("failed_precondition"))
        || done[&4]["details"][0]["type"] != "portway.state.v1.ConflictDetail"
    {
        return Err(format!("the conflict did not come back as one: {:?}", done.get(&4)).into());
    }
    ws.close(None).await?;
    println!("ok");
    Ok(())
}

async fn send<S>(ws: &mut S, frame: Value) -> Result<(), Box<dyn Error>>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    ws.send(Message::text(frame.to_string())).await?;
    Ok(())
}

async fn next_frame<S>(ws: &mut S) -> Result<Value, Box<dyn Error>>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await.ok_or("the server closed the socket")?? {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text)?;
                if frame["type"] != "heartbeat" {
                    return Ok(frame);
                }
            }
            Message::Close(close) => return Err(format!("closed by the server: {close:?}").into()),
            _ => {}
        }
    }
}
