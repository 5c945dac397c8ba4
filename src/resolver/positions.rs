//! Read-your-writes: how far this process knows the store has materialized each record
//! partition, and lookups waiting until earlier publishes are materialized.
//!
//! One shared view per process. The local materializer feeds it as it records positions;
//! partitions other replicas own are seen by one poll of the store's positions, made only
//! while some lookup waits, however many lookups wait.
//!
//! Record topics may grow while the process runs (partitions added to scale out): a
//! position beyond the partitions known is refused only once the broker, asked again,
//! does not have that partition either.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, watch};
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;

use super::store::{Store, position_field};
use crate::kafka::{Brokers, partition_counts};
use crate::proto::Position;
use crate::records::Violations;

/// The most positions one lookup may wait for.
pub const MAX_POSITIONS: usize = 64;
/// How often the store's positions are read while a lookup waits.
const POLL: Duration = Duration::from_millis(20);
/// How long partition counts the broker gave stay trusted: positions beyond them ask the
/// broker again at most this often, however many lookups carry them.
const RECOUNT_EVERY: Duration = Duration::from_secs(1);
/// The longest one recount of the partitions may take.
const RECOUNT_TIMEOUT: Duration = Duration::from_secs(5);
/// The request field that carries the positions, in every request that has one.
const FIELD: &str = "min_positions";

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
    /// Record topic → partition count, to refuse positions that cannot exist: as found at
    /// start-up, raised when the broker reports more.
    partitions: RwLock<BTreeMap<String, i32>>,
    /// Where to count the partitions again (`None`: the counts are final).
    brokers: Option<Brokers>,
    /// When the broker was last asked for the counts and whether it gave them; held while
    /// asking it, so one lookup asks at a time.
    recounted: Mutex<Option<(Instant, bool)>>,
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

/// Why the positions a lookup carries were not met.
#[derive(Debug, Clone, PartialEq)]
pub enum Unmet {
    /// This one (the first such) was not materialized before the deadline.
    Late(Position),
    /// Partitions the topic does not have, as the broker says: by field.
    Invalid(Violations),
}

impl Positions {
    /// A view over `store`'s positions for record topics of `partitions` (topic →
    /// partition count), final: for a process that serves no lookups while topics grow.
    pub fn new(store: Store, partitions: BTreeMap<String, i32>) -> Positions {
        Positions::build(store, partitions, None)
    }

    /// A view over `store`'s positions for record topics of `partitions` (topic →
    /// partition count as found at start-up) that asks `brokers` again when a lookup
    /// carries a position beyond them: partitions added while running.
    pub fn growing(store: Store, partitions: BTreeMap<String, i32>, brokers: Brokers) -> Positions {
        Positions::build(store, partitions, Some(brokers))
    }

    fn build(
        store: Store,
        partitions: BTreeMap<String, i32>,
        brokers: Option<Brokers>,
    ) -> Positions {
        Positions {
            inner: Arc::new(Inner {
                store,
                partitions: RwLock::new(partitions),
                brokers,
                recounted: Mutex::new(None),
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

    /// Checks positions a lookup carries: at most [`MAX_POSITIONS`], each in a record
    /// topic, partitions and offsets not negative. `field` names the request field. A
    /// partition beyond those known is left to [`Positions::wait_for`], which asks the
    /// broker.
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
        let partitions = self.counts();
        for (i, p) in positions.iter().enumerate() {
            if !partitions.contains_key(&p.topic) {
                violations.add(format!("{field}[{i}].topic"), "is not a record topic");
            }
            if p.partition < 0 {
                violations.add(format!("{field}[{i}].partition"), "must not be negative");
            }
            if p.offset < 0 {
                violations.add(format!("{field}[{i}].offset"), "must not be negative");
            }
        }
    }

    /// Waits until every position is materialized; `Err` with the first one that was
    /// not by `deadline`, or with the partitions the broker does not have.
    pub async fn wait_for(&self, positions: &[Position], deadline: Instant) -> Result<(), Unmet> {
        let absent = self.absent_partitions(positions, deadline).await;
        if !absent.is_empty() {
            return Err(Unmet::Invalid(absent));
        }
        self.materialized(positions, deadline)
            .await
            .map_err(Unmet::Late)
    }

    /// Waits until every position is materialized; `Err` with the first one that was
    /// not by `deadline`.
    async fn materialized(
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
        self.check(positions, FIELD, &mut violations);
        if !violations.is_empty() {
            return Err(crate::grpc::invalid_argument(&violations));
        }
        self.wait_for(positions, deadline)
            .await
            .map_err(|unmet| match unmet {
                Unmet::Invalid(violations) => crate::grpc::invalid_argument(&violations),
                Unmet::Late(p) => tonic::Status::deadline_exceeded(format!(
                    "{}/{} not materialized up to offset {} before the deadline",
                    p.topic, p.partition, p.offset
                )),
            })
    }

    /// The partition counts known now (held briefly: never across an await).
    fn counts(&self) -> RwLockReadGuard<'_, BTreeMap<String, i32>> {
        self.inner
            .partitions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The positions beyond the partitions known, by index, with their topic's count.
    fn beyond(&self, positions: &[Position]) -> Vec<(usize, i32)> {
        let counts = self.counts();
        positions
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let count = *counts.get(&p.topic)?;
                (p.partition >= count).then_some((i, count))
            })
            .collect()
    }

    /// The positions in partitions their topic does not have, by field: beyond the counts
    /// known, and beyond those the broker gives when asked again (before `deadline`). A
    /// broker that does not answer refuses nothing: the wait then says what is missing.
    async fn absent_partitions(&self, positions: &[Position], deadline: Instant) -> Violations {
        let mut violations = Violations::default();
        if self.beyond(positions).is_empty() {
            return violations;
        }
        let counted = timeout_at(deadline, self.recount()).await.unwrap_or(false);
        if counted {
            for (i, count) in self.beyond(positions) {
                violations.add(
                    format!("{FIELD}[{i}].partition"),
                    format!("does not exist: the topic has {count} partitions"),
                );
            }
        }
        violations
    }

    /// Counts the record topics' partitions again unless the broker was asked within
    /// [`RECOUNT_EVERY`]; true when the counts known are the broker's (or final).
    async fn recount(&self) -> bool {
        let Some(brokers) = &self.inner.brokers else {
            return true;
        };
        let mut recounted = self.inner.recounted.lock().await;
        if let Some((at, counted)) = *recounted
            && at.elapsed() < RECOUNT_EVERY
        {
            return counted;
        }
        let topics: Vec<String> = self.counts().keys().cloned().collect();
        let found = partition_counts(brokers, &topics, RECOUNT_TIMEOUT).await;
        *recounted = Some((Instant::now(), found.is_ok()));
        match found {
            Ok(found) => {
                let mut known = self
                    .inner
                    .partitions
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                for (topic, count) in found {
                    // Partitions are never taken away from a topic: keep the highest count.
                    if let Some(known) = known.get_mut(&topic) {
                        *known = (*known).max(count);
                    }
                }
                true
            }
            Err(e) => {
                tracing::info!(error = %e, "cannot count the record topics' partitions");
                false
            }
        }
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

#[cfg(test)]
#[path = "positions_tests.rs"]
mod tests;
