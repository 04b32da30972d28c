//! Call setup: turns an `open` frame into a call task, or into the status that refuses it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::call::{CallCtl, CallTask, Inbound};
use super::frames::{Metadata, Open};
use super::guards::{CallSlot, TaskGuard};
use super::settings::SessionContext;
use super::writer::Outbox;
use crate::metrics::Metrics;
use crate::transcode::call::is_reserved_header;
use crate::transcode::status::decode_bin_value;
use crate::transcode::{CallSetup, MethodDescriptor};

/// A call ready to spawn, with the session's ends of its channels.
pub(crate) struct PreparedCall<S> {
    pub task: CallTask<S>,
    pub inbound: mpsc::Sender<Inbound>,
    pub stop: oneshot::Sender<Status>,
}

/// Checks an `open` frame for `method` and builds its task, or the status that refuses it.
/// `slot` is the call's place among the socket's calls, taken by the caller.
pub(crate) fn prepare<S: Clone>(
    ctx: &SessionContext<S>,
    open: Open<'_>,
    method: Arc<MethodDescriptor>,
    slot: CallSlot,
    out: &Outbox,
    metrics: &Arc<Metrics>,
) -> Result<PreparedCall<S>, Status> {
    let limits = &ctx.limits;
    let timeout = match open.timeout_ms {
        // A deadline of zero has passed before the call starts: it ends as gRPC ends a call
        // whose deadline passed, without reaching the handler.
        Some(0) => return Err(Status::deadline_exceeded("the deadline (timeoutMs: 0) passed before the call started")),
        ms => ms.map(Duration::from_millis),
    };
    let metadata = merge_metadata(&ctx.metadata, open.metadata)?;
    let first = match open.message {
        Some(raw) => Some(to_binary(&method, raw.get(), limits.max_message_bytes)?),
        None => None,
    };
    let window = limits.initial_credit;
    let client_credit = window - u32::from(first.is_some());
    let ctl = Arc::new(CallCtl::new(open.credit.unwrap_or(window), client_credit));
    let setup = CallSetup { path: open.method.into_owned(), metadata, timeout, extensions: ctx.extensions.clone() };
    // Room for every message the client may send without a grant, and the half-close.
    let (inbound_tx, inbound_rx) = mpsc::channel(window as usize + 1);
    let (stop_tx, stop_rx) = oneshot::channel();
    Ok(PreparedCall {
        task: CallTask {
            id: open.id,
            invoker: ctx.invoker.clone(),
            method,
            setup,
            first,
            ended_at_open: open.end,
            inbound: inbound_rx,
            ctl,
            stop: stop_rx,
            out: out.clone(),
            window,
            max_message: limits.max_decoded_bytes,
            slot,
            _task: TaskGuard::new(metrics),
        },
        inbound: inbound_tx,
        stop: stop_tx,
    })
}

/// Transcodes one request message, enforcing the message limit on its JSON text.
pub(crate) fn to_binary(method: &MethodDescriptor, json: &str, limit: usize) -> Result<Bytes, Status> {
    if json.len() > limit {
        return Err(Status::resource_exhausted(format!(
            "message of {} bytes is larger than the limit of {limit} bytes",
            json.len()
        )));
    }
    method.request().json_to_binary(json.as_bytes()).map(Bytes::from).map_err(|e| Status::invalid_argument(e.0))
}

/// The call's metadata: the connection's, with the frame's keys replacing theirs.
fn merge_metadata(connection: &HeaderMap, per_call: Metadata) -> Result<HeaderMap, Status> {
    let mut out = connection.clone();
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (key, values) in per_call.0 {
        let name = HeaderName::from_bytes(key.as_bytes())
            .ok()
            .filter(|n| n.as_str() == key)
            .ok_or_else(|| Status::invalid_argument(format!("invalid metadata key {key:?} (keys are lower-case)")))?;
        if is_reserved_header(&name) {
            return Err(Status::invalid_argument(format!("metadata key {key:?} is reserved")));
        }
        if !replaced.contains(&name) {
            out.remove(&name);
            replaced.push(name.clone());
        }
        for value in values {
            if key.ends_with("-bin") && decode_bin_value(&value).is_none() {
                return Err(Status::invalid_argument(format!("metadata {key:?} is not base64")));
            }
            let value = HeaderValue::from_str(&value)
                .map_err(|_| Status::invalid_argument(format!("invalid value for metadata {key:?}")))?;
            out.append(name.clone(), value);
        }
    }
    Ok(out)
}
