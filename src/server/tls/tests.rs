use std::path::Path;

use rcgen::{CertificateParams, DnType, Issuer, KeyPair, SanType};

use super::*;

/// Writes `contents` to `name` in `dir`, returning the path.
fn write(dir: &Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn cert_and_key(names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn loads_files_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_and_key(&["example.test"]);
    let (_, other_key) = cert_and_key(&["example.test"]);
    let chain = write(dir.path(), "chain.pem", &cert);
    let key_path = write(dir.path(), "key.pem", &key);
    let tls = Tls::load(&TlsConfig::files(&chain, &key_path)).unwrap();
    assert_eq!(tls.fingerprint().len(), 95, "32 bytes as AB:CD:…");
    assert!(tls.summary().contains("example.test"), "{}", tls.summary());

    let missing = dir.path().join("missing.pem");
    let e = Tls::load(&TlsConfig::files(&missing, &key_path)).unwrap_err();
    assert!(e.to_string().starts_with(&format!("cannot read {}", missing.display())), "{e}");
    let e = Tls::load(&TlsConfig::files(&key_path, &key_path)).unwrap_err();
    assert!(e.to_string().contains("holds no certificate"), "{e}");
    let e = Tls::load(&TlsConfig::files(&chain, &chain)).unwrap_err();
    assert!(e.to_string().contains("holds no private key"), "{e}");
    let other = write(dir.path(), "other-key.pem", &other_key);
    let e = Tls::load(&TlsConfig::files(&chain, &other)).unwrap_err();
    assert!(e.to_string().contains("cannot be used together"), "{e}");
    let garbage =
        write(dir.path(), "garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
    let e = Tls::load(&TlsConfig::files(&garbage, &key_path)).unwrap_err();
    assert!(e.to_string().contains("not a valid PEM file"), "{e}");

    let mut config = TlsConfig::files(&chain, &key_path);
    config.client_ca = Some(key_path.clone());
    let e = Tls::load(&config).unwrap_err();
    assert!(e.to_string().contains("the client CA file") && e.to_string().contains("no certificate"), "{e}");
}

#[test]
fn a_failed_reload_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_and_key(&["one.test"]);
    let chain = write(dir.path(), "chain.pem", &cert);
    let key_path = write(dir.path(), "key.pem", &key);
    let tls = Tls::load(&TlsConfig::files(&chain, &key_path)).unwrap();
    let before = tls.fingerprint();
    std::fs::write(&chain, "not a certificate").unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(tls.fingerprint(), before, "the old certificate stays");
    let (cert, key) = cert_and_key(&["two.test"]);
    std::fs::write(&chain, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    tls.reload().unwrap();
    assert_ne!(tls.fingerprint(), before);
    assert!(tls.summary().contains("two.test"), "{}", tls.summary());
}

#[test]
fn self_signed_covers_the_local_names() {
    let tls = Tls::load(&TlsConfig::self_signed()).unwrap();
    let summary = tls.summary();
    for name in ["localhost", "127.0.0.1", "::1"] {
        assert!(summary.contains(name), "{summary}");
    }
    let before = tls.fingerprint();
    tls.reload().unwrap();
    assert_eq!(tls.fingerprint(), before, "a reload keeps the generated certificate");
    assert_eq!(tls.acceptor().config().alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn the_identity_of_a_client_certificate() {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, ca_key);
    let mut params = CertificateParams::new(vec!["worker.example".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "worker-1");
    params.distinguished_name.push(DnType::OrganizationName, "Example");
    params.subject_alt_names.push(SanType::URI("spiffe://example/worker".try_into().unwrap()));
    params.subject_alt_names.push(SanType::Rfc822Name("ops@example.com".try_into().unwrap()));
    params.subject_alt_names.push(SanType::IpAddress("10.1.2.3".parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let id = ClientIdentity::from_certificate(cert.der()).unwrap();
    assert_eq!(id.common_name(), Some("worker-1"));
    assert!(id.subject().contains("CN=worker-1") && id.subject().contains("O=Example"), "{}", id.subject());
    assert_eq!(id.dns_names(), ["worker.example"]);
    assert_eq!(id.uris(), ["spiffe://example/worker"]);
    assert_eq!(id.emails(), ["ops@example.com"]);
    assert_eq!(id.ip_addresses(), ["10.1.2.3".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(id.certificate(), cert.der());
}
