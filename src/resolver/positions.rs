//! Read-your-writes: how far this process knows the store has materialized each record
//! partition, and lookups waiting until earlier publishes are materialized.
//!
//! One shared view per process. The local materializer feeds it as it records positions;
//! partitions other replicas own are seen by one poll of the store's positions, made only
//! while some lookup waits, however many lookups wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;

use super::store::{Store, position_field};
use crate::proto::Position;
use crate::records::Violations;

/// The most positions one lookup may wait for.
pub const MAX_POSITIONS: usize = 64;
/// How often the store's positions are read while a lookup waits.
const POLL: Duration = Duration::from_millis(20);

/// What is known to be materialized: per `topic/partition`, the highest offset, in one
/// generation of the store.
#[derive(Debug, Clone, Default)]
struct Reached {
    generation: Option<String>,
    offsets: HashMap<String, i64>,
}

/// The shared view; cheap to clone.
#[derive(Clone)]
pub struct Positions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Record topic → partition count, to refuse positions that cannot exist.
    partitions: BTreeMap<String, i32>,
    reached: watch::Sender<Reached>,
    /// Lookups waiting now; the poller reads the store only while there are some.
    waiting: AtomicUsize,
    wake: Notify,
}

/// Decrements the waiting count when a wait ends, however it ends.
struct Waiting<'a>(&'a Inner);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Positions {
    /// A view over `store`'s positions for record topics of `partitions` (topic →
    /// partition count).
    pub fn new(store: Store, partitions: BTreeMap<String, i32>) -> Positions {
        Positions {
            inner: Arc::new(Inner {
                store,
                partitions,
                reached: watch::Sender::new(Reached::default()),
                waiting: AtomicUsize::new(0),
                wake: Notify::new(),
            }),
        }
    }

    /// The local materializer recorded `positions` in `generation`.
    pub fn record(&self, generation: &str, positions: &[Position]) {
        self.inner.reached.send_if_modified(|reached| {
            merge(
                reached,
                generation,
                positions
                    .iter()
                    .map(|p| (position_field(&p.topic, p.partition), p.offset)),
            )
        });
    }

    /// The store's generation changed: nothing is known to be materialized any more.
    pub fn reset(&self) {
        self.inner.reached.send_replace(Reached::default());
    }

    /// Checks positions a lookup carries: at most [`MAX_POSITIONS`], each in an existing
    /// partition of a record topic, offsets not negative. `field` names the request field.
    pub fn check(&self, positions: &[Position], field: &str, violations: &mut Violations) {
        if positions.len() > MAX_POSITIONS {
            violations.add(
                field,
                format!(
                    "must have at most {MAX_POSITIONS} positions, not {}",
                    positions.len()
                ),
            );
            return;
        }
        for (i, p) in positions.iter().enumerate() {
            let partitions = self.inner.partitions.get(&p.topic);
            if partitions.is_none() {
                violations.add(format!("{field}[{i}].topic"), "is not a record topic");
            }
            if p.partition < 0 {
                violations.add(format!("{field}[{i}].partition"), "must not be negative");
            } else if let Some(count) = partitions.filter(|count| p.partition >= **count) {
                violations.add(
                    format!("{field}[{i}].partition"),
                    format!("does not exist: the topic has {count} partitions"),
                );
            }
            if p.offset < 0 {
                violations.add(format!("{field}[{i}].offset"), "must not be negative");
            }
        }
    }

    /// Waits until every position is materialized; `Err` with the first one that was
    /// not by `deadline`.
    pub async fn wait_for(
        &self,
        positions: &[Position],
        deadline: Instant,
    ) -> Result<(), Position> {
        let fields: Vec<String> = positions
            .iter()
            .map(|p| position_field(&p.topic, p.partition))
            .collect();
        let missing = |reached: &Reached| {
            positions
                .iter()
                .zip(&fields)
                .find(|(p, f)| reached.offsets.get(*f).is_none_or(|o| *o < p.offset))
                .map(|(p, _)| p.clone())
        };
        let mut rx = self.inner.reached.subscribe();
        if missing(&rx.borrow_and_update()).is_none() {
            return Ok(());
        }
        self.inner.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.inner);
        self.inner.wake.notify_one();
        loop {
            let Some(first) = missing(&rx.borrow_and_update()) else {
                return Ok(());
            };
            if timeout_at(deadline, rx.changed()).await.is_err() {
                return Err(first);
            }
        }
    }

    /// [`Positions::check`] and [`Positions::wait_for`] for a call whose request carries
    /// the positions in `min_positions`: `INVALID_ARGUMENT` naming the field, or
    /// `DEADLINE_EXCEEDED` naming the first partition not materialized in time.
    pub async fn wait_for_call(
        &self,
        positions: &[Position],
        deadline: Instant,
    ) -> Result<(), tonic::Status> {
        let mut violations = Violations::default();
        self.check(positions, "min_positions", &mut violations);
        if !violations.is_empty() {
            return Err(crate::grpc::invalid_argument(&violations));
        }
        self.wait_for(positions, deadline).await.map_err(|p| {
            tonic::Status::deadline_exceeded(format!(
                "{}/{} not materialized up to offset {} before the deadline",
                p.topic, p.partition, p.offset
            ))
        })
    }

    /// The poller: while a lookup waits, reads the store's positions every few
    /// milliseconds (one read for all waiters). Runs until `shutdown`.
    pub async fn poll(self, shutdown: CancellationToken) {
        let inner = &self.inner;
        loop {
            while inner.waiting.load(Ordering::Relaxed) == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = inner.wake.notified() => {}
                }
            }
            match inner.store.meta().await {
                Ok(Some(meta)) => {
                    inner.reached.send_if_modified(|reached| {
                        merge(reached, &meta.generation, meta.positions.into_iter())
                    });
                }
                Ok(None) => self.reset(),
                Err(e) => tracing::debug!(error = %e, "cannot read materialized positions"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sleep(POLL) => {}
            }
        }
    }
}

/// Merges offsets of `generation` into `reached` (replacing it for another generation);
/// true if anything moved.
fn merge(
    reached: &mut Reached,
    generation: &str,
    offsets: impl Iterator<Item = (String, i64)>,
) -> bool {
    let mut changed = false;
    if reached.generation.as_deref() != Some(generation) {
        *reached = Reached {
            generation: Some(generation.to_owned()),
            offsets: HashMap::new(),
        };
        changed = true;
    }
    for (field, offset) in offsets {
        let stored = reached.offsets.entry(field).or_insert(-1);
        if offset > *stored {
            *stored = offset;
            changed = true;
        }
    }
    changed
}
