//! The demo page, embedded in the binary: the files of `web/` and the ES modules of the npm
//! packages it loads (under `/vendor/`), gathered at build time by `build/web_assets.rs`, and
//! the descriptor set of every compiled proto at `/portway.binpb`, from which the page builds
//! its message types at run time (protobuf-es), so no generated code is served.
//!
//! With [`Config::web_root`] set, that directory is served at `/` instead of the demo's own
//! files; `/vendor/` and `/portway.binpb` still come from the binary, so a page being edited
//! in place (`--web-dir web`) finds its libraries.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use crate::config::Config;

#[derive(rust_embed::Embed)]
#[folder = "$OUT_DIR/web"]
struct Assets;

/// The path of the encoded `FileDescriptorSet` (see [`crate::pb::FILE_DESCRIPTOR_SET`]).
pub const DESCRIPTOR_PATH: &str = "/portway.binpb";

/// Paths always served from the binary, even with a web root.
const VENDOR_PREFIX: &str = "/vendor/";

/// What `/` serves, or `None` for nothing (then only `/healthz` and `/metrics` answer).
pub fn service(config: &Config) -> Option<Router> {
    let files = Files { dir: config.web_root.as_deref().map(dir_service), demo: config.demo };
    (files.dir.is_some() || files.demo).then(|| Router::new().fallback(serve).with_state(Arc::new(files)))
}

struct Files {
    dir: Option<ServeDir>,
    demo: bool,
}

// ServeDir never lists directories and refuses paths that escape the root.
fn dir_service(root: &Path) -> ServeDir {
    ServeDir::new(root).append_index_html_on_directories(true)
}

async fn serve(State(files): State<Arc<Files>>, req: Request) -> Response {
    let path = req.uri().path();
    let from_binary = files.demo && (path.starts_with(VENDOR_PREFIX) || path == DESCRIPTOR_PATH);
    if let (Some(dir), false) = (&files.dir, from_binary) {
        return match dir.clone().oneshot(req).await {
            Ok(resp) => resp.into_response(),
            Err(never) => match never {},
        };
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = (StatusCode::METHOD_NOT_ALLOWED, "static files answer GET and HEAD only\n").into_response();
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let (bytes, content_type, etag) = if path == DESCRIPTOR_PATH {
        (std::borrow::Cow::Borrowed(crate::pb::FILE_DESCRIPTOR_SET), "application/octet-stream", descriptor_etag())
    } else {
        let name = path.trim_start_matches('/');
        let name = if name.is_empty() || name.ends_with('/') { format!("{name}index.html") } else { name.to_string() };
        let Some(file) = Assets::get(&name) else {
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        };
        let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
        (file.data, mime_type(&name), etag)
    };
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if req.method() == Method::HEAD {
        let mut r = Response::new(Body::empty());
        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        r
    } else {
        Response::new(Body::from(bytes.into_owned()))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidate every time (cheap: a 304), so a new binary's page is never mixed with an
    // old cached library.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

fn mime_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn descriptor_etag() -> String {
    // FNV-1a: the descriptor is a constant of the build; any stable digest of it will do.
    let hash = crate::pb::FILE_DESCRIPTOR_SET
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("\"{hash:016x}\"")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
