//! Timing one side of a comparison: `n` operations by `c` concurrent workers, each
//! operation's latency in an HDR histogram, throughput over the wall time of the whole.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Latencies are recorded in microseconds, from 1 µs to 60 s, 3 significant digits.
const HIGHEST_US: u64 = 60_000_000;

/// What one side measured over all its rounds.
#[derive(Clone)]
pub(super) struct Samples {
    /// Operation latencies, µs.
    pub latency: Histogram<u64>,
    /// Operations completed (each may carry several records: `records_per_op`).
    pub ops: u64,
    /// Records per operation (a batch publish carries 100).
    pub records_per_op: u64,
    /// Wall time of all rounds together.
    pub elapsed: Duration,
    /// Operations that failed (not counted in the latencies).
    pub errors: u64,
}

impl Samples {
    /// An empty record for operations of `records_per_op` records.
    pub(super) fn new(records_per_op: u64) -> Samples {
        Samples {
            latency: Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid bounds"),
            ops: 0,
            records_per_op,
            elapsed: Duration::ZERO,
            errors: 0,
        }
    }

    /// Records per second over the measured wall time.
    pub(super) fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs == 0.0 {
            0.0
        } else {
            (self.ops * self.records_per_op) as f64 / secs
        }
    }

    /// The latency at `quantile` (0.5, 0.99, 0.999), in milliseconds.
    pub(super) fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Adds another round's samples.
    pub(super) fn merge(&mut self, round: &Samples) {
        self.latency
            .add(&round.latency)
            .expect("histograms of the same bounds");
        self.ops += round.ops;
        self.elapsed += round.elapsed;
        self.errors += round.errors;
    }
}

/// Latencies of the parts of an operation, timed inside it, by part in the order first
/// seen: where an operation's time goes when its parts cannot be run alone.
#[derive(Clone, Default)]
pub(super) struct Parts(Arc<Mutex<Vec<Part>>>);

/// A part's name and the latencies timed for it.
type Part = (&'static str, Histogram<u64>);

impl Parts {
    /// Records that `part` of one operation took `spent`.
    pub(super) fn record(&self, part: &'static str, spent: Duration) {
        let us = spent.as_micros().clamp(1, u128::from(HIGHEST_US)) as u64;
        let mut parts = self.0.lock().expect("parts lock");
        let at = match parts.iter().position(|(name, _)| *name == part) {
            Some(at) => at,
            None => {
                let histogram = Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid bounds");
                parts.push((part, histogram));
                parts.len() - 1
            }
        };
        parts[at].1.record(us).expect("value within bounds");
    }

    /// Each part's median, ms, as breakdown lines.
    pub(super) fn medians(&self) -> Vec<(String, f64)> {
        let parts = self.0.lock().expect("parts lock");
        parts
            .iter()
            .map(|(name, h)| {
                (
                    format!("{name} (p50)"),
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                )
            })
            .collect()
    }
}

/// Index of the first warm-up operation: far from the measured ones, so records written
/// while warming up never collide with measured ones.
const WARM_UP_BASE: u64 = 1 << 40;

/// Runs govlink's path and the baseline interleaved: a short unmeasured warm-up of each
/// (connections, metadata, caches), then per round `ops` operations of govlink's path
/// followed by `ops` of the baseline. Operation indices are unique across rounds.
pub(super) async fn interleave<A, FA, B, FB>(
    options: &super::BenchOptions,
    ops: u64,
    records_per_op: u64,
    bar: &indicatif::ProgressBar,
    ours: A,
    theirs: B,
) -> (Samples, Samples)
where
    A: Fn(u64) -> FA + Send + Sync + 'static,
    FA: Future<Output = bool> + Send,
    B: Fn(u64) -> FB + Send + Sync + 'static,
    FB: Future<Output = bool> + Send,
{
    let (ours, theirs) = (Arc::new(ours), Arc::new(theirs));
    let c = options.concurrency.max(1);
    let warm = c as u64;
    run_round(warm, c, records_per_op, WARM_UP_BASE, Arc::clone(&ours)).await;
    run_round(warm, c, records_per_op, WARM_UP_BASE, Arc::clone(&theirs)).await;
    let (mut a, mut b) = (Samples::new(records_per_op), Samples::new(records_per_op));
    for round in 0..u64::from(options.rounds) {
        a.merge(&run_round(ops, c, records_per_op, round * ops, Arc::clone(&ours)).await);
        bar.inc(1);
        b.merge(&run_round(ops, c, records_per_op, round * ops, Arc::clone(&theirs)).await);
        bar.inc(1);
    }
    bar.finish_and_clear();
    (a, b)
}

/// One side of [`interleave_all`]: performs operation `i`, says whether it succeeded.
pub(super) type Op = Arc<dyn Fn(u64) -> BoxFuture<'static, bool> + Send + Sync>;

/// [`interleave`] for any number of sides (govlink's path first, then its baselines): a
/// warm-up of each, then per round `ops` operations of each side in turn. Returns each
/// side's samples in the order given.
pub(super) async fn interleave_all(
    options: &super::BenchOptions,
    ops: u64,
    records_per_op: u64,
    bar: &indicatif::ProgressBar,
    sides: &[Op],
) -> Vec<Samples> {
    let c = options.concurrency.max(1);
    let warm = c as u64;
    let as_fn = |side: &Op| {
        let side = Arc::clone(side);
        Arc::new(move |i| side(i))
    };
    for side in sides {
        run_round(warm, c, records_per_op, WARM_UP_BASE, as_fn(side)).await;
    }
    let mut samples: Vec<Samples> = sides.iter().map(|_| Samples::new(records_per_op)).collect();
    for round in 0..u64::from(options.rounds) {
        for (side, total) in sides.iter().zip(&mut samples) {
            total.merge(&run_round(ops, c, records_per_op, round * ops, as_fn(side)).await);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    samples
}

/// Runs `ops` operations with `concurrency` workers; `op(first + i)` performs operation
/// `i` and says whether it succeeded. Returns the round's samples.
async fn run_round<F, Fut>(
    ops: u64,
    concurrency: usize,
    records_per_op: u64,
    first: u64,
    op: Arc<F>,
) -> Samples
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (op, next) = (Arc::clone(&op), Arc::clone(&next));
        workers.spawn(async move {
            let mut samples = Samples::new(records_per_op);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops {
                    break;
                }
                let t = Instant::now();
                if op(first + i).await {
                    let us = t.elapsed().as_micros().clamp(1, u128::from(HIGHEST_US));
                    samples
                        .latency
                        .record(us as u64)
                        .expect("value within bounds");
                    samples.ops += 1;
                } else {
                    samples.errors += 1;
                }
            }
            samples
        });
    }
    let mut round = Samples::new(records_per_op);
    while let Some(worker) = workers.join_next().await {
        round.merge(&worker.expect("a bench worker panicked"));
    }
    round.elapsed = started.elapsed();
    round
}
