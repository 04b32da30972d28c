//! The per-client-address rate limit over TLS: native gRPC (tonic over TLS) and Connect (hyper
//! HTTP/1.1 over rustls) from one address share its quota; the address is the connection's
//! peer, whatever forwarding headers a client sends; a second address has a quota of its own;
//! and the calls succeed again after the retry hint.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use portway::Config;
use portway::config::TlsConfig;
use portway::pb::grpc::testing::SimpleRequest;
use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::rate::{Rate, RateLayer, RateOptions};
use tokio_rustls::rustls::pki_types::ServerName;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::clients::{Alpn, connector};
use super::common::http::guard;
use super::pki::Ca;

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";

/// Headers that name another client, as a proxy (or a client pretending to be one) would.
fn forwarded(n: u8) -> [(&'static str, String); 3] {
    [
        ("x-forwarded-for", format!("203.0.113.{n}")),
        ("x-real-ip", format!("203.0.113.{n}")),
        ("forwarded", format!("for=203.0.113.{n}")),
    ]
}

/// What a refused call said: its code, message, and `retry-after`.
#[derive(Debug)]
struct Answer {
    ok: bool,
    code: String,
    message: String,
    retry_after: Option<String>,
}

impl Answer {
    /// The wait the message asks for ("… retry in 873 ms").
    fn retry_in(&self) -> Duration {
        let ms = self.message.rsplit("retry in ").next().and_then(|m| m.trim_end_matches(" ms").parse().ok());
        Duration::from_millis(ms.unwrap_or_else(|| panic!("no retry hint in {self:?}")))
    }

    fn assert_refused(&self, what: &str, code: &str) {
        assert!(!self.ok, "{what}: served, over the quota of its address");
        assert_eq!(self.code, code, "{what}: {self:?}");
        assert!(self.message.contains("one client address"), "{what}: {self:?}");
        assert_eq!(self.retry_after.as_deref(), Some("1"), "{what}: {self:?}");
        assert!(self.retry_in() <= Duration::from_secs(1), "{what}: {self:?}");
    }
}

/// A tonic channel over TLS whose connection comes from `from`.
async fn grpc_from(addr: SocketAddr, ca: &Ca, from: IpAddr) -> TestServiceClient<Channel> {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem)).domain_name("localhost");
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{}", addr.port())).unwrap();
    let channel = guard(endpoint.tls_config(tls).unwrap().local_address(Some(from)).connect()).await.unwrap();
    TestServiceClient::new(channel)
}

async fn grpc_call(client: &mut TestServiceClient<Channel>, n: u8) -> Answer {
    let mut req = tonic::Request::new(SimpleRequest { response_size: 1, ..Default::default() });
    for (name, value) in forwarded(n) {
        req.metadata_mut().insert(name, value.parse().unwrap());
    }
    match guard(client.unary_call(req)).await {
        Ok(_) => Answer { ok: true, code: "ok".into(), message: String::new(), retry_after: None },
        Err(status) => Answer {
            ok: false,
            code: format!("{:?}", status.code()),
            message: status.message().to_string(),
            retry_after: status.metadata().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string),
        },
    }
}

type Http1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 connection over TLS (ALPN `http/1.1`) from `from`.
async fn connect_from(addr: SocketAddr, ca: &Ca, from: IpAddr) -> Http1 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap_or_else(|e| panic!("bind {from}: {e}"));
    let tcp = guard(socket.connect(addr)).await.unwrap();
    let tls = connector(ca, Alpn::Http11, None);
    let tls = guard(tls.connect(ServerName::try_from("localhost").unwrap(), tcp)).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// A Connect unary call (JSON) on `sender`.
async fn connect_call(sender: &mut Http1, n: u8) -> Answer {
    let mut req = http::Request::post(UNARY)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"responseSize":1}"#)))
        .unwrap();
    for (name, value) in forwarded(n) {
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    guard(sender.ready()).await.unwrap();
    let resp = guard(sender.send_request(req)).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = guard(body.collect()).await.unwrap().to_bytes();
    if parts.status == 200 {
        return Answer { ok: true, code: "ok".into(), message: String::new(), retry_after: None };
    }
    assert_eq!(parts.status, 429, "{:?}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    Answer {
        ok: false,
        code: json["code"].as_str().unwrap_or_default().to_string(),
        message: json["message"].as_str().unwrap_or_default().to_string(),
        retry_after: parts.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string),
    }
}

#[tokio::test]
async fn the_per_address_rate_limit_holds_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.server().write(dir.path(), "server");
    let mut rates = RateOptions::default();
    rates.per_address = Some(Rate { per_second: 1.try_into().unwrap(), burst: 2.try_into().unwrap() });
    let server =
        super::start_with(TlsConfig::files(cert, key), Config::default(), |b| b.layer(RateLayer::new(rates)).build())
            .await;
    let (one, two) = (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    // Every connection first, so that the calls below follow each other closely.
    let mut grpc = grpc_from(server.addr, &ca, one).await;
    let mut connect = connect_from(server.addr, &ca, one).await;
    let mut grpc_two = grpc_from(server.addr, &ca, two).await;
    let mut connect_two = connect_from(server.addr, &ca, two).await;

    // 127.0.0.1's burst of two, spent on both protocols; every call claims to be someone else.
    assert!(grpc_call(&mut grpc, 1).await.ok);
    assert!(connect_call(&mut connect, 2).await.ok);
    let refused_grpc = grpc_call(&mut grpc, 3).await;
    refused_grpc.assert_refused("native gRPC over TLS", "ResourceExhausted");
    let refused_connect = connect_call(&mut connect, 4).await;
    refused_connect.assert_refused("Connect over TLS", "resource_exhausted");

    // Another peer address has its own quota.
    assert!(grpc_call(&mut grpc_two, 5).await.ok, "127.0.0.2 was refused for 127.0.0.1's calls");
    assert!(connect_call(&mut connect_two, 6).await.ok, "127.0.0.2 was refused for 127.0.0.1's calls");

    // Waiting as the hint says, 127.0.0.1 is served again on both (a call's worth a second:
    // the second protocol may be told to wait once more).
    tokio::time::sleep(refused_grpc.retry_in().max(refused_connect.retry_in())).await;
    assert!(grpc_call(&mut grpc, 7).await.ok, "native gRPC after the retry hint");
    let mut answer = connect_call(&mut connect, 8).await;
    if !answer.ok {
        answer.assert_refused("Connect, right after the address's next call", "resource_exhausted");
        tokio::time::sleep(answer.retry_in()).await;
        answer = connect_call(&mut connect, 9).await;
    }
    assert!(answer.ok, "Connect after the retry hint: {answer:?}");
}
