//! Crash trials (not a test): runs the real `portway` binary on a durable store, kills it
//! with SIGKILL while concurrent writers write, restarts it, and checks that it started and
//! that every acknowledged write is there with its value and revision; again and again.
//! The result of a recorded run is in `docs/state-store.md`.
//!
//! Run with: `scripts/crash-trials` (100 trials), or
//! `cargo run --example crash_trials -- --bin target/debug/portway --trials 100`.

#[path = "../tests/state/trials.rs"]
mod trials;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

/// Kill `portway` mid-write, restart it, check every acknowledged write; repeat.
#[derive(Debug, Parser)]
struct Args {
    /// The `portway` binary to run.
    #[arg(long, default_value = "target/debug/portway")]
    bin: PathBuf,
    /// How many times to kill it.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Concurrent writers (each its own connection).
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Kill once this many writes of a trial are acknowledged ...
    #[arg(long, default_value_t = 200)]
    min_acks: usize,
    /// ... plus a random delay of up to this many milliseconds.
    #[arg(long, default_value_t = 300)]
    max_extra_ms: u64,
    /// Seed of the kill delays and value sizes (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The data directory (default: a new temporary one, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed =
        args.seed.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let temp = tempfile::tempdir();
    let data_dir = match (&args.data_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Ok(t)) => t.path().to_path_buf(),
        (None, Err(e)) => {
            eprintln!("cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = trials::Plan {
        bin: args.bin.clone(),
        data_dir,
        trials: args.trials,
        writers: args.writers,
        min_acks: args.min_acks,
        max_extra_delay: Duration::from_millis(args.max_extra_ms),
        seed,
    };
    println!(
        "crash trials: {} kills of {} with {} writers, kill after {} acknowledged writes + 0..{} ms, seed {seed}",
        plan.trials,
        plan.bin.display(),
        plan.writers,
        plan.min_acks,
        args.max_extra_ms
    );
    let began = Instant::now();
    let totals = trials::run(&plan, |trial, t| {
        if trial % 10 == 0 || trial == plan.trials {
            println!(
                "after {:>3} kills: {} writes acknowledged, {} lost, {} in-flight writes found committed, {} keys at revision {}",
                t.trials, t.acknowledged, t.lost, t.in_flight_committed, t.keys, t.revision
            );
        }
    })
    .await;
    println!(
        "done in {:.0} s: {} kills, {} starts (slowest {} ms; {} rolled back an unfinished commit), {} writes \
         acknowledged, {} lost, {} in-flight writes found committed; {} keys at revision {}",
        began.elapsed().as_secs_f64(),
        totals.trials,
        totals.starts,
        totals.slowest_start.as_millis(),
        totals.rollbacks,
        totals.acknowledged,
        totals.lost,
        totals.in_flight_committed,
        totals.keys,
        totals.revision
    );
    if totals.problems.is_empty() && totals.lost == 0 && totals.trials == plan.trials {
        ExitCode::SUCCESS
    } else {
        for p in &totals.problems {
            eprintln!("problem: {p}");
        }
        ExitCode::FAILURE
    }
}
