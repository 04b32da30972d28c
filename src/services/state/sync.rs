//! The Sync session: a bidirectional stream of idempotent writes and watches.
//!
//! Writes are queued to the store in the order they arrive (so they commit in that order)
//! and acknowledged in that order, several in flight at once (they share group commits).
//! Each watch runs in its own task and pushes its events into the session's bounded output
//! channel; a watch whose client does not keep up lags and is cancelled with
//! RESOURCE_EXHAUSTED, the session goes on. The session ends when the client closes its
//! side (after the last acknowledgements) or goes away; its watches end with it.

use std::collections::HashMap;
use std::pin::Pin;

use futures_util::stream::FuturesOrdered;
use futures_util::{Stream, StreamExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::{Status, Streaming};

use super::convert;
use super::engine::{DedupKey, SessionOutcome};
use super::error::StoreError;
use super::store::Store;
use crate::pb::portway::state::v1 as api;
use api::sync_request::Request as In;
use api::sync_response::Response as Out;

/// Longest session id, in bytes.
pub const MAX_SESSION_ID_BYTES: usize = 256;
/// Most writes of one session waiting for their acknowledgement; beyond it the session
/// stops reading (backpressure).
const MAX_IN_FLIGHT: usize = 1024;
/// Messages buffered towards the client.
const OUTPUT_BUFFER: usize = 64;

type Ack = Pin<Box<dyn Future<Output = api::SyncAck> + Send>>;
type Tx = mpsc::Sender<Result<api::SyncResponse, Status>>;

/// Aborts a watch task when the session drops it.
struct WatchTask(JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a session over `input`; the returned stream is the session's output.
pub fn session(
    store: Store,
    input: Streaming<api::SyncRequest>,
    chunk_bytes: usize,
) -> impl Stream<Item = Result<api::SyncResponse, Status>> + Send + 'static {
    let (tx, rx) = mpsc::channel(OUTPUT_BUFFER);
    tokio::spawn(run(store, input, tx, chunk_bytes));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn out(response: Out) -> Result<api::SyncResponse, Status> {
    Ok(api::SyncResponse { response: Some(response) })
}

fn ack_error(sequence: u64, e: &StoreError) -> api::SyncAck {
    api::SyncAck { sequence, error: Some(e.to_rpc_status()), ..Default::default() }
}

fn ack(sequence: u64, outcome: Result<SessionOutcome, StoreError>) -> api::SyncAck {
    match outcome {
        Ok(SessionOutcome::Fresh(Ok(o))) => {
            api::SyncAck { sequence, revision: o.revision, succeeded: o.succeeded, ..Default::default() }
        }
        Ok(SessionOutcome::Fresh(Err(e))) | Err(e) => ack_error(sequence, &e),
        Ok(SessionOutcome::Duplicate(rec)) => api::SyncAck {
            sequence,
            revision: rec.revision,
            duplicate: true,
            succeeded: rec.succeeded,
            error: rec.error,
        },
    }
}

async fn run(store: Store, mut input: Streaming<api::SyncRequest>, tx: Tx, chunk_bytes: usize) {
    let session_id = match input.message().await {
        Ok(Some(api::SyncRequest { request: Some(In::Open(open)) })) => open.session_id,
        Ok(Some(_)) => {
            let _ = tx.send(Err(Status::invalid_argument("the first message of a Sync session must be `open`"))).await;
            return;
        }
        Ok(None) => return,
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    if session_id.is_empty() || session_id.len() > MAX_SESSION_ID_BYTES {
        let msg = format!("session_id must be 1 to {MAX_SESSION_ID_BYTES} bytes long");
        let _ = tx.send(Err(Status::invalid_argument(msg))).await;
        return;
    }
    let opened = api::SyncOpened {
        session_id: session_id.clone(),
        revision: store.revision(),
        last_sequence: store.last_sequence(&session_id),
    };
    if tx.send(out(Out::Opened(opened))).await.is_err() {
        return;
    }

    let mut acks: FuturesOrdered<Ack> = FuturesOrdered::new();
    let mut watches: HashMap<u64, WatchTask> = HashMap::new();
    let mut input_open = true;
    loop {
        if !input_open && acks.is_empty() {
            return;
        }
        tokio::select! {
            Some(a) = acks.next(), if !acks.is_empty() => {
                if tx.send(out(Out::Ack(a))).await.is_err() {
                    return;
                }
            }
            msg = input.message(), if input_open && acks.len() < MAX_IN_FLIGHT => match msg {
                Ok(Some(req)) => {
                    let keep_going = handle(&store, req, &session_id, &tx, &mut acks, &mut watches, chunk_bytes).await;
                    if !keep_going {
                        return;
                    }
                }
                Ok(None) => input_open = false,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            },
            () = tx.closed() => return,
        }
    }
}

/// Handles one client message; false ends the session.
async fn handle(
    store: &Store,
    req: api::SyncRequest,
    session_id: &str,
    tx: &Tx,
    acks: &mut FuturesOrdered<Ack>,
    watches: &mut HashMap<u64, WatchTask>,
    chunk_bytes: usize,
) -> bool {
    match req.request {
        Some(In::Write(w)) => {
            let sequence = w.sequence;
            let options = store.options();
            let op = match w.op {
                _ if sequence == 0 => Err(StoreError::Invalid("sequence must be > 0".into())),
                Some(api::sync_write::Op::Put(p)) => convert::put(p, options),
                Some(api::sync_write::Op::Delete(d)) => convert::delete(d, options),
                Some(api::sync_write::Op::Txn(t)) => convert::txn(t, options),
                None => Err(StoreError::Invalid("write has no operation (set put, delete or txn)".into())),
            };
            let key = DedupKey { session: session_id.to_string(), sequence };
            let pending: Ack = match op {
                Err(e) => Box::pin(std::future::ready(ack_error(sequence, &e))),
                Ok(op) => match store.write_in_session(key, op).await {
                    Ok(done) => Box::pin(async move { ack(sequence, done.await) }),
                    Err(e) => Box::pin(std::future::ready(ack_error(sequence, &e))),
                },
            };
            acks.push_back(pending);
            true
        }
        Some(In::Watch(w)) => {
            let watch_id = w.watch_id;
            let cancel = |e: StoreError| {
                out(Out::WatchCanceled(api::SyncWatchCanceled { watch_id, error: Some(e.to_rpc_status()) }))
            };
            if watches.get(&watch_id).is_some_and(|t| !t.0.is_finished()) {
                let e = StoreError::Invalid(format!("watch_id {watch_id} is already in use"));
                return tx.send(cancel(e)).await.is_ok();
            }
            let spec = w.watch.unwrap_or_default();
            let watcher = convert::filter(spec.key, spec.prefix, store.options())
                .and_then(|f| store.watch(f, spec.start_revision));
            let mut watcher = match watcher {
                Ok(w) => w,
                Err(e) => return tx.send(cancel(e)).await.is_ok(),
            };
            let created = api::SyncWatchCreated { watch_id, revision: watcher.start_head() };
            if tx.send(out(Out::WatchCreated(created))).await.is_err() {
                return false;
            }
            let with_prev = spec.prev_entry;
            let tx = tx.clone();
            let task = tokio::spawn(async move {
                loop {
                    match watcher.next_events().await {
                        Ok((events, _)) => {
                            for (events, revision) in convert::chunk_events(&events, with_prev, chunk_bytes) {
                                let msg = out(Out::Events(api::SyncEvents { watch_id, revision, events }));
                                if tx.send(msg).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            let msg = api::SyncWatchCanceled { watch_id, error: Some(e.to_rpc_status()) };
                            let _ = tx.send(out(Out::WatchCanceled(msg))).await;
                            return;
                        }
                    }
                }
            });
            watches.insert(watch_id, WatchTask(task));
            true
        }
        Some(In::Unwatch(u)) => {
            let error = match watches.remove(&u.watch_id) {
                Some(_) => None, // Dropping the task aborts it.
                None => {
                    Some(StoreError::Invalid(format!("watch_id {} is not an open watch", u.watch_id)).to_rpc_status())
                }
            };
            let msg = api::SyncWatchCanceled { watch_id: u.watch_id, error };
            tx.send(out(Out::WatchCanceled(msg))).await.is_ok()
        }
        Some(In::Open(_)) => {
            let _ = tx.send(Err(Status::invalid_argument("`open` may only be the first message"))).await;
            false
        }
        None => {
            let _ = tx.send(Err(Status::invalid_argument("empty Sync message"))).await;
            false
        }
    }
}
