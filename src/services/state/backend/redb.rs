//! The durable embedded backend: one redb database file (`state.redb`) under the data
//! directory. Each [`Commit`] is one redb write transaction with `Durability::Immediate`,
//! so it is fsynced before the writes it carries are acknowledged.
//!
//! Tables:
//! - `meta`: `revision`, `compact_revision`, `format`;
//! - `kv`: key → the live entry (protobuf `portway.state.v1.Entry`);
//! - `log`: revision → the revision's events (with their previous entries, so that reads
//!   at a past revision still work after a restart);
//! - `dedup`: (session, sequence) → the outcome of a Sync write;
//! - `sessions`: session → last activity (Unix ms).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use prost::Message as _;
use redb::{Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{Backend, BackendError, StoredForm};
use crate::pb::portway::state::v1 as api;
use crate::services::state::engine::{
    Commit, DedupRecord, EntryRef, Event, EventKind, RevisionRecord, Session, SkippedRecord, Snapshot,
};

const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<i64, &[u8]> = TableDefinition::new("log");
const DEDUP: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dedup");
const SESSIONS: TableDefinition<&str, i64> = TableDefinition::new("sessions");

const FORMAT: i64 = 1;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "state.redb";

/// The forms this backend stores values in: an `Entry` per live key, and per revision a
/// [`StoredRecord`] wrapping its `Event`s.
pub const STORED_FORMS: &[StoredForm] = &[
    StoredForm { what: "redb table kv (live entries)", message: ".portway.state.v1.Entry", wrappers: 0 },
    StoredForm { what: "redb table log (revision records)", message: ".portway.state.v1.Event", wrappers: 1 },
];

/// A log record as stored.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredRecord {
    #[prost(int64, tag = "1")]
    revision: i64,
    #[prost(int64, tag = "2")]
    time_ms: i64,
    #[prost(message, repeated, tag = "3")]
    events: Vec<api::Event>,
}

fn db(e: impl Into<redb::Error>) -> BackendError {
    BackendError::Database(e.into())
}

/// Why redb could not open `path`, as a sentence that names the file and says what to do.
fn open_failed(path: &Path, e: redb::DatabaseError) -> BackendError {
    use redb::{DatabaseError as D, StorageError as S};
    let file = path.display();
    let damaged = |detail: String| {
        format!(
            "the state store file {file} is damaged and cannot be opened (redb: {detail}); restore it from a backup, \
             or move it aside to start with an empty store"
        )
    };
    BackendError::Open(match e {
        D::DatabaseAlreadyOpen | D::LockProtocolMismatch => format!(
            "the state store file {file} is already open in another process (another portway on the same data \
             directory?); stop that one or use another data directory"
        ),
        D::Storage(S::Corrupted(detail)) => damaged(detail),
        D::Storage(S::Io(io)) if io.kind() == ErrorKind::UnexpectedEof => {
            damaged(format!("{io}: the file is shorter than its own layout says"))
        }
        D::Storage(S::Io(io)) if io.kind() == ErrorKind::InvalidData => {
            format!("{file} is not a redb database ({io}); move it aside or use another data directory")
        }
        D::Storage(S::Io(io)) => format!("cannot open the state store file {file}: {io}"),
        D::UpgradeRequired(version) => {
            format!("the state store file {file} is in redb file format {version}, which this build cannot read")
        }
        other => format!("cannot open the state store file {file}: {other}"),
    })
}

/// Creates the data directory if needed and returns its absolute path, or a sentence that
/// names the directory and what is wrong with it (a file in its place, no permission).
fn prepare_dir(dir: &Path) -> Result<PathBuf, BackendError> {
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(BackendError::Open(format!(
            "the data directory {} is a file, not a directory; remove it or choose another directory",
            shown.display()
        )));
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        let why = match e.kind() {
            ErrorKind::PermissionDenied => "permission denied".to_owned(),
            ErrorKind::NotADirectory => "a part of the path is a file, not a directory".to_owned(),
            ErrorKind::ReadOnlyFilesystem => "the file system is read-only".to_owned(),
            _ => e.to_string(),
        };
        return Err(BackendError::Open(format!(
            "cannot create the data directory {} ({why}); create it yourself or choose another directory",
            shown.display()
        )));
    }
    Ok(std::fs::canonicalize(dir).unwrap_or(shown))
}

/// What redb's repair of a file that was not closed cleanly reported.
const REPAIR_NONE: u8 = 0;
const REPAIR_RAN: u8 = 1;
const REPAIR_ROLLED_BACK: u8 = 2;

/// The durable backend.
pub struct RedbBackend {
    db: Database,
    path: PathBuf,
    /// Said once at load: what opening the file found (an empty file, a repair).
    notes: Vec<String>,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend").field("path", &self.path).finish()
    }
}

impl RedbBackend {
    /// Opens (or creates) the database in `dir`, creating the directory if needed. Fails if
    /// another process has it open.
    pub fn open(dir: &Path) -> Result<Self, BackendError> {
        let dir = &prepare_dir(dir)?;
        let path = dir.join(FILE_NAME);
        let mut notes = Vec::new();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            // redb makes a new database of an empty file: say so, since a file that held
            // data and was truncated to nothing looks exactly the same.
            notes.push(format!(
                "{} was empty (0 bytes) and now holds a new, empty store; if it held data, it was truncated: \
                 restore it from a backup",
                path.display()
            ));
        }
        // redb verifies a file that was not closed cleanly (checksums of the last commit) and
        // falls back to the commit before if the last one does not verify: a commit cut
        // short by the crash (redb writes the header before the pages, then one fsync), or
        // damage. Its callback reports progress 0.3 exactly when it falls back.
        let repair = Arc::new(AtomicU8::new(REPAIR_NONE));
        let seen = repair.clone();
        let mut builder = Database::builder();
        builder.set_repair_callback(move |session| {
            let step = if (session.progress() - 0.3).abs() < 1e-9 { REPAIR_ROLLED_BACK } else { REPAIR_RAN };
            seen.fetch_max(step, Ordering::Relaxed);
        });
        let database = builder.create(&path).map_err(|e| open_failed(&path, e))?;
        match repair.load(Ordering::Relaxed) {
            REPAIR_ROLLED_BACK => notes.push(format!(
                "{} was not closed cleanly and its last commit did not verify: redb rolled back to the commit \
                 before. After a crash that is a commit that had not finished, whose writes were never \
                 acknowledged; if the file was damaged in another way, the writes of that commit are lost",
                path.display()
            )),
            REPAIR_RAN => notes.push(format!(
                "{} was not closed cleanly (a crash or kill): redb verified it and it is intact",
                path.display()
            )),
            _ => {}
        }
        let txn = database.begin_write().map_err(db)?;
        {
            let mut meta = txn.open_table(META).map_err(db)?;
            let format = meta.get("format").map_err(db)?.map(|v| v.value());
            match format {
                None => {
                    meta.insert("format", FORMAT).map_err(db)?;
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(BackendError::Corrupt(format!(
                        "{} has storage format {other}; this build reads format {FORMAT}",
                        path.display()
                    )));
                }
            }
            txn.open_table(KV).map_err(db)?;
            txn.open_table(LOG).map_err(db)?;
            txn.open_table(DEDUP).map_err(db)?;
            txn.open_table(SESSIONS).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(Self { db: database, path, notes })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `e`, sharing the already decoded copy if it is the same version.
fn share(latest: &HashMap<String, (EventKind, EntryRef)>, e: api::Entry) -> EntryRef {
    match latest.get(&e.key) {
        Some((_, known)) if known.mod_revision == e.mod_revision && **known == e => known.clone(),
        _ => Arc::new(e),
    }
}

/// Decodes the log record stored at revision `at`; the error says what is wrong with it.
pub(crate) fn decode_record(
    at: i64,
    bytes: &[u8],
    latest: &HashMap<String, (EventKind, EntryRef)>,
) -> Result<RevisionRecord, String> {
    let stored = StoredRecord::decode(bytes).map_err(|e| e.to_string())?;
    if stored.revision != at {
        return Err(format!("it holds revision {}", stored.revision));
    }
    let mut events = Vec::with_capacity(stored.events.len());
    for ev in stored.events {
        let kind = match api::event::Type::try_from(ev.r#type) {
            Ok(api::event::Type::Put) => EventKind::Put,
            Ok(api::event::Type::Delete) => EventKind::Delete,
            _ => return Err(format!("it holds an event of unknown type {}", ev.r#type)),
        };
        let entry = ev.entry.ok_or("it holds an event without an entry")?;
        let prev = ev.prev_entry.map(|p| share(latest, p));
        events.push(Event { kind, entry: share(latest, entry), prev });
    }
    Ok(RevisionRecord { revision: stored.revision, time_ms: stored.time_ms, events })
}

impl Backend for RedbBackend {
    /// Reads everything back. A record that does not decode is reported in
    /// [`Snapshot::skipped`] and left out (a live entry is restored from the log when the
    /// log holds its last change); only a failure of redb itself fails the load.
    fn load(&self) -> Result<Snapshot, BackendError> {
        let txn = self.db.begin_read().map_err(db)?;
        let meta = txn.open_table(META).map_err(db)?;
        let revision = meta.get("revision").map_err(db)?.map_or(0, |v| v.value());
        let compact_revision = meta.get("compact_revision").map_err(db)?.map_or(0, |v| v.value());
        let mut skipped = Vec::new();
        let mut skip = |record: String, problem: String| {
            tracing::error!(file = %self.path.display(), record = %record, problem = %problem, "state store record skipped");
            skipped.push(SkippedRecord { record, problem });
        };

        // Decoded entries are shared (`Arc`) between the log and the live keys where they
        // are the same version, as they are in memory before a restart.
        let mut latest: HashMap<String, (EventKind, EntryRef)> = HashMap::new();
        let mut records = Vec::new();
        let mut last_skipped_revision = 0;
        for row in txn.open_table(LOG).map_err(db)?.range::<i64>(..).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let at = k.value();
            if at <= compact_revision {
                continue; // Compacted; the next compaction deletes it.
            }
            match decode_record(at, v.value(), &latest) {
                Ok(record) => {
                    for e in &record.events {
                        latest.insert(e.entry.key.clone(), (e.kind, e.entry.clone()));
                    }
                    records.push(Arc::new(record));
                }
                Err(problem) => {
                    last_skipped_revision = at;
                    skip(format!("the log record of revision {at}"), problem);
                }
            }
        }

        let mut entries = Vec::new();
        for row in txn.open_table(KV).map_err(db)?.range::<&str>(..).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let key = k.value();
            let problem = match api::Entry::decode(v.value()) {
                Ok(e) if e.key == key => {
                    entries.push(share(&latest, e));
                    continue;
                }
                Ok(e) => format!("it holds the entry of key {:?}", e.key),
                Err(e) => e.to_string(),
            };
            // The log's last change of the key is its live entry, unless a later change
            // might be in a log record that was skipped.
            let restored = match latest.get(key) {
                Some((EventKind::Put, e)) if e.mod_revision > last_skipped_revision => Some(e.clone()),
                _ => None,
            };
            match restored {
                Some(e) => {
                    skip(
                        format!("the entry of key {key:?}"),
                        format!("{problem}; restored from the log record of revision {}", e.mod_revision),
                    );
                    entries.push(e);
                }
                None => skip(format!("the entry of key {key:?}"), format!("{problem}; the key is not served")),
            }
        }

        let mut sessions: HashMap<String, Session> = HashMap::new();
        for row in txn.open_table(SESSIONS).map_err(db)?.range::<&str>(..).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            sessions.entry(k.value().to_string()).or_default().last_active_ms = v.value();
        }
        for row in txn.open_table(DEDUP).map_err(db)?.range::<(&str, u64)>(..).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let (session, seq) = k.value();
            match DedupRecord::decode(v.value()) {
                Ok(rec) => {
                    sessions.entry(session.to_string()).or_default().records.insert(seq, rec);
                }
                Err(e) => skip(
                    format!("the outcome of write {seq} of Sync session {session:?}"),
                    format!("{e}; a resend of that write applies it again"),
                ),
            }
        }
        Ok(Snapshot { revision, compact_revision, entries, records, sessions, skipped, notes: self.notes.clone() })
    }

    fn commit(&self, c: &Commit) -> Result<(), BackendError> {
        let mut txn = self.db.begin_write().map_err(db)?;
        txn.set_durability(Durability::Immediate).map_err(db)?;
        {
            let mut kv = txn.open_table(KV).map_err(db)?;
            for e in &c.puts {
                kv.insert(e.key.as_str(), e.encode_to_vec().as_slice()).map_err(db)?;
            }
            for k in &c.deletes {
                kv.remove(k.as_str()).map_err(db)?;
            }
            let mut log = txn.open_table(LOG).map_err(db)?;
            for r in &c.records {
                let stored = StoredRecord {
                    revision: r.revision,
                    time_ms: r.time_ms,
                    events: r.events.iter().map(|e| e.to_api(true)).collect(),
                };
                log.insert(r.revision, stored.encode_to_vec().as_slice()).map_err(db)?;
            }
            if c.compact_revision > c.previous_compact_revision {
                log.retain_in(..=c.compact_revision, |_, _| false).map_err(db)?;
            }
            let mut dedup = txn.open_table(DEDUP).map_err(db)?;
            let mut sessions = txn.open_table(SESSIONS).map_err(db)?;
            for s in &c.session_drops {
                dedup.retain_in((s.as_str(), 0)..=(s.as_str(), u64::MAX), |_, _| false).map_err(db)?;
                sessions.remove(s.as_str()).map_err(db)?;
            }
            for (s, at) in &c.session_touches {
                sessions.insert(s.as_str(), *at).map_err(db)?;
            }
            for (s, seq, rec) in &c.dedup_puts {
                dedup.insert((s.as_str(), *seq), rec.encode_to_vec().as_slice()).map_err(db)?;
            }
            for (s, seq) in &c.dedup_removes {
                dedup.remove((s.as_str(), *seq)).map_err(db)?;
            }
            let mut meta = txn.open_table(META).map_err(db)?;
            meta.insert("revision", c.revision).map_err(db)?;
            meta.insert("compact_revision", c.compact_revision).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(())
    }
}

/// Whether a revision record whose event carries `value` decodes again (for the depth
/// derivation's tests: prost is the judge).
#[cfg(test)]
pub(crate) fn log_record_decodes(value: crate::protojson::Value) -> bool {
    let entry = api::Entry { key: "k".into(), value: Some(value), ..Default::default() };
    let event = api::Event { r#type: api::event::Type::Put as i32, entry: Some(entry), prev_entry: None };
    let record = StoredRecord { revision: 1, time_ms: 0, events: vec![event] };
    StoredRecord::decode(record.encode_to_vec().as_slice()).is_ok()
}
