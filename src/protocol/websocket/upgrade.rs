//! The handshake: checks the path, the socket limit, the subprotocol and the origin, works
//! out the connection-level metadata, and hands the upgraded socket to a session.
//!
//! axum's `WebSocketUpgrade` does the handshake itself, over HTTP/1.1 (`GET` + `Upgrade`) and
//! HTTP/2 (RFC 8441 extended `CONNECT`) alike, with typed rejections for broken handshakes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts as _;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use tokio::sync::Semaphore;

use super::frames::{BEARER_PREFIX, SUBPROTOCOL};
use super::guards::SocketPermit;
use super::rejection::HandshakeRejection;
use super::session;
use super::settings::{OriginPolicy, SessionContext, Settings};
use crate::config::AllowedOrigins;
use crate::drain::Shutdown;
use crate::metrics::Metrics;
use crate::transcode::call::is_reserved_header;
use crate::transcode::{GrpcService, Invoker};

/// What the handshake needs, shared by every upgrade.
pub(crate) struct Endpoint<S> {
    pub invoker: Invoker<S>,
    pub settings: Settings,
    /// The gateway's socket permits (`max_sockets`).
    pub sockets: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
}

/// Serves a WebSocket upgrade request: the session on success, the rejection otherwise.
pub(crate) async fn upgrade<S: GrpcService>(endpoint: &Endpoint<S>, req: Request<Body>) -> Response<Body> {
    match accept(endpoint, req).await {
        Ok(resp) => resp,
        Err(rejection) => rejection.into_response(),
    }
}

async fn accept<S: GrpcService>(
    endpoint: &Endpoint<S>,
    req: Request<Body>,
) -> Result<Response<Body>, HandshakeRejection> {
    let settings = &endpoint.settings;
    if req.uri().path() != settings.path {
        let path = req.uri().path().to_string();
        return Err(HandshakeRejection::WrongPath { path, endpoint: settings.path.clone() });
    }
    let (mut parts, _body) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.map_err(|rejection| match rejection {
        WebSocketUpgradeRejection::InvalidWebSocketVersionHeader(_) => HandshakeRejection::Version {
            offered: parts
                .headers
                .get(header::SEC_WEBSOCKET_VERSION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            http2: parts.version >= http::Version::HTTP_2,
        },
        other => HandshakeRejection::Handshake(other),
    })?;

    let offered: Vec<&str> = ws.requested_protocols().filter_map(|p| p.to_str().ok()).collect();
    let versions: Vec<&str> = offered.iter().copied().filter(|p| !p.starts_with(BEARER_PREFIX)).collect();
    if !offered.is_empty() && !versions.contains(&SUBPROTOCOL) {
        return Err(HandshakeRejection::Subprotocol { offered: versions.iter().map(|v| v.to_string()).collect() });
    }
    let token = offered
        .iter()
        .find_map(|p| p.strip_prefix(BEARER_PREFIX))
        .map(str::to_owned)
        .or_else(|| query_token(parts.uri.query()));

    let cookies_trusted = origin_check(&parts.headers, parts.uri.authority().map(|a| a.as_str()), &settings.origins)
        .map_err(HandshakeRejection::Origin)?;
    let permit =
        SocketPermit::try_acquire(&endpoint.sockets, &endpoint.metrics).ok_or(HandshakeRejection::TooManySockets)?;
    let metadata = connection_metadata(&parts.headers, cookies_trusted, token.as_deref())?;
    let mut extensions = std::mem::take(&mut parts.extensions);
    extensions.remove::<hyper::ext::Protocol>();
    let ctx = SessionContext {
        invoker: endpoint.invoker.clone(),
        metadata,
        extensions,
        limits: settings.limits.clone(),
        shutdown: endpoint.shutdown.clone(),
    };
    let metrics = endpoint.metrics.clone();
    Ok(ws
        .protocols([SUBPROTOCOL])
        .read_buffer_size(settings.read_buffer_bytes)
        .write_buffer_size(settings.write_buffer_bytes)
        .max_message_size(settings.max_frame_bytes)
        .max_frame_size(settings.max_frame_bytes)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            session::run(sink, stream, ctx, metrics, permit).await;
        }))
}

fn query_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
}

/// Whether the upgrade's cookies may become metadata; `Err(origin)` if the origin is refused.
///
/// Browsers attach cookies to a WebSocket opened from any site, so cookies only count for a
/// request without `Origin` (not a browser), from the gateway's own origin, or from a listed
/// origin when credentials are allowed.
fn origin_check(headers: &HeaderMap, authority: Option<&str>, policy: &OriginPolicy) -> Result<bool, String> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(true) };
    let host = authority.or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    let same_origin = origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")))
        .zip(host)
        .is_some_and(|(o, h)| o.eq_ignore_ascii_case(h));
    if same_origin {
        return Ok(true);
    }
    match &policy.allowed {
        AllowedOrigins::Any => Ok(false),
        AllowedOrigins::List(list) if list.contains(origin) => Ok(policy.allow_credentials),
        AllowedOrigins::List(_) => Err(String::from_utf8_lossy(origin.as_bytes()).into_owned()),
    }
}

/// The upgrade's headers as metadata for every call: handshake headers dropped, cookies
/// only when trusted, and the bearer token (if any) as `authorization`.
fn connection_metadata(
    headers: &HeaderMap,
    cookies_trusted: bool,
    token: Option<&str>,
) -> Result<HeaderMap, HandshakeRejection> {
    // Empty until something is kept: most upgrades carry only handshake headers, and this
    // map lives as long as the socket.
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if is_reserved_header(name) || (*name == header::COOKIE && !cookies_trusted) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| HandshakeRejection::Token)?;
        out.insert(header::AUTHORIZATION, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origins() {
        let mut config = Config::default();
        let policy = |c: &Config| Settings::from_config(c).origins;
        let none = headers(&[("host", "gw:8080")]);
        assert_eq!(origin_check(&none, None, &policy(&config)), Ok(true));
        let same = headers(&[("host", "gw:8080"), ("origin", "https://GW:8080")]);
        assert_eq!(origin_check(&same, None, &policy(&config)), Ok(true));
        let h2_same = headers(&[("origin", "http://gw:8080")]);
        assert_eq!(origin_check(&h2_same, Some("gw:8080"), &policy(&config)), Ok(true));
        let other = headers(&[("host", "gw:8080"), ("origin", "https://evil.example")]);
        assert_eq!(origin_check(&other, None, &policy(&config)), Ok(false));
        config.cors.allowed_origins = AllowedOrigins::List(vec![HeaderValue::from_static("https://app.example")]);
        assert_eq!(origin_check(&other, None, &policy(&config)), Err("https://evil.example".into()));
        let listed = headers(&[("host", "gw:8080"), ("origin", "https://app.example")]);
        assert_eq!(origin_check(&listed, None, &policy(&config)), Ok(false));
        config.cors.allow_credentials = true;
        assert_eq!(origin_check(&listed, None, &policy(&config)), Ok(true));
    }

    #[test]
    fn metadata_from_the_handshake() {
        let h = headers(&[
            ("host", "gw"),
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-key", "k"),
            ("sec-websocket-protocol", "portway.v1.json, portway.bearer.secret"),
            ("cookie", "a=1"),
            ("x-team", "blue"),
            ("authorization", "Basic old"),
        ]);
        let m = connection_metadata(&h, false, Some("tok")).unwrap();
        let keys: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["x-team", "authorization"]);
        assert_eq!(m["authorization"], "Bearer tok");
        let m = connection_metadata(&h, true, None).unwrap();
        assert_eq!(m["cookie"], "a=1");
        assert_eq!(m["authorization"], "Basic old");
        assert!(matches!(connection_metadata(&h, true, Some("bad\ntoken")), Err(HandshakeRejection::Token)));
        assert_eq!(query_token(Some("a=1&access_token=x%20y")), Some("x y".into()));
        assert_eq!(query_token(Some("a=1")), None);
    }
}
