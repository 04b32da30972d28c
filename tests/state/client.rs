//! Clients for the state store tests: tonic (native gRPC), a small Connect JSON client
//! (HTTP/1.1, unary and streaming), a child `portway` process, and error-detail decoding.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portway::pb::portway::state::v1 as api;
use portway::pb::portway::state::v1::state_service_client::StateServiceClient;
use portway::transcode::framing::{Decoder, FLAG_END_STREAM, encode};
use prost::Message as _;
use serde_json::Value as Json;
use tonic::transport::Channel;

pub type Grpc = StateServiceClient<Channel>;

/// A tonic client on a fresh connection.
pub async fn grpc(url: &str) -> Grpc {
    let channel =
        tonic::transport::Endpoint::from_shared(url.to_string()).expect("url").connect().await.expect("connect");
    StateServiceClient::new(channel).max_decoding_message_size(64 << 20)
}

/// The typed detail of `T` in a status, if present.
pub fn detail<T: prost::Message + Default>(status: &tonic::Status, name: &str) -> Option<T> {
    let rpc = portway::pb::google::rpc::Status::decode(status.details()).ok()?;
    rpc.details
        .iter()
        .find(|d| d.type_url == format!("type.googleapis.com/portway.state.v1.{name}"))
        .and_then(|d| T::decode(d.value.as_ref()).ok())
}

/// The typed detail of `T` in a Connect error body (`details[].value`, base64).
pub fn json_detail<T: prost::Message + Default>(error: &Json, name: &str) -> Option<T> {
    let d = error["details"].as_array()?.iter().find(|d| d["type"] == format!("portway.state.v1.{name}"))?;
    let raw = d["value"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw.trim_end_matches('=')).ok()?;
    T::decode(bytes.as_slice()).ok()
}

/// A Put request.
pub fn put(key: &str, value: impl Into<portway::protojson::Value>) -> api::PutRequest {
    api::PutRequest { key: key.into(), value: Some(value.into()), ..Default::default() }
}

/// A prefix watch from `start`.
pub fn watch_prefix(prefix: &str, start: i64) -> api::WatchRequest {
    api::WatchRequest { key: prefix.into(), prefix: true, start_revision: start, prev_entry: false }
}

/// Connect (JSON over HTTP/1.1) to `base`.
#[derive(Clone)]
pub struct Connect {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One item of a Connect stream.
#[derive(Debug)]
pub enum Item {
    /// A message.
    Message(Json),
    /// The end-of-stream envelope (`{"error": ...}` or `{}`).
    End(Json),
}

/// A Connect streaming response being read.
pub struct ConnectStream {
    body: hyper::body::Incoming,
    decoder: Decoder,
    ended: bool,
}

impl ConnectStream {
    /// The next message or the end; `None` after the end.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(env) = self.decoder.next_envelope().expect("valid envelope") {
                let json: Json = serde_json::from_slice(&env.payload).expect("json envelope");
                if env.flags & FLAG_END_STREAM != 0 {
                    self.ended = true;
                    return Some(Item::End(json));
                }
                return Some(Item::Message(json));
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                }
                Some(Err(e)) => panic!("connect stream failed: {e}"),
                None => return None,
            }
        }
    }

    /// The next message; panics on the end.
    pub async fn message(&mut self) -> Json {
        match self.next().await {
            Some(Item::Message(m)) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

impl Connect {
    pub fn new(base: &str) -> Self {
        Self { base: base.to_string(), client: Client::builder(TokioExecutor::new()).build_http() }
    }

    /// A unary call: the HTTP status and the JSON body.
    pub async fn unary(&self, method: &str, body: Json) -> (u16, Json) {
        let req = http::Request::post(format!("{}/portway.state.v1.StateService/{method}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&body).expect("json"))))
            .expect("request");
        let resp = self.client.request(req).await.expect("response");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("json body: {bytes:?}")))
    }

    /// A streaming call sending `messages` (then closing).
    pub async fn stream(&self, method: &str, messages: &[Json]) -> ConnectStream {
        let mut body = Vec::new();
        for m in messages {
            body.extend_from_slice(&encode(0, &serde_json::to_vec(m).expect("json")));
        }
        let req = http::Request::post(format!("{}/portway.state.v1.StateService/{method}", self.base))
            .header("content-type", "application/connect+json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let resp = self.client.request(req).await.expect("response");
        assert_eq!(resp.status(), 200, "connect streams answer 200");
        ConnectStream { body: resp.into_body(), decoder: Decoder::new(64 << 20), ended: false }
    }
}

pub use super::trials::Process;

/// The `portway` binary `cargo test` built, as a child process (see [`Process`]).
pub struct Child;

impl Child {
    /// Starts it with `args` on `127.0.0.1:<ephemeral>` and waits until it listens.
    pub async fn start(args: &[&str]) -> Process {
        Process::start(std::path::Path::new(env!("CARGO_BIN_EXE_portway")), args)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
