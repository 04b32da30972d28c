//! The classifier: any method, path, content type, upgrade header and version. It must
//! never panic, and its answer must follow the documented order (docs/architecture.md).
//!
//! Input: lines `method`, `path`, `content-type`, `upgrade`, `version` (`2` for HTTP/2),
//! `:protocol`; `-` for a header left out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portway::Protocol;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut field = || lines.next().filter(|l| *l != "-");
    let (method, path, content_type, upgrade, version, protocol) =
        (field(), field(), field(), field(), field(), field());
    let mut req = http::Request::builder().method(method.unwrap_or("GET")).uri(path.unwrap_or("/"));
    if let Some(ct) = content_type {
        req = req.header(http::header::CONTENT_TYPE, ct);
    }
    if let Some(up) = upgrade {
        req = req.header(http::header::UPGRADE, up);
    }
    if version == Some("2") {
        req = req.version(http::Version::HTTP_2);
    }
    let Ok(mut req) = req.body(()) else { return };
    if let Some(p) = protocol {
        req.extensions_mut().insert(hyper::ext::Protocol::from(p));
    }
    let got = portway::__fuzz::classify(&req);
    if got == Protocol::WebSocket {
        return;
    }
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match ct.as_deref() {
        // `+json` is the same protocol with the JSON codec.
        Some(ct) if ct.starts_with("application/grpc-web") => {
            assert_eq!(got, if ct.ends_with("+json") { Protocol::GrpcWebJson } else { Protocol::GrpcWeb });
        }
        Some(ct) if ct == "application/grpc" || ct.starts_with("application/grpc+") => {
            assert_eq!(got, if ct == "application/grpc+json" { Protocol::GrpcJson } else { Protocol::Grpc });
        }
        _ => assert!(
            !matches!(got, Protocol::Grpc | Protocol::GrpcWeb | Protocol::GrpcJson | Protocol::GrpcWebJson),
            "{got:?} without a gRPC content type"
        ),
    }
    if got == Protocol::MethodNotAllowed {
        use http::Method;
        let method = req.method();
        assert!(![Method::POST, Method::GET, Method::HEAD, Method::OPTIONS, Method::CONNECT].contains(method));
    }
    if req.method() != http::Method::POST {
        assert!(!matches!(
            got,
            Protocol::ConnectUnary(_) | Protocol::ConnectStream(_) | Protocol::UnsupportedMediaType
        ));
    }
});
