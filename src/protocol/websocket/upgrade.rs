//! The handshake: checks the path, the socket limit, the subprotocol and the origin, works
//! out the connection-level metadata, and hands the upgraded socket to a session.
//!
//! axum's `WebSocketUpgrade` does the handshake itself, over HTTP/1.1 (`GET` + `Upgrade`) and
//! HTTP/2 (RFC 8441 extended `CONNECT`) alike, with typed rejections for broken handshakes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts as _;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::IntoResponse as _;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};

use super::frames::{BEARER_PREFIX, SUBPROTOCOL};
use super::session::{self, Limits, SessionContext, SocketSlot};
use crate::config::{AllowedOrigins, Config};
use crate::gateway::Shared;
use crate::transcode::call::is_reserved_header;

/// Serves a WebSocket upgrade request (classified as [`crate::protocol::Protocol::WebSocket`]).
pub async fn upgrade(shared: Arc<Shared>, req: Request<Body>) -> Response<Body> {
    let config = &shared.config;
    let ws_config = &config.websocket;
    if req.uri().path() != ws_config.path {
        let text = format!("no WebSocket endpoint at {}; connect to {}\n", req.uri().path(), ws_config.path);
        return plain(StatusCode::NOT_FOUND, text);
    }
    let (mut parts, _body) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };

    let offered: Vec<&str> = ws.requested_protocols().filter_map(|p| p.to_str().ok()).collect();
    let versions: Vec<&str> = offered.iter().copied().filter(|p| !p.starts_with(BEARER_PREFIX)).collect();
    if !offered.is_empty() && !versions.contains(&SUBPROTOCOL) {
        let text = format!(
            "Sec-WebSocket-Protocol offers {versions:?}; this server speaks {SUBPROTOCOL} (offer it, with \
             {BEARER_PREFIX}<token> beside it to authenticate)\n"
        );
        return plain(StatusCode::BAD_REQUEST, text);
    }
    let token = offered
        .iter()
        .find_map(|p| p.strip_prefix(BEARER_PREFIX))
        .map(str::to_owned)
        .or_else(|| query_token(parts.uri.query()));

    let cookies_trusted = match origin_check(&parts.headers, parts.uri.authority().map(|a| a.as_str()), config) {
        Ok(trusted) => trusted,
        Err(origin) => {
            return plain(StatusCode::FORBIDDEN, format!("origin {origin} may not open WebSockets here\n"));
        }
    };
    let Some(slot) = SocketSlot::try_acquire(&shared.metrics, ws_config.max_sockets) else {
        let mut resp = plain(StatusCode::SERVICE_UNAVAILABLE, "too many WebSockets open; try again later\n".into());
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };

    let metadata = match connection_metadata(&parts.headers, cookies_trusted, token.as_deref()) {
        Ok(m) => m,
        Err(text) => return plain(StatusCode::BAD_REQUEST, text),
    };
    let mut extensions = std::mem::take(&mut parts.extensions);
    extensions.remove::<hyper::ext::Protocol>();
    let limits = Limits::from_config(config);
    let frame_cap = frame_limit(config);
    let ctx = SessionContext { shared: shared.clone(), metadata, extensions, limits };
    ws.protocols([SUBPROTOCOL])
        .read_buffer_size(ws_config.read_buffer_bytes)
        .write_buffer_size(ws_config.write_buffer_bytes)
        .max_message_size(frame_cap)
        .max_frame_size(frame_cap)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            session::run(sink, stream, ctx, slot).await;
        })
}

/// The largest WebSocket frame read at all.
pub fn frame_limit(config: &Config) -> usize {
    let ws = &config.websocket;
    ws.max_frame_bytes.unwrap_or_else(|| {
        ws.max_message_bytes.unwrap_or(config.max_message_bytes).saturating_mul(2).saturating_add(64 * 1024)
    })
}

fn query_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
}

/// Whether the upgrade's cookies may become metadata; `Err(origin)` if the origin is refused.
///
/// Browsers attach cookies to a WebSocket opened from any site, so cookies only count for a
/// request without `Origin` (not a browser), from the gateway's own origin, or from a listed
/// origin when credentials are allowed.
fn origin_check(headers: &HeaderMap, authority: Option<&str>, config: &Config) -> Result<bool, String> {
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
    match &config.cors.allowed_origins {
        AllowedOrigins::Any => Ok(false),
        AllowedOrigins::List(list) if list.contains(origin) => Ok(config.cors.allow_credentials),
        AllowedOrigins::List(_) => Err(String::from_utf8_lossy(origin.as_bytes()).into_owned()),
    }
}

/// The upgrade's headers as metadata for every call: handshake headers dropped, cookies
/// only when trusted, and the bearer token (if any) as `authorization`.
fn connection_metadata(headers: &HeaderMap, cookies_trusted: bool, token: Option<&str>) -> Result<HeaderMap, String> {
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
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the bearer token has characters a header cannot carry\n".to_string())?;
        out.insert(header::AUTHORIZATION, value);
    }
    Ok(out)
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let none = headers(&[("host", "gw:8080")]);
        assert_eq!(origin_check(&none, None, &config), Ok(true));
        let same = headers(&[("host", "gw:8080"), ("origin", "https://GW:8080")]);
        assert_eq!(origin_check(&same, None, &config), Ok(true));
        let h2_same = headers(&[("origin", "http://gw:8080")]);
        assert_eq!(origin_check(&h2_same, Some("gw:8080"), &config), Ok(true));
        let other = headers(&[("host", "gw:8080"), ("origin", "https://evil.example")]);
        assert_eq!(origin_check(&other, None, &config), Ok(false));
        config.cors.allowed_origins = AllowedOrigins::List(vec![HeaderValue::from_static("https://app.example")]);
        assert_eq!(origin_check(&other, None, &config), Err("https://evil.example".into()));
        let listed = headers(&[("host", "gw:8080"), ("origin", "https://app.example")]);
        assert_eq!(origin_check(&listed, None, &config), Ok(false));
        config.cors.allow_credentials = true;
        assert_eq!(origin_check(&listed, None, &config), Ok(true));
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
        assert!(connection_metadata(&h, true, Some("bad\ntoken")).is_err());
        assert_eq!(query_token(Some("a=1&access_token=x%20y")), Some("x y".into()));
        assert_eq!(query_token(Some("a=1")), None);
    }
}
