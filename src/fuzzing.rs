//! Internals the fuzz targets (`fuzz/`) drive directly. Not API: hidden, and compiled only
//! with the `fuzzing` feature. Each function runs the crate's own code on bytes a client
//! (or a damaged disk) chose; what the public API already reaches (the gateway, the
//! framing decoder, the method table's codecs) the targets use as any embedder would.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt as _;
use prost::Message as _;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer as _, ServiceExt as _};

use crate::middleware::limit::MessageLimitLayer;
use crate::pb::portway::state::v1 as api;
use crate::services::state::OpenReport;
use crate::services::state::engine::{DedupRecord, EntryRef, EventKind, Session, SkippedRecord, Snapshot};

/// [`crate::protocol::classify`].
pub fn classify<B>(req: &Request<B>) -> crate::Protocol {
    crate::protocol::classify(req)
}

/// A WebSocket client frame as the session parses it: `Ok` with the parsed frame, printed,
/// or `Err` with what the client is told.
pub fn parse_client_frame(text: &str) -> Result<String, String> {
    use crate::protocol::websocket::frames::{ClientFrame, ParseError};
    match ClientFrame::parse(text) {
        Ok(frame) => Ok(format!("{frame:?}")),
        Err(ParseError::Malformed { id, message }) => Err(format!("malformed (id {id:?}): {message}")),
        Err(ParseError::Refused { id, status }) => Err(format!("refused {id}: {}", status.message())),
    }
}

/// The session's fast path for message frames: the call id and the message's JSON text.
pub fn canonical_message(text: &str) -> Option<(u64, &str)> {
    crate::protocol::websocket::frames::canonical_message(text)
}

/// A request body of `chunks` through the gateway's message limit: what the service reads
/// (the bytes relayed), and the error that ends it, if any.
pub async fn limit_request(max: usize, chunks: Vec<Bytes>) -> (Vec<u8>, Option<Status>) {
    let seen = Arc::new(Mutex::new((Vec::new(), None)));
    let sink = seen.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let sink = sink.clone();
        async move {
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                let mut seen = sink.lock().unwrap_or_else(|e| e.into_inner());
                match frame {
                    Ok(f) => seen.0.extend_from_slice(f.data_ref().map_or(&[][..], |d| &d[..])),
                    Err(status) => {
                        seen.1 = Some(status);
                        break;
                    }
                }
            }
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }
    });
    let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        chunks.into_iter().map(|c| Ok::<_, Status>(http_body::Frame::data(c))),
    )));
    let Ok(_) =
        MessageLimitLayer::new(max, crate::transcode::SharedMethods::new(crate::transcode::MethodTable::generated()))
            .layer(service)
            .oneshot(Request::new(body))
            .await;
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    (std::mem::take(&mut seen.0), seen.1.take())
}

/// A gRPC response body of `chunks` (then OK trailers) through the gateway's message
/// limit: the bytes relayed to the client and the trailers that end them.
pub async fn limit_response(max: usize, chunks: Vec<Bytes>) -> (Vec<u8>, Option<HeaderMap>) {
    let service = tower::service_fn(move |_req: Request<Body>| {
        let mut frames: Vec<Result<http_body::Frame<Bytes>, Status>> =
            chunks.clone().into_iter().map(|c| Ok(http_body::Frame::data(c))).collect();
        let mut ok = HeaderMap::new();
        ok.insert("grpc-status", HeaderValue::from_static("0"));
        frames.push(Ok(http_body::Frame::trailers(ok)));
        let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(frames)));
        let mut resp = Response::new(body);
        resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        async move { Ok::<_, Infallible>(resp) }
    });
    let Ok(resp) =
        MessageLimitLayer::new(max, crate::transcode::SharedMethods::new(crate::transcode::MethodTable::generated()))
            .layer(service)
            .oneshot(Request::new(Body::empty()))
            .await;
    let mut body = resp.into_body();
    let (mut data, mut trailers) = (Vec::new(), None);
    while let Some(Ok(frame)) = body.frame().await {
        match frame.into_data() {
            Ok(d) => data.extend_from_slice(&d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    (data, trailers)
}

/// What a state store's tables hold, as raw bytes, for [`load_state`].
#[derive(Debug, Default)]
pub struct StoredTables {
    /// `meta`: the revision and the compaction revision.
    pub revision: i64,
    pub compact_revision: i64,
    /// `log`: revision → a revision record.
    pub log: Vec<(i64, Vec<u8>)>,
    /// `kv`: key → an `Entry`.
    pub kv: Vec<(String, Vec<u8>)>,
    /// `dedup`: (session, sequence) → a write's outcome.
    pub dedup: Vec<(String, u64, Vec<u8>)>,
}

/// Opens a store from `tables` as the durable backend reads them back (the glue of
/// `RedbBackend::load`, around the backend's own record decoder): every record decoded or
/// reported and skipped, the committed state built and screened, then read as clients
/// would (every key, every retained revision, the log); returns the report and the keys.
pub fn load_state(tables: StoredTables) -> (OpenReport, Vec<String>) {
    let mut skipped = Vec::new();
    let mut latest: HashMap<String, (EventKind, EntryRef)> = HashMap::new();
    let mut records = Vec::new();
    let mut log = tables.log;
    log.sort_by_key(|(at, _)| *at);
    log.dedup_by_key(|(at, _)| *at);
    for (at, bytes) in log {
        if at <= tables.compact_revision {
            continue;
        }
        match crate::services::state::backend::decode_record(at, &bytes, &latest) {
            Ok(record) => {
                for e in &record.events {
                    latest.insert(e.entry.key.clone(), (e.kind, e.entry.clone()));
                }
                records.push(Arc::new(record));
            }
            Err(problem) => skipped.push(SkippedRecord { record: format!("log {at}"), problem }),
        }
    }
    let mut entries: Vec<EntryRef> = Vec::new();
    let mut kv = tables.kv;
    kv.sort_by(|a, b| a.0.cmp(&b.0));
    kv.dedup_by(|a, b| a.0 == b.0);
    for (key, bytes) in kv {
        match api::Entry::decode(bytes.as_slice()) {
            Ok(e) if e.key == key => entries.push(Arc::new(e)),
            Ok(_) | Err(_) => skipped.push(SkippedRecord { record: format!("kv {key:?}"), problem: "bad".into() }),
        }
    }
    let mut sessions: HashMap<String, Session> = HashMap::new();
    for (session, seq, bytes) in tables.dedup {
        if let Ok(rec) = DedupRecord::decode(bytes.as_slice()) {
            sessions.entry(session).or_default().records.insert(seq, rec);
        }
    }
    let snapshot = Snapshot {
        revision: tables.revision,
        compact_revision: tables.compact_revision,
        entries,
        records,
        sessions,
        skipped,
        notes: Vec::new(),
    };
    let (state, report) = crate::services::state::load_snapshot(snapshot);
    let mut keys = Vec::new();
    for at in [0, state.compact_revision().saturating_add(1), state.revision()] {
        if let Ok(page) = state.list("", "", at, 100_000) {
            for e in &page.entries {
                let _ = state.get(&e.key, at);
                keys.push(e.key.clone());
            }
        }
    }
    let _ = state.records(state.compact_revision().saturating_add(1), state.revision(), 100_000);
    (report, keys)
}

/// The `grpc-timeout` parser every protocol's deadline goes through.
pub fn parse_grpc_timeout(value: &str) -> Option<std::time::Duration> {
    crate::transcode::timeout::parse_grpc_timeout(value)
}

/// How an adapter writes a deadline as `grpc-timeout`.
pub fn format_grpc_timeout(d: std::time::Duration) -> String {
    crate::transcode::timeout::format_grpc_timeout(d)
}
