//! Mutual TLS: a client certificate from the configured CA is accepted and its identity
//! reaches the stack; no certificate, or one from another CA, is refused in the handshake;
//! with `ClientAuth::Optional` a client without one is served. The client's TCP address is
//! there too, as on cleartext connections.

use http::HeaderValue;
use portway::config::{ClientAuth, Config, TlsConfig};
use portway::tls::ClientIdentity;
use tonic::transport::server::TcpConnectInfo;
use tower::util::MapRequestLayer;

use super::clients::{Alpn, connector, handshake, tonic_channel};
use super::common::http::guard;
use super::pki::Ca;
use super::{TlsServer, start_with, unary};

/// A server that asks for client certificates from `client_ca`, and puts the common name of
/// the client's certificate into `x-grpc-test-echo-initial`, which the interop service
/// echoes: the identity, as a layer on the stack sees it, comes back in the answer.
async fn start_mtls(server_ca: &Ca, client_ca: &Ca, auth: ClientAuth, dir: &std::path::Path) -> TlsServer {
    let (cert, key) = server_ca.server().write(dir, "server");
    let mut tls = TlsConfig::files(cert, key);
    tls.client_ca = Some(client_ca.write(dir, "clients.pem"));
    tls.client_auth = auth;
    let echo_identity = MapRequestLayer::new(|mut req: http::Request<tonic::body::Body>| {
        let cn = req.extensions().get::<ClientIdentity>().and_then(|id| id.common_name().map(str::to_string));
        // The client's address, where layers that read it from TCP (the rate limit) find it.
        let tcp = req.extensions().get::<TcpConnectInfo>().and_then(|i| i.remote_addr).is_some();
        let value = HeaderValue::from_str(&format!("{} tcp={tcp}", cn.as_deref().unwrap_or("none"))).unwrap();
        req.headers_mut().insert("x-grpc-test-echo-initial", value);
        req
    });
    start_with(tls, Config::default(), |b| b.layer(echo_identity).build()).await
}

/// The echoed identity of one unary call.
async fn identity_seen(channel: tonic::transport::Channel) -> Result<String, tonic::Status> {
    let mut client = portway::pb::grpc::testing::test_service_client::TestServiceClient::new(channel);
    let resp = client.unary_call(portway::pb::grpc::testing::SimpleRequest::default()).await?;
    Ok(resp.metadata().get("x-grpc-test-echo-initial").unwrap().to_str().unwrap().to_string())
}

#[tokio::test]
async fn a_client_certificate_is_required_and_its_identity_reaches_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca, stranger_ca) = (Ca::new("server CA"), Ca::new("client CA"), Ca::new("other CA"));
    let server = start_mtls(&server_ca, &client_ca, ClientAuth::Required, dir.path()).await;

    let worker = client_ca.client("worker-1");
    let channel = guard(tonic_channel(server.addr, &server_ca.pem, Some(&worker))).await.unwrap();
    assert_eq!(guard(identity_seen(channel)).await.unwrap(), "worker-1 tcp=true");

    // No certificate: the handshake fails (TLS 1.3 tells the client at its first read).
    let refused = |channel: Result<tonic::transport::Channel, tonic::transport::Error>| async move {
        match channel {
            Err(_) => true,
            Ok(channel) => unary(channel, 1).await.is_err(),
        }
    };
    assert!(guard(refused(tonic_channel(server.addr, &server_ca.pem, None).await)).await, "no certificate");
    let stranger = stranger_ca.client("stranger");
    let attempt = tonic_channel(server.addr, &server_ca.pem, Some(&stranger)).await;
    assert!(guard(refused(attempt)).await, "a certificate from another CA");
    // The same with rustls directly: the handshake, or the first read after it, fails.
    for identity in [None, Some(&stranger)] {
        let outcome = guard(async {
            let mut tls = handshake(server.addr, &connector(&server_ca, Alpn::Http11, identity)).await?;
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await?;
            let mut buf = [0u8; 64];
            match tls.read(&mut buf).await? {
                0 => Err(std::io::Error::other("closed")),
                _ => Ok(()),
            }
        })
        .await;
        assert!(outcome.is_err(), "served without a valid client certificate ({})", identity.is_some());
    }
    let metrics = server.metrics.clone();
    super::eventually("the failed handshakes are counted", move || {
        metrics.connection_events.tls_handshake_failures() >= 4
    })
    .await;
}

#[tokio::test]
async fn an_optional_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let server = start_mtls(&server_ca, &client_ca, ClientAuth::Optional, dir.path()).await;
    let channel = guard(tonic_channel(server.addr, &server_ca.pem, None)).await.unwrap();
    assert_eq!(guard(identity_seen(channel)).await.unwrap(), "none tcp=true");
    let worker = client_ca.client("worker-2");
    let channel = guard(tonic_channel(server.addr, &server_ca.pem, Some(&worker))).await.unwrap();
    assert_eq!(guard(identity_seen(channel)).await.unwrap(), "worker-2 tcp=true");
}
