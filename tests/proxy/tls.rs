//! An upstream behind TLS (`https://`), its certificate signed by a CA given with
//! `--upstream-ca`; without that CA the certificate is refused, and portway says so.

use crate::binary::{Binary, buf_curl};
use crate::upstream::{Lang, Upstream};

/// A CA and a certificate for `localhost` signed by it, as PEM files in `dir`:
/// (ca.pem, cert.pem, key.pem).
fn certificates(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "portway test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    let paths = ["ca.pem", "cert.pem", "key.pem"].map(|n| dir.join(n));
    std::fs::write(&paths[0], ca_cert.pem()).expect("write");
    std::fs::write(&paths[1], cert.pem()).expect("write");
    std::fs::write(&paths[2], key.serialize_pem()).expect("write");
    paths
}

#[tokio::test]
async fn an_https_upstream_with_its_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [ca, cert, key] = certificates(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let up = Upstream::start(Lang::Python, &["--tls-cert", &cert, "--tls-key", &key]).await;
    let url = format!("https://localhost:{}", up.port());
    let portway =
        Binary::start(&["--upstream", &format!("secure={url}"), "--upstream-ca", &format!("secure={}", ca.display())])
            .await;
    let say = format!("{}/portway.upstream.Echo/Say", portway.url());
    let (ok, out) = buf_curl(&["--protocol", "connect", "-d", r#"{"text":"over TLS"}"#, &say]).await;
    assert!(ok && out.contains(r#""text": "over TLS""#), "{out}");

    // The system's roots do not know this CA.
    let err = Binary::run(&["--upstream", &url]).await.err().expect("refused");
    assert!(err.contains(&format!("upstream {url}: it is unavailable")) && err.contains("certificate"), "{err}");
}
