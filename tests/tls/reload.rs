//! The real binary: the certificate files read again on SIGHUP while calls are running (open
//! connections and their streams carry on, new handshakes get the new certificate, a file
//! that cannot be used keeps the old one), and `--tls-self-signed` logging the fingerprint of
//! the certificate it serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use portway::pb::grpc::testing::test_service_client::TestServiceClient;
use portway::pb::grpc::testing::{ResponseParameters, StreamingOutputCallRequest};
use rustix::process::Signal;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::clients::tonic_channel;
use super::common::http::guard;
use super::common::logged::Logged;
use super::pki::Ca;
use super::unary;

/// One exchange on a bidi stream: a request for `size` bytes, and its answer.
fn ask(size: i32) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters { size, ..Default::default() }],
        ..Default::default()
    }
}

/// Waits for `n` more calls to succeed.
async fn progress(ok: &AtomicU64, n: u64) {
    let target = ok.load(Ordering::Relaxed) + n;
    guard(async {
        while ok.load(Ordering::Relaxed) < target {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let (cert, key) = old_ca.server().write(dir.path(), "server");
    let (cert, key) = (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string());
    let mut portway =
        Logged::start(&["--interop", "--storage", "memory", "--tls-cert", &cert, "--tls-key", &key]).await;
    let addr = portway.addr;

    // Traffic on one connection: unary calls in a loop, and a bidi stream held open.
    let channel = guard(tonic_channel(addr, &old_ca.pem, None)).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut client = TestServiceClient::new(channel.clone());
    tx.send(ask(5)).await.unwrap();
    let mut stream =
        guard(client.full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(rx))).await.unwrap().into_inner();
    assert_eq!(guard(stream.message()).await.unwrap().unwrap().payload.unwrap().body.len(), 5);
    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = tokio::spawn({
        let (stop, ok, failed, channel) = (stop.clone(), ok.clone(), failed.clone(), channel.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                match unary(channel.clone(), 100).await {
                    Ok(100) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    });
    progress(&ok, 20).await;

    // The renewal: new files in place (renamed over the old ones), then SIGHUP.
    new_ca.server().write(dir.path(), "server");
    portway.signal(Signal::HUP);
    let line = portway.wait_for("TLS certificate reloaded").await;
    assert!(line.contains("fingerprint="), "{line}");

    // New handshakes get the new certificate: trusted by the new CA, not by the old one.
    let fresh = guard(tonic_channel(addr, &new_ca.pem, None)).await.unwrap();
    assert_eq!(guard(unary(fresh, 7)).await.unwrap(), 7);
    let stale = guard(tonic_channel(addr, &old_ca.pem, None)).await;
    let refused = match stale {
        Err(_) => true,
        Ok(channel) => guard(unary(channel, 1)).await.is_err(),
    };
    assert!(refused, "a client that trusts only the old CA is refused after the reload");

    // The open connection kept its session: the stream and the unary calls carry on.
    progress(&ok, 20).await;
    tx.send(ask(9)).await.unwrap();
    assert_eq!(guard(stream.message()).await.unwrap().unwrap().payload.unwrap().body.len(), 9);

    // A renewal gone wrong: the old (new) certificate stays, with a sentence in the log.
    std::fs::write(&cert, "not a certificate").unwrap();
    portway.signal(Signal::HUP);
    let line = portway.wait_for("TLS certificate not reloaded").await;
    assert!(line.contains("holds no certificate"), "{line}");
    let fresh = guard(tonic_channel(addr, &new_ca.pem, None)).await.unwrap();
    assert_eq!(guard(unary(fresh, 3)).await.unwrap(), 3);

    stop.store(true, Ordering::Relaxed);
    guard(traffic).await.unwrap();
    drop(tx);
    assert!(guard(stream.message()).await.unwrap().is_none(), "the stream ends cleanly");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no call failed across the reloads");
}

/// Accepts any server certificate and keeps it, to compare with the logged fingerprint.
#[derive(Debug)]
struct Keep(std::sync::Mutex<Option<CertificateDer<'static>>>, Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Keep {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.1.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.1.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
async fn self_signed_logs_the_fingerprint_it_serves() {
    let portway = Logged::start(&["--interop", "--storage", "memory", "--tls-self-signed"]).await;
    let line = portway.logged("TLS ready").expect("the TLS line is logged before the address").to_string();
    let logged = line.split("fingerprint=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
    let listening = portway.logged("portway listening").unwrap();
    assert!(listening.contains("url=https://"), "{listening}");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let keep = Arc::new(Keep(std::sync::Mutex::new(None), provider.clone()));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(keep.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = guard(super::clients::handshake(portway.addr, &connector)).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let served = keep.0.lock().unwrap().clone().expect("the server's certificate");
    let digest = ring::digest::digest(&ring::digest::SHA256, &served);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(logged, hex.join(":"), "{line}");
}
