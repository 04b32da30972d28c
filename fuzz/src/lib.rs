//! What the fuzz targets share: splitting an input into body chunks, and one gateway (the
//! interop service and the state store, in memory) served in-process on one runtime.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// The message limit of the fuzzed gateway: small, so that the limit paths are reached.
pub const LIMIT: usize = 4096;

/// A fuzz input in the targets' simple layout, so that seeds can be written by hand:
/// `head` fixed bytes (the target's choices), one byte `n`, `n` cut points (see
/// [`chunks`]), then the body.
pub struct Input<'a> {
    pub head: &'a [u8],
    pub body: Vec<Bytes>,
    pub raw_body: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn parse(data: &'a [u8], head: usize) -> Option<Self> {
        let (head, rest) = data.split_at_checked(head)?;
        let (&n, rest) = rest.split_first()?;
        let (cuts, raw_body) = rest.split_at_checked(usize::from(n).min(rest.len()))?;
        Some(Self { head, body: chunks(cuts, raw_body), raw_body })
    }
}

/// Splits `data` into chunks at the cut points `cuts` names (each byte a chunk length, 0
/// meaning "the rest"), as a network would deliver a body.
pub fn chunks(cuts: &[u8], data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut rest = data;
    for &c in cuts {
        if rest.is_empty() {
            break;
        }
        let n = if c == 0 { rest.len() } else { usize::from(c).min(rest.len()) };
        out.push(Bytes::copy_from_slice(&rest[..n]));
        rest = &rest[n..];
    }
    if !rest.is_empty() {
        out.push(Bytes::copy_from_slice(rest));
    }
    out
}

/// One current-thread runtime for the whole fuzzing process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"))
}

fn gateway() -> &'static portway::Gateway {
    static GW: OnceLock<portway::Gateway> = OnceLock::new();
    GW.get_or_init(|| {
        runtime().block_on(async {
            let mut options = portway::services::ServiceOptions::default();
            options.interop = true;
            options.max_message_bytes = LIMIT;
            options.state = portway::services::state::StateOptions::memory();
            let mounted = portway::services::mount(&options).await.expect("mount");
            let mut config = portway::Config::default();
            config.max_message_bytes = LIMIT;
            portway::Gateway::builder(mounted.routes).config(config).build()
        })
    })
}

/// A response read to its end.
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
}

/// Serves `req` (its body sent as `body` chunks) through the gateway, in-process, and reads
/// the whole response. Every call must end: one that takes two seconds is a hang. (A client
/// may ask a service to take its time, `intervalUs`; the targets send a deadline of 100 ms.)
pub fn call(req: http::request::Builder, body: Vec<Bytes>) -> Reply {
    let frames = body.into_iter().map(|b| Ok::<_, Infallible>(http_body::Frame::data(b)));
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let req: Request<_> = req.body(body).expect("a request");
    // Built (on the runtime) before the call's own `block_on`: a runtime cannot be entered
    // from inside itself.
    let gateway = gateway().clone();
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(2), async {
            let Ok(resp): Result<Response<_>, Infallible> = gateway.into_service().oneshot(req).await;
            let (parts, body) = resp.into_parts();
            let collected = body.collect().await.expect("the gateway's response body does not fail");
            let trailers = collected.trailers().cloned();
            Reply { status: parts.status, headers: parts.headers, body: collected.to_bytes().to_vec(), trailers }
        })
        .await
        .expect("the call ended within two seconds")
    })
}
