//! Protocol adapters, and the one pure function that picks which adapter serves a request.
//!
//! Each adapter is a tower service generic over the stack it calls (any
//! [`crate::transcode::GrpcService`]), built and owned by the gateway: [`connect`],
//! [`websocket`], [`web`] and [`grpc`] (gRPC-Web, and the JSON codec on gRPC and gRPC-Web);
//! native gRPC with protobuf goes to the stack as it is.

pub(crate) mod connect;
pub(crate) mod grpc;
pub(crate) mod web;
pub(crate) mod websocket;

use http::{Method, Request, header};

use crate::metrics::ProtocolLabel;

/// The wire encoding of a Connect request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Canonical protobuf JSON.
    Json,
    /// Binary protobuf.
    Proto,
}

/// The protocol a request speaks, decided from its method, headers and path alone.
///
/// The gateway puts it in every request's extensions, so a layer on the service stack can
/// label metrics or audit records by protocol (in-process calls carry it too); the stack's
/// bottom takes it out again before the request reaches the service, which never learns
/// which protocol called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// Native gRPC (`application/grpc`, `application/grpc+proto`).
    Grpc,
    /// gRPC-Web, binary or text (`application/grpc-web`, `-web+proto`, `-web-text`, `-web-text+proto`).
    GrpcWeb,
    /// Native gRPC with the JSON codec (`application/grpc+json`).
    GrpcJson,
    /// gRPC-Web with the JSON codec (`application/grpc-web+json`, `application/grpc-web-text+json`).
    GrpcWebJson,
    /// A WebSocket upgrade: HTTP/1.1 `Upgrade: websocket` (whatever the method: the
    /// handshake refuses anything but `GET` with its reason) or HTTP/2 extended CONNECT.
    WebSocket,
    /// Connect unary: `POST` with `application/json` or `application/proto`.
    ConnectUnary(Encoding),
    /// Connect streaming: `application/connect+json` or `application/connect+proto`.
    ConnectStream(Encoding),
    /// Connect unary over `GET` (`?encoding=json&message=...`), for side-effect-free methods.
    ConnectGet,
    /// A `POST` to an RPC path with a content type no adapter speaks: 415.
    UnsupportedMediaType,
    /// A request to an RPC path with an HTTP method no RPC protocol uses there (anything but
    /// `POST`, `GET`, `HEAD`, `OPTIONS` and `CONNECT`), and no gRPC content type (gRPC answers
    /// those itself): 405, with the methods the path takes in `allow`.
    MethodNotAllowed,
    /// Everything else: static files, `/healthz`, `/metrics`.
    Web,
}

impl Protocol {
    /// The `protocol` label of `portway_requests_total`.
    pub(crate) fn metrics_label(self) -> ProtocolLabel {
        match self {
            Self::Grpc | Self::GrpcJson => ProtocolLabel::Grpc,
            Self::GrpcWeb | Self::GrpcWebJson => ProtocolLabel::GrpcWeb,
            Self::WebSocket => ProtocolLabel::WebSocket,
            Self::ConnectUnary(_) | Self::ConnectStream(_) | Self::ConnectGet => ProtocolLabel::Connect,
            Self::UnsupportedMediaType | Self::MethodNotAllowed => ProtocolLabel::Unsupported,
            Self::Web => ProtocolLabel::Web,
        }
    }
}

/// Classifies a request. The most specific content type is matched first
/// (`application/grpc-web` before `application/grpc`).
pub(crate) fn classify<B>(req: &Request<B>) -> Protocol {
    if is_websocket_upgrade(req) {
        return Protocol::WebSocket;
    }
    // Compared case-insensitively in place: this runs on every request, so no lowercase copy.
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim());
    let is_post = req.method() == Method::POST;
    if let Some(ct) = content_type {
        if starts_with_ignore_case(ct, "application/grpc-web") {
            return if ends_with_ignore_case(ct, "+json") { Protocol::GrpcWebJson } else { Protocol::GrpcWeb };
        }
        if ct.eq_ignore_ascii_case("application/grpc") {
            return Protocol::Grpc;
        }
        if let Some(codec) = strip_prefix_ignore_case(ct, "application/grpc+") {
            return if codec.eq_ignore_ascii_case("json") { Protocol::GrpcJson } else { Protocol::Grpc };
        }
        if is_post {
            const CONNECT: [(&str, Protocol); 4] = [
                ("application/connect+json", Protocol::ConnectStream(Encoding::Json)),
                ("application/connect+proto", Protocol::ConnectStream(Encoding::Proto)),
                ("application/json", Protocol::ConnectUnary(Encoding::Json)),
                ("application/proto", Protocol::ConnectUnary(Encoding::Proto)),
            ];
            if let Some((_, protocol)) = CONNECT.iter().find(|(name, _)| ct.eq_ignore_ascii_case(name)) {
                return *protocol;
            }
        }
    }
    if is_rpc_path(req.uri().path()) {
        if req.method() == Method::GET
            && req.uri().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("encoding=")))
        {
            return Protocol::ConnectGet;
        }
        if is_post {
            return Protocol::UnsupportedMediaType;
        }
        // The path has the RPC form, which no static file, `/healthz` or `/metrics` has (a
        // method name has no dot): a `PUT` or a `DELETE` there is a client that got the RPC
        // protocol wrong, not a missing file. `GET` and `HEAD` stay with the web service
        // (a `GET` without Connect's query is no RPC), `OPTIONS` with CORS.
        if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::CONNECT) {
            return Protocol::MethodNotAllowed;
        }
    }
    Protocol::Web
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if starts_with_ignore_case(s, prefix) { s.get(prefix.len()..) } else { None }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len() && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// `/pkg.Service/Method`: two segments, a dotted service name, a method with no dot.
fn is_rpc_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else { return false };
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(service), Some(method), None) => {
            service.contains('.') && !method.is_empty() && !method.contains('.') && !service.starts_with('.')
        }
        _ => false,
    }
}

fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    if req.method() == Method::CONNECT {
        // RFC 8441: HTTP/2 extended CONNECT with `:protocol = websocket`.
        return req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    }
    // Any method: a `POST` with upgrade headers is a broken handshake, answered by the
    // handshake with its reason rather than by the static files with a bare 405.
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, ct: Option<&str>) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(ct) = ct {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn table() {
        use Encoding::*;
        use Protocol::*;
        let rpc = "/grpc.testing.TestService/UnaryCall";
        let cases: &[(&str, &str, Option<&str>, Protocol)] = &[
            ("POST", rpc, Some("application/grpc"), Grpc),
            ("POST", rpc, Some("application/grpc+proto"), Grpc),
            ("POST", rpc, Some("Application/GRPC"), Grpc),
            ("POST", rpc, Some("application/grpc-web"), GrpcWeb),
            ("POST", rpc, Some("application/grpc-web+proto"), GrpcWeb),
            ("POST", rpc, Some("application/grpc-web-text"), GrpcWeb),
            ("POST", rpc, Some("application/grpc-web-text+proto"), GrpcWeb),
            ("POST", rpc, Some("application/grpc-web+json"), GrpcWebJson),
            ("POST", rpc, Some("application/grpc-web-text+json"), GrpcWebJson),
            ("POST", rpc, Some("Application/gRPC-Web+JSON; charset=utf-8"), GrpcWebJson),
            ("POST", rpc, Some("application/grpc+json"), GrpcJson),
            ("POST", rpc, Some("application/GRPC+Json"), GrpcJson),
            ("POST", rpc, Some("application/grpc+thrift"), Grpc),
            ("GET", rpc, Some("application/grpc"), Grpc),
            ("PUT", rpc, Some("application/grpc+json"), GrpcJson),
            ("POST", rpc, Some("application/json"), ConnectUnary(Json)),
            ("POST", rpc, Some("application/json; charset=utf-8"), ConnectUnary(Json)),
            ("POST", rpc, Some("application/proto"), ConnectUnary(Proto)),
            ("POST", rpc, Some("application/connect+json"), ConnectStream(Json)),
            ("POST", rpc, Some("application/connect+proto"), ConnectStream(Proto)),
            ("POST", rpc, Some("Application/gRPC-Web-Text"), GrpcWeb),
            ("POST", rpc, Some("APPLICATION/GRPC+PROTO"), Grpc),
            ("POST", rpc, Some("Application/JSON"), ConnectUnary(Json)),
            ("POST", rpc, Some("application/Connect+JSON; charset=utf-8"), ConnectStream(Json)),
            ("POST", rpc, Some("application/gr"), UnsupportedMediaType),
            ("POST", rpc, Some("text/plain"), UnsupportedMediaType),
            ("POST", rpc, None, UnsupportedMediaType),
            ("POST", "/grpc.testing.TestService/UnaryCall", Some("application/grpcx"), UnsupportedMediaType),
            ("GET", &format!("{rpc}?encoding=json&message=%7B%7D"), None, ConnectGet),
            ("GET", rpc, None, Web),
            ("GET", "/", None, Web),
            ("GET", "/index.html", None, Web),
            ("GET", "/healthz", None, Web),
            ("POST", "/assets/app.js", Some("text/plain"), Web),
            ("POST", "/upload", Some("application/json"), ConnectUnary(Json)),
            ("PUT", rpc, Some("application/json"), MethodNotAllowed),
            ("PATCH", rpc, Some("application/proto"), MethodNotAllowed),
            ("DELETE", rpc, Some("application/connect+json"), MethodNotAllowed),
            ("TRACE", rpc, None, MethodNotAllowed),
            ("BREW", rpc, Some("application/json"), MethodNotAllowed),
            ("PUT", "/no.Such/Method", None, MethodNotAllowed),
            ("HEAD", rpc, None, Web),
            ("OPTIONS", rpc, None, Web),
            ("PUT", "/healthz", None, Web),
            ("DELETE", "/", None, Web),
            ("PUT", "/assets/app.js", Some("application/json"), Web),
            ("DELETE", "/metrics", None, Web),
        ];
        for (method, path, ct, want) in cases {
            assert_eq!(classify(&req(method, path, *ct)), *want, "{method} {path} {ct:?}");
        }
    }

    #[test]
    fn websocket_upgrades() {
        let h1 = Request::builder()
            .method("GET")
            .uri("/ws")
            .header("upgrade", "WebSocket")
            .header("connection", "Upgrade")
            .body(())
            .unwrap();
        assert_eq!(classify(&h1), Protocol::WebSocket);
        let mut h2 = Request::builder().method("CONNECT").uri("/ws").body(()).unwrap();
        h2.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
        assert_eq!(classify(&h2), Protocol::WebSocket);
        let plain_connect = Request::builder().method("CONNECT").uri("/ws").body(()).unwrap();
        assert_eq!(classify(&plain_connect), Protocol::Web);
        let post = Request::builder().method("POST").uri("/ws").header("upgrade", "websocket").body(()).unwrap();
        assert_eq!(classify(&post), Protocol::WebSocket);
        let h2c = Request::builder().method("GET").uri("/").header("upgrade", "h2c").body(()).unwrap();
        assert_eq!(classify(&h2c), Protocol::Web);
    }
}
