//! Why a handshake was refused: one typed rejection per reason, each with its HTTP status
//! and a sentence for the person reading it (axum's `WebSocketUpgradeRejection` is the model,
//! and wraps the refusals of the handshake itself).

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::response::IntoResponse as _;
use http::{HeaderValue, Response, StatusCode, header};

use super::frames::{BEARER_PREFIX, SUBPROTOCOL};

/// A refused WebSocket upgrade.
#[derive(Debug)]
pub(crate) enum HandshakeRejection {
    /// An upgrade to a path other than the WebSocket endpoint: 404.
    WrongPath { path: String, endpoint: String },
    /// Not a valid WebSocket handshake (wrong method, missing or bad headers): 400, 405 or
    /// 426, as axum answers it.
    Handshake(WebSocketUpgradeRejection),
    /// A `Sec-WebSocket-Version` other than 13 (`offered`), or none (`None`). RFC 6455
    /// (4.2.2): a version the server does not speak gets 426 and the versions it does in
    /// `Sec-WebSocket-Version`; a handshake without one is malformed (4.2.1), 400, with the
    /// same header to say what to send. Over HTTP/2 (RFC 8441) 400 in both cases: a 426 must
    /// name the protocol to upgrade to in `Upgrade` (RFC 9110, 15.5.22), a header HTTP/2
    /// forbids.
    Version { offered: Option<String>, http2: bool },
    /// Subprotocols offered, `portway.v1.json` not among them: 400.
    Subprotocol { offered: Vec<String> },
    /// `Origin` outside the configured origin list: 403.
    Origin(String),
    /// A bearer token a header cannot carry: 400.
    Token,
    /// Every socket permit is taken: 503 with `retry-after`.
    TooManySockets,
}

impl HandshakeRejection {
    pub(crate) fn into_response(self) -> Response<Body> {
        let (status, text) = match self {
            Self::Handshake(rejection) => return rejection.into_response(),
            Self::Version { offered, http2 } => return version_response(offered, http2),
            Self::WrongPath { path, endpoint } => {
                (StatusCode::NOT_FOUND, format!("no WebSocket endpoint at {path}; connect to {endpoint}\n"))
            }
            Self::Subprotocol { offered } => (
                StatusCode::BAD_REQUEST,
                format!(
                    "Sec-WebSocket-Protocol offers {offered:?}; this server speaks {SUBPROTOCOL} (offer it, with \
                     {BEARER_PREFIX}<token> beside it to authenticate)\n"
                ),
            ),
            Self::Origin(origin) => (StatusCode::FORBIDDEN, format!("origin {origin} may not open WebSockets here\n")),
            Self::Token => {
                (StatusCode::BAD_REQUEST, "the bearer token has characters a header cannot carry\n".to_string())
            }
            Self::TooManySockets => {
                let mut resp = plain(StatusCode::SERVICE_UNAVAILABLE, "too many WebSockets open; try again later\n");
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return resp;
            }
        };
        plain(status, text)
    }
}

/// The WebSocket version this server speaks (RFC 6455's, the only one in use).
const VERSION: &str = "13";

fn version_response(offered: Option<String>, http2: bool) -> Response<Body> {
    let (status, text) = match offered {
        Some(v) => (
            if http2 { StatusCode::BAD_REQUEST } else { StatusCode::UPGRADE_REQUIRED },
            format!("Sec-WebSocket-Version {v:?} is not spoken here; this server speaks version {VERSION}\n"),
        ),
        None => {
            (StatusCode::BAD_REQUEST, format!("the handshake has no Sec-WebSocket-Version; send version {VERSION}\n"))
        }
    };
    let mut resp = plain(status, text);
    let headers = resp.headers_mut();
    headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static(VERSION));
    if status == StatusCode::UPGRADE_REQUIRED {
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    resp
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(Body::from(text.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_version_gets_426_with_the_version_served() {
        let resp = HandshakeRejection::Version { offered: Some("8".into()), http2: false }.into_response();
        assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(resp.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(resp.headers()[header::UPGRADE], "websocket");
        assert_eq!(resp.headers()[header::CONNECTION], "upgrade");
        // No version at all is a malformed handshake; HTTP/2 cannot send `Upgrade`.
        for (offered, http2) in [(None, false), (None, true), (Some("8".to_string()), true)] {
            let resp = HandshakeRejection::Version { offered, http2 }.into_response();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            assert_eq!(resp.headers()[header::SEC_WEBSOCKET_VERSION], "13");
            assert!(!resp.headers().contains_key(header::UPGRADE));
        }
    }
}
