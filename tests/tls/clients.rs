//! TLS clients: rustls with a chosen ALPN offer (and optionally a client certificate), a tonic
//! channel over TLS, and curl.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, ServerName, pem::PemObject as _};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::pki::{Ca, Leaf};

/// What a client offers in ALPN.
#[derive(Debug, Clone, Copy)]
pub enum Alpn {
    Both,
    H2,
    Http11,
    None,
}

/// A rustls connector that trusts `ca`, offers `alpn` and presents `identity` if given.
pub fn connector(ca: &Ca, alpn: Alpn, identity: Option<&Leaf>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(leaf.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = match alpn {
        Alpn::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::H2 => vec![b"h2".to_vec()],
        Alpn::Http11 => vec![b"http/1.1".to_vec()],
        Alpn::None => vec![],
    };
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` as `localhost`.
pub async fn handshake(addr: SocketAddr, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// A tonic channel to `https://localhost:PORT` (resolved to `addr`) that trusts `ca_pem`
/// and presents `identity` if given.
pub async fn tonic_channel(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<&Leaf>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    Endpoint::from_shared(format!("https://127.0.0.1:{}", addr.port())).unwrap().tls_config(tls)?.connect().await
}

/// Runs `curl` against `https://localhost:PORT{path}` (resolved to `addr`), trusting
/// `ca_file`, with `args`; returns its standard output. curl must be installed (.ci/run
/// installs it).
pub async fn curl(addr: SocketAddr, ca_file: &Path, args: &[&str], path: &str) -> String {
    let port = addr.port();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca_file)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(args)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .await
        .expect("curl is installed (apt-get install curl)");
    assert!(out.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
