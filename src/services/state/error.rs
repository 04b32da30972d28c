//! The store's errors, and how each becomes a gRPC status with typed details.

use prost::Message as _;
use tonic::Code;

use crate::pb::portway::state::v1 as api;

/// Why a store operation failed. Every variant maps to one gRPC code (see
/// [`StoreError::to_status`]); the ones a client can act on carry details.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist (at the revision asked for).
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A compare-and-set did not hold.
    #[error("key {key:?} is at revision {current} (0: absent), not the expected {expected}")]
    Conflict {
        /// The key.
        key: String,
        /// What the request expected.
        expected: i64,
        /// The key's `mod_revision` (0: absent).
        current: i64,
    },
    /// The revision asked for is no longer in the log.
    #[error("revision {requested} has been compacted; the oldest revision available is {oldest}")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The oldest revision whose events are kept.
        oldest: i64,
        /// The current revision.
        current: i64,
    },
    /// The revision asked for is in the future.
    #[error("revision {requested} is in the future; the current revision is {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The current revision.
        current: i64,
    },
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A request is larger than a configured limit (INVALID_ARGUMENT) or a shared resource
    /// is used up (RESOURCE_EXHAUSTED).
    #[error("{what}: {actual} is over the limit of {max} ({limit})")]
    Limit {
        /// The option name, e.g. `max_key_bytes`.
        limit: &'static str,
        /// Human words for what is limited.
        what: &'static str,
        /// The limit.
        max: i64,
        /// What the request needed.
        actual: i64,
        /// RESOURCE_EXHAUSTED rather than INVALID_ARGUMENT.
        exhausted: bool,
    },
    /// A watcher fell too far behind the writers.
    #[error("watcher fell more than {buffer} commits behind; watch again from revision {resume}")]
    Lagged {
        /// Where to resume.
        resume: i64,
        /// The configured buffer.
        buffer: usize,
    },
    /// A Sync write's sequence is older than the session's deduplication window, so the
    /// store can no longer tell whether it was applied.
    #[error(
        "sequence {sequence} of session {session:?} is older than the deduplication window (oldest remembered: {oldest})"
    )]
    SequenceTooOld {
        /// The session.
        session: String,
        /// The sequence sent.
        sequence: u64,
        /// The oldest sequence remembered.
        oldest: u64,
    },
    /// The store is shutting down or failed and takes no more writes.
    #[error("{0}")]
    Unavailable(String),
    /// The storage failed. The message is logged, not sent.
    #[error("storage error: {0}")]
    Storage(String),
}

impl StoreError {
    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        match self {
            Self::NotFound { .. } => Code::NotFound,
            Self::Conflict { .. } | Self::SequenceTooOld { .. } => Code::FailedPrecondition,
            Self::Compacted { .. } | Self::FutureRevision { .. } => Code::OutOfRange,
            Self::Invalid(_) => Code::InvalidArgument,
            Self::Limit { exhausted: false, .. } => Code::InvalidArgument,
            Self::Limit { exhausted: true, .. } | Self::Lagged { .. } => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Storage(_) => Code::Internal,
        }
    }

    /// The error as a `google.rpc.Status` (code, message, typed details).
    pub fn to_rpc_status(&self) -> crate::pb::google::rpc::Status {
        let detail = match self {
            Self::Conflict { key, expected, current } => Some(any(
                "ConflictDetail",
                api::ConflictDetail { key: key.clone(), current_revision: *current, expected_revision: *expected }
                    .encode_to_vec(),
            )),
            Self::Compacted { requested, oldest, current } => Some(any(
                "CompactedDetail",
                api::CompactedDetail {
                    requested_revision: *requested,
                    oldest_revision: *oldest,
                    current_revision: *current,
                }
                .encode_to_vec(),
            )),
            Self::FutureRevision { requested, current } => Some(any(
                "CompactedDetail",
                api::CompactedDetail { requested_revision: *requested, oldest_revision: 0, current_revision: *current }
                    .encode_to_vec(),
            )),
            Self::Lagged { resume, .. } => {
                Some(any("WatchLaggedDetail", api::WatchLaggedDetail { resume_revision: *resume }.encode_to_vec()))
            }
            Self::Limit { limit, max, actual, .. } => Some(any(
                "LimitDetail",
                api::LimitDetail { limit: (*limit).to_string(), max: *max, actual: *actual }.encode_to_vec(),
            )),
            _ => None,
        };
        crate::pb::google::rpc::Status {
            code: self.code() as i32,
            message: self.public_message(),
            details: detail.into_iter().collect(),
        }
    }

    /// The message sent to clients: internal errors are logged and replaced.
    fn public_message(&self) -> String {
        match self {
            Self::Storage(_) => "the state store failed to write; see the server log".to_string(),
            other => other.to_string(),
        }
    }

    /// The error as a `tonic::Status` with `grpc-status-details-bin`.
    pub fn to_status(&self) -> tonic::Status {
        if let Self::Storage(e) = self {
            tracing::error!(error = %e, "state store storage error");
        }
        let rpc = self.to_rpc_status();
        tonic::Status::with_details(self.code(), rpc.message.clone(), rpc.encode_to_vec().into())
    }
}

impl From<StoreError> for tonic::Status {
    fn from(e: StoreError) -> Self {
        e.to_status()
    }
}

fn any(name: &str, value: Vec<u8>) -> crate::protojson::Any {
    crate::protojson::Any { type_url: format!("type.googleapis.com/portway.state.v1.{name}"), value: value.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_carries_its_detail() {
        let e = StoreError::Conflict { key: "a".into(), expected: 3, current: 7 };
        let status = e.to_status();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let rpc = crate::pb::google::rpc::Status::decode(status.details()).unwrap();
        assert_eq!(rpc.details.len(), 1);
        assert_eq!(rpc.details[0].type_url, "type.googleapis.com/portway.state.v1.ConflictDetail");
        let d = api::ConflictDetail::decode(rpc.details[0].value.as_ref()).unwrap();
        assert_eq!((d.key.as_str(), d.current_revision, d.expected_revision), ("a", 7, 3));
    }

    #[test]
    fn storage_errors_are_not_sent() {
        let status = StoreError::Storage("disk on fire at /secret/path".into()).to_status();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("/secret/path"));
    }
}
