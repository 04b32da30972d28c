//! `portway.state.v1.StateService` over the store: request checks, responses, streaming.
//! Knows nothing about protocols: every protocol reaches it as native gRPC.

use std::pin::Pin;

use futures_util::Stream;
use prost::Message as _;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::engine::{Event, KeyFilter, OpOutput};
use super::error::StoreError;
use super::store::Store;
use super::sync;
use crate::pb::portway::state::v1 as api;
use crate::pb::portway::state::v1::state_service_server::{StateService, StateServiceServer};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How many log records a History call copies per step.
const HISTORY_CHUNK: usize = 256;
/// Most entries per List message.
const LIST_CHUNK: usize = 256;

/// The handlers, over one [`Store`].
#[derive(Debug, Clone)]
pub struct StateApi {
    store: Store,
    /// Streamed responses are cut into messages of about this many bytes (a revision's
    /// events are never split).
    chunk_bytes: usize,
}

/// The tonic server for `store`, with message size limits.
pub fn service(store: Store, max_message_bytes: usize) -> StateServiceServer<StateApi> {
    StateServiceServer::new(StateApi { store, chunk_bytes: (max_message_bytes / 2).max(1024) })
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
}

#[tonic::async_trait]
impl StateService for StateApi {
    async fn get(&self, req: Request<api::GetRequest>) -> Result<Response<api::GetResponse>, Status> {
        let req = req.into_inner();
        convert::key(&req.key, self.store.options())?;
        let (entry, revision) = self.store.get(&req.key, req.revision)?;
        let entry = entry.ok_or(StoreError::NotFound { key: req.key })?;
        Ok(Response::new(api::GetResponse { entry: Some((*entry).clone()), revision }))
    }

    async fn put(&self, req: Request<api::PutRequest>) -> Result<Response<api::PutResponse>, Status> {
        let req = req.into_inner();
        let return_prev = req.return_prev;
        let op = convert::put(req, self.store.options())?;
        let out = self.store.write(op).await?;
        Ok(Response::new(convert::put_response(&out, return_prev)))
    }

    async fn delete(&self, req: Request<api::DeleteRequest>) -> Result<Response<api::DeleteResponse>, Status> {
        let op = convert::delete(req.into_inner(), self.store.options())?;
        let out = self.store.write(op).await?;
        Ok(Response::new(convert::delete_response(&out)))
    }

    async fn txn(&self, req: Request<api::TxnRequest>) -> Result<Response<api::TxnResponse>, Status> {
        let op = convert::txn(req.into_inner(), self.store.options())?;
        let out = self.store.write(op).await?;
        Ok(Response::new(convert::txn_response(&out)))
    }

    type ListStream = BoxStream<api::ListResponse>;

    async fn list(&self, req: Request<api::ListRequest>) -> Result<Response<Self::ListStream>, Status> {
        let req = req.into_inner();
        convert::prefix(&req.prefix, self.store.options())?;
        let limit =
            usize::try_from(req.limit).map_err(|_| StoreError::Invalid(format!("limit {} is negative", req.limit)))?;
        let page = self.store.list(&req.prefix, &req.start_key, req.revision, limit)?;
        let budget = self.chunk_bytes;
        let stream = async_stream::stream! {
            let mut chunk = Vec::new();
            let mut size = 0usize;
            for e in &page.entries {
                let entry = (**e).clone();
                let len = entry.encoded_len() + 4;
                if !chunk.is_empty() && (chunk.len() == LIST_CHUNK || size + len > budget) {
                    yield Ok(api::ListResponse { entries: std::mem::take(&mut chunk), revision: page.revision, ..Default::default() });
                    size = 0;
                }
                size += len;
                chunk.push(entry);
            }
            yield Ok(api::ListResponse { entries: chunk, revision: page.revision, more: page.more, next_key: page.next_key.clone() });
        };
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchStream = BoxStream<api::WatchResponse>;

    async fn watch(&self, req: Request<api::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let req = req.into_inner();
        let filter = convert::filter(req.key, req.prefix, self.store.options())?;
        let mut watcher = self.store.watch(filter, req.start_revision)?;
        let with_prev = req.prev_entry;
        let budget = self.chunk_bytes;
        let stream = async_stream::stream! {
            yield Ok(api::WatchResponse { created: true, revision: watcher.start_head(), events: Vec::new() });
            loop {
                match watcher.next_events().await {
                    Ok((events, _)) => {
                        for (events, revision) in convert::chunk_events(&events, with_prev, budget) {
                            yield Ok(api::WatchResponse { created: false, revision, events });
                        }
                    }
                    Err(e) => {
                        yield Err(e.to_status());
                        break;
                    }
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    type HistoryStream = BoxStream<api::HistoryResponse>;

    async fn history(&self, req: Request<api::HistoryRequest>) -> Result<Response<Self::HistoryStream>, Status> {
        let req = req.into_inner();
        let filter = if req.key.is_empty() {
            KeyFilter { key: String::new(), prefix: true }
        } else {
            convert::filter(req.key, req.prefix, self.store.options())?
        };
        if req.start_revision < 0 || req.end_revision < 0 {
            return Err(StoreError::Invalid("revisions must not be negative".into()).into());
        }
        let current = self.store.revision();
        let end = if req.end_revision == 0 { current } else { req.end_revision };
        if end > current {
            return Err(StoreError::FutureRevision { requested: end, current }.into());
        }
        let start = if req.start_revision == 0 { self.store.compact_revision() + 1 } else { req.start_revision };
        // Fail now, not mid-stream, if the start is gone.
        self.store.records(start, start, 1)?;
        let store = self.store.clone();
        let with_prev = req.prev_entry;
        let budget = self.chunk_bytes;
        let stream = async_stream::stream! {
            let mut next = start;
            while next <= end {
                let records = match store.records(next, end, HISTORY_CHUNK) {
                    Ok(r) => r,
                    Err(e) => {
                        yield Err(e.to_status());
                        break;
                    }
                };
                let Some(last) = records.last() else { break };
                next = last.revision + 1;
                let events: Vec<Event> = records
                    .iter()
                    .flat_map(|r| r.events.iter().filter(|e| filter.matches(e.key())).cloned())
                    .collect();
                for (events, _) in convert::chunk_events(&events, with_prev, budget) {
                    yield Ok(api::HistoryResponse { events });
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn put_many(
        &self,
        req: Request<Streaming<api::PutRequest>>,
    ) -> Result<Response<api::PutManyResponse>, Status> {
        let mut input = req.into_inner();
        let options = self.store.options();
        let mut puts = Vec::new();
        while let Some(p) = input.message().await? {
            // Checked as they arrive, so an oversized stream is refused without being held.
            convert::ops_count("puts in one PutMany", puts.len() + 1, options)?;
            puts.push(convert::put_spec(p, options)?);
        }
        let op = convert::put_many(puts, options)?;
        let out = self.store.write(op).await?;
        let count = out.results.iter().filter(|r| matches!(r, OpOutput::Put { .. })).count();
        Ok(Response::new(api::PutManyResponse {
            revision: out.revision,
            count: i64::try_from(count).unwrap_or(i64::MAX),
        }))
    }

    type SyncStream = BoxStream<api::SyncResponse>;

    async fn sync(&self, req: Request<Streaming<api::SyncRequest>>) -> Result<Response<Self::SyncStream>, Status> {
        Ok(Response::new(Box::pin(sync::session(self.store.clone(), req.into_inner(), self.chunk_bytes))))
    }
}
