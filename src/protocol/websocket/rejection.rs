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

fn plain(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(Body::from(text.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
