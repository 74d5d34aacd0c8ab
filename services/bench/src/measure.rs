//! The harness both benchmarks measure with: operations and phases, the statistics of a phase
//! and the rows they make, measuring phases side by side, and what a run sets up first.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use hdrhistogram::Histogram;

/// Name of the echo baseline (a bare tonic `Health/Check`) in both benchmarks' tables.
pub(crate) const ECHO: &str = "echo (Health/Check)";

// ------------------------------------------------------------------------------------ run

/// Telemetry at `warn`, so that the benchmark's own lines stand out.
pub(crate) fn init_telemetry(service_name: &str) -> anyhow::Result<einfo_common::telemetry::TelemetryGuard> {
    let telemetry = einfo_common::telemetry::TelemetrySettings { log_filter: "warn".into(), ..Default::default() };
    einfo_common::telemetry::init(service_name, &telemetry)
}

/// The cores this process may use, for the heading.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A new, empty directory `<prefix>-<uuid>` under the system's temporary directory.
pub(crate) fn scratch_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

// ------------------------------------------------------------------------------------ figures

/// A latency histogram in microseconds, up to two minutes.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// A latency quantile of `hist` in milliseconds (recorded in microseconds).
pub(crate) fn quantile_ms(hist: &Histogram<u64>, q: f64) -> f64 {
    hist.value_at_quantile(q) as f64 / 1000.0
}

/// KiB as MiB.
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The figures of one measured phase.
pub(crate) struct Stats {
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) hist: Histogram<u64>,
    pub(crate) first_error: Option<String>,
}

impl Stats {
    pub(crate) fn empty() -> Self {
        Stats { ops: 0, errors: 0, elapsed: Duration::ZERO, hist: histogram(), first_error: None }
    }

    /// Counts one operation: its latency if it succeeded, else an error (the first one kept).
    pub(crate) fn record(&mut self, outcome: anyhow::Result<Duration>) {
        match outcome {
            Ok(latency) => {
                self.ops += 1;
                self.hist.saturating_record(latency.as_micros() as u64);
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        let _ = self.hist.add(&other.hist);
        self.ops += other.ops;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in milliseconds (recorded in microseconds).
    pub(crate) fn ms(&self, q: f64) -> f64 {
        quantile_ms(&self.hist, q)
    }
}

/// One line of the table.
pub(crate) struct Row {
    pub(crate) what: &'static str,
    pub(crate) db: &'static str,
    pub(crate) conc: usize,
    pub(crate) stats: Stats,
}

pub(crate) fn print_row(r: &Row) {
    let s = &r.stats;
    println!(
        "{:<26} {:<9} {:>4} {:>11.0} {:>9.2} {:>9.2} {:>8} {:>7}",
        r.what,
        r.db,
        r.conc,
        s.ops_per_sec(),
        s.ms(0.5),
        s.ms(0.99),
        s.ops,
        s.errors
    );
}

// ------------------------------------------------------------------------------------ phases

/// A process-wide counter: every operation gets a number no other one has (unique request ids,
/// domains and keys across phases and warm-ups).
pub(crate) static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A cheap, well-spread hash of an operation number (picks rows at random without a generator).
pub(crate) fn spread(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// One measured operation, called as `op(worker, unique)`; each worker waits for its call to
/// finish before the next.
pub(crate) type Op = Arc<dyn Fn(usize, u64) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

pub(crate) fn op<F, Fut>(f: F) -> Op
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Arc::new(move |w, n| f(w, n).boxed())
}

/// An operation to measure and the row it makes.
pub(crate) struct Phase {
    what: &'static str,
    db: &'static str,
    op: Op,
}

pub(crate) fn phase(what: &'static str, db: &'static str, op: Op) -> Phase {
    Phase { what, db, op }
}

/// How long [`measure`] runs each phase, and which phases it keeps.
pub(crate) struct Schedule<'a> {
    /// Seconds each phase runs, after its warm-up.
    pub(crate) seconds: u64,
    /// Seconds of warm-up before each phase (not counted).
    pub(crate) warmup_seconds: u64,
    /// Only the phases whose name contains one of these comma-separated texts (all if `None`).
    pub(crate) only: Option<&'a str>,
}

/// Runs `op` on `conc` workers until `dur` has passed.
pub(crate) async fn run_for(conc: usize, dur: Duration, op: &Op) -> Stats {
    let start = Instant::now();
    let deadline = start + dur;
    let workers: Vec<_> = (0..conc)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                while Instant::now() < deadline {
                    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    stats.record(op(w, n).await.map(|()| t.elapsed()));
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::empty();
    for w in workers {
        match w.await {
            Ok(stats) => total.merge(stats),
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| format!("worker panicked: {e}"));
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// Measures `phases` side by side at concurrency `conc`: each warms up, then they take turns
/// in one-second slices (in alternating order) until each has run `--seconds`. A change in the
/// machine's load during the group then weighs on every phase of it alike, so their ratios hold.
pub(crate) async fn measure(schedule: &Schedule<'_>, conc: usize, phases: Vec<Phase>) -> Vec<Row> {
    let phases: Vec<Phase> = phases
        .into_iter()
        .filter(|p| match schedule.only {
            Some(only) => only.split(',').any(|o| p.what.to_lowercase().contains(&o.trim().to_lowercase())),
            None => true,
        })
        .collect();
    if phases.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = phases.iter().map(|p| format!("{} {}", p.what, p.db)).collect();
    eprintln!("    c={conc}: {}", names.join(" | "));
    if schedule.warmup_seconds > 0 {
        for p in &phases {
            run_for(conc, Duration::from_secs(schedule.warmup_seconds), &p.op).await;
        }
    }
    let mut stats: Vec<Stats> = phases.iter().map(|_| Stats::empty()).collect();
    for slice in 0..schedule.seconds.max(1) {
        let mut order: Vec<usize> = (0..phases.len()).collect();
        if slice % 2 == 1 {
            order.reverse();
        }
        for i in order {
            stats[i].merge(run_for(conc, Duration::from_secs(1), &phases[i].op).await);
        }
    }
    phases
        .into_iter()
        .zip(stats)
        .map(|(p, stats)| {
            eprintln!(
                "      {:<24} {:<8} {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms{}",
                p.what,
                p.db,
                stats.ops_per_sec(),
                stats.ms(0.5),
                stats.ms(0.99),
                if stats.errors > 0 { format!("  {} errors", stats.errors) } else { String::new() }
            );
            Row { what: p.what, db: p.db, conc, stats }
        })
        .collect()
}
