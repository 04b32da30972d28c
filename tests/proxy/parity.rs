//! Parity: every call through portway, over every protocol that carries its kind, looks as
//! it does when made to the upstream directly with native gRPC: the same messages, metadata
//! (initial and trailing, `-bin` values), status codes and messages, and error details.

use portway::pb::grpc::testing::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use portway::transcode::RpcKind;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clients::{self, Case, ECHO_INITIAL, ECHO_TRAILING, Outcome};
use crate::common::http::guard;
use crate::gateway::Proxied;
use crate::upstream::{Lang, Upstream};

fn case<Req, Resp>(name: &str, method: &str, kind: RpcKind, requests: Vec<Req>) -> Case
where
    Req: Message + Serialize,
    Resp: Message + Default + DeserializeOwned,
{
    Case {
        name: name.to_owned(),
        path: format!("/grpc.testing.TestService/{method}"),
        kind,
        requests: requests
            .iter()
            .map(|r| (r.encode_to_vec(), serde_json::to_string(r).expect("request JSON")))
            .collect(),
        metadata: vec![(ECHO_INITIAL.into(), "parity value".into()), (ECHO_TRAILING.into(), "q6ur".into())],
        from_json: |b| serde_json::from_slice::<Resp>(b).expect("response JSON").encode_to_vec(),
        canonical: |b| Resp::decode(b).expect("response protobuf").encode_to_vec(),
    }
}

fn params(sizes: &[i32]) -> Vec<ResponseParameters> {
    sizes.iter().map(|&size| ResponseParameters { size, ..Default::default() }).collect()
}

fn out(sizes: &[i32]) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest { response_parameters: params(sizes), ..Default::default() }
}

fn failing(code: i32, sizes: &[i32]) -> StreamingOutputCallRequest {
    let message = format!("code {code}: spaces, % and ☺ \u{1F608}");
    StreamingOutputCallRequest { response_status: Some(EchoStatus { code, message }), ..out(sizes) }
}

fn cases() -> Vec<Case> {
    use RpcKind::*;
    let input = |n: usize| StreamingInputCallRequest {
        payload: Some(Payload { r#type: 0, body: vec![7; n] }),
        ..Default::default()
    };
    let mut cases = vec![
        case::<Empty, Empty>("empty", "EmptyCall", Unary, vec![Empty {}]),
        case::<SimpleRequest, SimpleResponse>(
            "unary",
            "UnaryCall",
            Unary,
            vec![SimpleRequest {
                response_size: 10,
                payload: Some(Payload { r#type: 0, body: vec![1; 20] }),
                ..Default::default()
            }],
        ),
        case::<SimpleRequest, SimpleResponse>(
            "large unary",
            "UnaryCall",
            Unary,
            vec![SimpleRequest {
                response_size: 300_000,
                payload: Some(Payload { r#type: 0, body: vec![9; 200_000] }),
                ..Default::default()
            }],
        ),
        case::<StreamingOutputCallRequest, StreamingOutputCallResponse>(
            "server stream",
            "StreamingOutputCall",
            ServerStreaming,
            vec![out(&[1, 0, 5, 70_000])],
        ),
        case::<StreamingOutputCallRequest, StreamingOutputCallResponse>(
            "server stream error",
            "StreamingOutputCall",
            ServerStreaming,
            vec![failing(9, &[2, 3])],
        ),
        case::<StreamingInputCallRequest, StreamingInputCallResponse>(
            "client stream",
            "StreamingInputCall",
            ClientStreaming,
            vec![input(1), input(0), input(100_000)],
        ),
        case::<StreamingOutputCallRequest, StreamingOutputCallResponse>(
            "bidi",
            "FullDuplexCall",
            BidiStreaming,
            vec![out(&[1, 2]), out(&[]), out(&[3])],
        ),
        case::<StreamingOutputCallRequest, StreamingOutputCallResponse>(
            "bidi error",
            "FullDuplexCall",
            BidiStreaming,
            vec![out(&[1]), failing(10, &[])],
        ),
        case::<StreamingOutputCallRequest, StreamingOutputCallResponse>(
            "half duplex",
            "HalfDuplexCall",
            BidiStreaming,
            vec![out(&[1]), out(&[2, 3])],
        ),
    ];
    for code in 1..=16 {
        let req = SimpleRequest {
            response_status: Some(EchoStatus { code, message: format!("status {code}: with spaces, % and ☺") }),
            ..Default::default()
        };
        cases.push(case::<SimpleRequest, SimpleResponse>(&format!("status {code}"), "UnaryCall", Unary, vec![req]));
    }
    let mut details = case::<SimpleRequest, SimpleResponse>(
        "details",
        "UnaryCall",
        Unary,
        vec![SimpleRequest {
            response_status: Some(EchoStatus { code: 5, message: "not here".into() }),
            ..Default::default()
        }],
    );
    details.metadata.push(("x-upstream-details".into(), "1".into()));
    cases.push(details);
    let mut bare =
        case::<SimpleRequest, SimpleResponse>("no metadata", "UnaryCall", Unary, vec![SimpleRequest::default()]);
    bare.metadata.clear();
    cases.push(bare);
    cases
}

/// A plain unary call, without metadata.
pub fn unary_case() -> Case {
    let mut c =
        case::<SimpleRequest, SimpleResponse>("unary", "UnaryCall", RpcKind::Unary, vec![SimpleRequest::default()]);
    c.metadata.clear();
    c
}

async fn outcomes(up: &Upstream, portway: &Proxied, case: &Case) -> Vec<(String, Outcome)> {
    let clients = clients::all(&up.url(), &portway.url(), portway.addr);
    let calls = clients
        .iter()
        .filter(|c| c.carries(case.kind))
        .map(|c| async move { (c.name(), guard(c.call(case)).await.canonical(case)) });
    futures_util::future::join_all(calls).await
}

#[tokio::test]
async fn every_protocol_sees_what_a_direct_call_sees() {
    for lang in Lang::ALL {
        let up = Upstream::start(lang, &[]).await;
        let portway = Proxied::start(&[&up]).await;
        for case in cases() {
            let outcomes = outcomes(&up, &portway, &case).await;
            let (_, direct) = &outcomes[0];
            if case.name.starts_with("status") || case.name == "details" || case.name.ends_with("error") {
                assert_ne!(direct.code, 0, "{lang:?} {}: the upstream failed the call", case.name);
            } else {
                assert_eq!(direct.code, 0, "{lang:?} {}: {direct:?}", case.name);
            }
            if case.metadata.is_empty() {
                assert_eq!((&direct.headers_echo, &direct.trailers_echo), (&None, &None));
            } else {
                assert_eq!(direct.trailers_echo.as_deref(), Some(&[0xab, 0xab, 0xab][..]), "{lang:?} {}", case.name);
            }
            for (name, o) in &outcomes[1..] {
                assert_eq!(o, direct, "{lang:?} {}: {name} differs from the direct call", case.name);
            }
        }
    }
}

#[tokio::test]
async fn unknown_methods_are_unimplemented_everywhere() {
    for lang in Lang::ALL {
        let up = Upstream::start(lang, &[]).await;
        let portway = Proxied::start(&[&up]).await;
        for method in ["UnimplementedCall", "NoSuchMethod"] {
            let mut c = case::<Empty, Empty>(method, method, RpcKind::Unary, vec![Empty {}]);
            c.metadata.clear();
            let outcomes = outcomes(&up, &portway, &c).await;
            for (name, o) in &outcomes {
                assert_eq!(o.code, tonic::Code::Unimplemented as i32, "{lang:?} {method}: {name}: {o:?}");
            }
        }
    }
}
