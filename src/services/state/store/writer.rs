//! The writer task: group commit. Writers queue their writes; the task takes everything
//! queued (up to `max_batch`), evaluates it against the committed state, persists the
//! result as one backend commit, then applies it, publishes it to the watchers and answers
//! every writer.

use std::sync::{Arc, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use super::Shared;
use crate::services::state::backend::{Backend, BackendError};
use crate::services::state::engine::{Batch, DedupKey, HOUSEKEEPING_INTERVAL, SessionOutcome, WriteOp, WriteOutput};
use crate::services::state::error::StoreError;

pub(super) enum Outcome {
    Write(Result<WriteOutput, StoreError>),
    Session(Result<SessionOutcome, StoreError>),
}

pub(super) struct WriteRequest {
    pub(super) op: WriteOp,
    pub(super) session: Option<DedupKey>,
    pub(super) reply: oneshot::Sender<Outcome>,
}

pub(super) enum WriterMsg {
    Write(WriteRequest),
    Shutdown(oneshot::Sender<()>),
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The writer task: group commit.
pub(super) async fn run_writer(shared: Arc<Shared>, backend: Arc<dyn Backend>, mut rx: mpsc::Receiver<WriterMsg>) {
    let max_batch = shared.options.max_batch.max(1);
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed: Option<String> = None;
    let mut shutdown: Option<oneshot::Sender<()>> = None;
    loop {
        let mut batch: Vec<WriteRequest> = Vec::new();
        let mut housekeeping = false;
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(WriterMsg::Write(w)) => batch.push(w),
                Some(WriterMsg::Shutdown(done)) => shutdown = Some(done),
                None => break,
            },
            _ = tick.tick() => housekeeping = true,
        }
        while shutdown.is_none() && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(WriterMsg::Write(w)) => batch.push(w),
                Ok(WriterMsg::Shutdown(done)) => shutdown = Some(done),
                Err(_) => break,
            }
        }
        if let Some(reason) = &failed {
            for w in batch {
                let e = StoreError::Unavailable(format!("the state store stopped taking writes after: {reason}"));
                let _ =
                    w.reply.send(if w.session.is_some() { Outcome::Session(Err(e)) } else { Outcome::Write(Err(e)) });
            }
        } else if (!batch.is_empty() || housekeeping)
            && let Err(e) = commit_batch(&shared, &backend, batch, housekeeping).await
        {
            tracing::error!(error = %e, "state store commit failed; refusing further writes until restart");
            failed = Some(e);
        }
        if let Some(done) = shutdown.take() {
            drop(backend);
            let _ = done.send(());
            return;
        }
    }
}

/// Evaluates, persists, applies and publishes one group; answers every writer. Returns the
/// storage error (already reported to the writers) if the commit failed.
async fn commit_batch(
    shared: &Arc<Shared>,
    backend: &Arc<dyn Backend>,
    batch: Vec<WriteRequest>,
    housekeeping: bool,
) -> Result<(), String> {
    let now = now_ms();
    let mut answers = Vec::with_capacity(batch.len());
    let commit = {
        let state = shared.read();
        let mut b = Batch::new(&state, &shared.options, now);
        for w in batch {
            let outcome = match &w.session {
                Some(key) => Outcome::Session(b.apply_in_session(key, &w.op)),
                None => Outcome::Write(b.apply(&w.op)),
            };
            answers.push((w.reply, outcome));
        }
        b.finish(housekeeping)
    };
    if !commit.is_empty() {
        let started = std::time::Instant::now();
        let persisted = if backend.blocking() {
            let backend = backend.clone();
            tokio::task::spawn_blocking(move || backend.commit(&commit).map(|()| commit))
                .await
                .map_err(|e| BackendError::Corrupt(format!("commit task failed: {e}")))
                .and_then(|r| r)
        } else {
            backend.commit(&commit).map(|()| commit)
        };
        shared.commit_seconds.observe(started.elapsed().as_secs_f64());
        let commit = match persisted {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                for (reply, outcome) in answers {
                    let err = StoreError::Storage(msg.clone());
                    let _ = reply.send(match outcome {
                        Outcome::Session(_) => Outcome::Session(Err(err)),
                        Outcome::Write(_) => Outcome::Write(Err(err)),
                    });
                }
                return Err(msg);
            }
        };
        let mut state = shared.state.write().unwrap_or_else(PoisonError::into_inner);
        state.apply(&commit);
        if !commit.records.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = shared.hub.send(commit.records.into());
        }
        drop(state);
    }
    for (reply, outcome) in answers {
        let _ = reply.send(outcome);
    }
    Ok(())
}
