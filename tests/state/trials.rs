//! Crash trials: a real `portway` process on a durable store is killed with SIGKILL while
//! concurrent writers write, again and again. After every restart the store must start,
//! every acknowledged write must be there with its value and revision, a transaction must
//! be all there or not at all, and nothing that was never written may appear.
//!
//! Shared by the recorded run (`examples/crash_trials.rs`, `scripts/crash-trials`) and the
//! short run in `tests/state/crash.rs`; it depends on nothing but the crate and tokio.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portway::pb::portway::state::v1 as api;
use portway::pb::portway::state::v1::state_service_client::StateServiceClient;
use portway::protojson::{Struct, Value};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tonic::transport::Channel;

/// A `portway` process listening on `127.0.0.1:<ephemeral>`, its log kept; killed with
/// SIGKILL when dropped.
pub struct Process {
    pub process: tokio::process::Child,
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Process {
    /// Starts `bin` with `args` and waits (up to 60 s) for its "portway listening" log line,
    /// which names the address it bound. The error holds what it logged.
    pub async fn start(bin: &Path, args: &[&str]) -> Result<Self, String> {
        let mut process = tokio::process::Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            // The log goes to stderr; stdout is kept too, in case anything is printed there.
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stdout = process.stdout.take().ok_or("no stdout")?;
        let stderr = process.stderr.take().ok_or("no stderr")?;
        let keep = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut lines = BufReader::new(stderr).lines();
        let keep = log.clone();
        let find = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let line = strip_ansi(&line);
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(line.clone());
                if line.contains("portway listening")
                    && let Some(rest) = line.split("address=").nth(1)
                {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
            None
        };
        let addr = tokio::time::timeout(Duration::from_secs(60), find).await.ok().flatten();
        let Some(addr) = addr else {
            let _ = process.start_kill();
            let _ = process.wait().await;
            let log = log.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
            return Err(format!("portway did not start; it said:\n{log}"));
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(strip_ansi(&line));
            }
        });
        Ok(Self { process, url: format!("http://{addr}"), log })
    }

    /// Everything it logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill9(mut self) {
        self.process.kill().await.expect("kill -9");
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `portway` binary.
    pub bin: PathBuf,
    /// The data directory (kept between trials).
    pub data_dir: PathBuf,
    /// How many times to kill it.
    pub trials: usize,
    /// Concurrent writers, each on its own connection.
    pub writers: usize,
    /// Kill once this many writes of the trial are acknowledged ...
    pub min_acks: usize,
    /// ... plus a random delay of up to this.
    pub max_extra_delay: Duration,
    /// Seeds the kill delays and value sizes (the run prints it).
    pub seed: u64,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Kills.
    pub trials: usize,
    /// Starts (one more than the kills: the last kill is checked too).
    pub starts: usize,
    /// Writes acknowledged, in all trials.
    pub acknowledged: usize,
    /// Acknowledged writes missing or changed after a restart (must be 0).
    pub lost: usize,
    /// Writes in flight at a kill that turned out committed (allowed: never acknowledged).
    pub in_flight_committed: usize,
    /// Starts at which redb rolled back a last commit that did not verify (one cut short by
    /// the kill: redb writes the header before the pages).
    pub rollbacks: usize,
    /// Keys in the store at the end.
    pub keys: usize,
    /// The store's revision at the end.
    pub revision: i64,
    /// The slowest start (spawn to listening, redb's check of the file included).
    pub slowest_start: Duration,
    /// The first problems found, in words.
    pub problems: Vec<String>,
}

/// xorshift64*: the kill delays and value sizes only need to be spread and repeatable
/// from a printed seed, not a random-number crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below.max(1)
    }
}

/// One write as a writer made it.
#[derive(Debug, Clone)]
enum Write {
    /// A put of a key written once.
    Unique { key: String, value: Value },
    /// A transaction putting two keys written once, with one value.
    Pair { keys: [String; 2], value: Value },
    /// A put of the writer's counter key.
    Counter { key: String, n: i64 },
}

/// A write with its revision if it was acknowledged.
type Outcome = (Write, Option<i64>);

fn payload(trial: usize, writer: usize, i: usize, pad: usize) -> Value {
    let fields = [
        ("trial".to_string(), Value::from(trial as f64)),
        ("writer".to_string(), Value::from(writer as f64)),
        ("i".to_string(), Value::from(i as f64)),
        ("pad".to_string(), Value::from("p".repeat(pad))),
    ];
    Value::from(fields.into_iter().collect::<Struct>())
}

async fn client(url: &str) -> Result<StateServiceClient<Channel>, String> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(StateServiceClient::new(channel).max_decoding_message_size(256 << 20))
}

async fn send(c: &mut StateServiceClient<Channel>, w: &Write) -> Result<i64, tonic::Status> {
    let put = |key: &str, value: Value| api::PutRequest { key: key.into(), value: Some(value), ..Default::default() };
    Ok(match w {
        Write::Unique { key, value } => c.put(put(key, value.clone())).await?.into_inner().revision,
        Write::Counter { key, n } => c.put(put(key, Value::from(*n as f64))).await?.into_inner().revision,
        Write::Pair { keys, value } => {
            let op = |k: &str| api::Op {
                op: Some(api::op::Op::Put(api::PutOp { key: k.into(), value: Some(value.clone()) })),
            };
            let txn = api::TxnRequest { success: vec![op(&keys[0]), op(&keys[1])], ..Default::default() };
            c.txn(txn).await?.into_inner().revision
        }
    })
}

/// Everything in the store: key → entry, and the revision it was read at.
async fn read_all(url: &str) -> Result<(HashMap<String, api::Entry>, i64), String> {
    let mut c = client(url).await?;
    let mut stream = c.list(api::ListRequest::default()).await.map_err(|e| format!("list: {e}"))?.into_inner();
    let (mut all, mut revision) = (HashMap::new(), 0);
    while let Some(page) = stream.message().await.map_err(|e| format!("list: {e}"))? {
        revision = page.revision;
        all.extend(page.entries.into_iter().map(|e| (e.key.clone(), e)));
    }
    Ok((all, revision))
}

/// What must hold after every restart.
#[derive(Default)]
struct Model {
    /// Keys written once: their value and revision, exactly.
    fixed: BTreeMap<String, (Value, i64)>,
    /// Each writer's counter: the value acknowledged last.
    counters: HashMap<String, i64>,
}

impl Model {
    /// Checks the store against the model and the last trial's writes; then makes what
    /// was observed of the in-flight writes part of the model.
    fn check(&mut self, all: &HashMap<String, api::Entry>, last: &[Outcome], totals: &mut Totals) {
        let problem = |totals: &mut Totals, p: String| {
            if totals.problems.len() < 20 {
                totals.problems.push(p);
            }
        };
        let mut counters_in_flight: HashMap<&str, i64> = HashMap::new();
        for (w, revision) in last {
            match (w, revision) {
                (Write::Unique { key, value }, Some(r)) => {
                    self.fixed.insert(key.clone(), (value.clone(), *r));
                }
                (Write::Pair { keys, value }, Some(r)) => {
                    for k in keys {
                        self.fixed.insert(k.clone(), (value.clone(), *r));
                    }
                }
                (Write::Counter { key, n }, Some(_)) => {
                    self.counters.insert(key.clone(), *n);
                }
                (Write::Unique { key, value }, None) => {
                    if let Some(e) = all.get(key) {
                        if e.value.as_ref() != Some(value) {
                            problem(totals, format!("{key} holds a value that was never written: {:?}", e.value));
                        }
                        totals.in_flight_committed += 1;
                        self.fixed.insert(key.clone(), (value.clone(), e.mod_revision));
                    }
                }
                (Write::Pair { keys, value }, None) => match (all.get(&keys[0]), all.get(&keys[1])) {
                    (None, None) => {}
                    (Some(a), Some(b)) if a.mod_revision == b.mod_revision && a.value.as_ref() == Some(value) => {
                        totals.in_flight_committed += 1;
                        for k in keys {
                            self.fixed.insert(k.clone(), (value.clone(), a.mod_revision));
                        }
                    }
                    (a, b) => problem(totals, format!("transaction {keys:?} is torn: {a:?} / {b:?}")),
                },
                (Write::Counter { key, n }, None) => {
                    counters_in_flight.insert(key, *n);
                }
            }
        }
        for (key, (value, revision)) in &self.fixed {
            match all.get(key) {
                Some(e) if e.value.as_ref() == Some(value) && e.mod_revision == *revision && e.version == 1 => {}
                other => {
                    totals.lost += 1;
                    problem(totals, format!("{key} (revision {revision}) lost or changed: {other:?}"));
                }
            }
        }
        for (key, n) in &counters_in_flight {
            // A counter whose first write was in flight, and committed.
            if !self.counters.contains_key(*key)
                && all.get(*key).and_then(|e| e.value.as_ref()) == Some(&Value::from(*n as f64))
            {
                totals.in_flight_committed += 1;
                self.counters.insert(key.to_string(), *n);
            }
        }
        for (key, acked) in self.counters.clone() {
            let seen = all.get(&key).and_then(|e| match e.value.as_ref().and_then(|v| v.kind.as_ref()) {
                Some(portway::protojson::value::Kind::NumberValue(n)) => Some(*n as i64),
                _ => None,
            });
            match seen {
                Some(n) if n == acked => {}
                Some(n) if counters_in_flight.get(key.as_str()) == Some(&n) => {
                    totals.in_flight_committed += 1;
                    self.counters.insert(key, n);
                }
                other => {
                    totals.lost += 1;
                    problem(totals, format!("{key} should be {acked}, is {other:?}"));
                }
            }
        }
        for key in all.keys().filter(|k| k.starts_with("u/")) {
            if !self.fixed.contains_key(key) {
                problem(totals, format!("{key} is in the store but was never written"));
            }
        }
    }
}

/// Runs the trials; `progress` hears after each check (trial number, totals so far).
pub async fn run(plan: &Plan, mut progress: impl FnMut(usize, &Totals)) -> Totals {
    let data_dir = plan.data_dir.to_string_lossy().to_string();
    let args = ["--data-dir", data_dir.as_str(), "--storage", "durable"];
    let mut rng = Rng(plan.seed.max(1));
    let mut model = Model::default();
    let mut totals = Totals::default();
    let mut last: Vec<Outcome> = Vec::new();
    for trial in 0..=plan.trials {
        let started = Instant::now();
        let child = match Process::start(&plan.bin, &args).await {
            Ok(c) => c,
            Err(e) => {
                totals.problems.push(format!("start {}: {e}", totals.starts + 1));
                return totals;
            }
        };
        totals.starts += 1;
        totals.slowest_start = totals.slowest_start.max(started.elapsed());
        for line in child.log() {
            if line.contains("record skipped") {
                totals.problems.push(format!("start {}: {line}", totals.starts));
            }
            // A commit cut short by the kill; the check below shows whether anything
            // acknowledged went with it.
            if line.contains("rolled back") {
                totals.rollbacks += 1;
            }
        }
        let (all, revision) = match read_all(&child.url).await {
            Ok(r) => r,
            Err(e) => {
                totals.problems.push(format!("start {}: {e}", totals.starts));
                return totals;
            }
        };
        model.check(&all, &last, &mut totals);
        (totals.keys, totals.revision) = (all.len(), revision);
        progress(trial, &totals);
        if trial == plan.trials || !totals.problems.is_empty() {
            child.kill9().await;
            return totals;
        }

        // The writers, until the kill.
        let acks = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let enough = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for w in 0..plan.writers {
            let counter = format!("c/{w}");
            let mut n = model.counters.get(&counter).copied().unwrap_or(0);
            let pads: Vec<usize> = (0..64).map(|_| rng.next(300) as usize).collect();
            let (url, acks, killed, enough, min_acks) =
                (child.url.clone(), acks.clone(), killed.clone(), enough.clone(), plan.min_acks);
            tasks.push(tokio::spawn(async move {
                let mut done: Vec<Outcome> = Vec::new();
                let Ok(mut c) = client(&url).await else { return Ok(done) };
                for i in 0.. {
                    let value = payload(trial, w, i, pads[i % pads.len()]);
                    let write = match i % 8 {
                        3 | 6 => {
                            n += 1;
                            Write::Counter { key: counter.clone(), n }
                        }
                        7 => Write::Pair {
                            keys: [format!("u/{trial}/{w}/{i}/a"), format!("u/{trial}/{w}/{i}/b")],
                            value,
                        },
                        _ => Write::Unique { key: format!("u/{trial}/{w}/{i}"), value },
                    };
                    match send(&mut c, &write).await {
                        Ok(revision) => {
                            done.push((write, Some(revision)));
                            if acks.fetch_add(1, Ordering::SeqCst) + 1 == min_acks {
                                enough.notify_one();
                            }
                        }
                        Err(status) if killed.load(Ordering::SeqCst) => {
                            let _ = status;
                            done.push((write, None));
                            return Ok(done);
                        }
                        Err(status) => return Err(format!("writer {w} failed before the kill: {status}")),
                    }
                }
                Ok(done)
            }));
        }
        if tokio::time::timeout(Duration::from_secs(60), enough.notified()).await.is_err() {
            totals.problems.push(format!("trial {trial}: fewer than {} writes acknowledged in 60 s", plan.min_acks));
        }
        tokio::time::sleep(Duration::from_millis(rng.next(plan.max_extra_delay.as_millis() as u64 + 1))).await;
        killed.store(true, Ordering::SeqCst);
        child.kill9().await;
        totals.trials += 1;
        last.clear();
        for t in tasks {
            match t.await {
                Ok(Ok(done)) => {
                    totals.acknowledged += done.iter().filter(|(_, r)| r.is_some()).count();
                    last.extend(done);
                }
                Ok(Err(e)) => totals.problems.push(format!("trial {trial}: {e}")),
                Err(e) => totals.problems.push(format!("trial {trial}: writer task: {e}")),
            }
        }
    }
    totals
}
