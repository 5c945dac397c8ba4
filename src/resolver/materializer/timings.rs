//! Where a materializer's time goes, stage by stage, summed over every batch since it
//! started: what `govlink bench rebuild` breaks its figure down with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The stages of one batch, in the order they run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stage {
    /// Joining a generation's group, until its first event.
    Join,
    /// Waiting for a batch's first event.
    Idle,
    /// Gathering the rest of the batch from the consumer's queue.
    Fill,
    /// Decoding and validating events (and dead-lettering the bad ones).
    Decode,
    /// Writing record entries and subject copies to the store.
    Store,
    /// Recording the materialized positions.
    Positions,
}

const STAGES: usize = 6;

/// Running totals, shared between a materializer and whoever reports on it.
#[derive(Debug, Default)]
pub struct Timings {
    nanos: [AtomicU64; STAGES],
    batches: AtomicU64,
    events: AtomicU64,
}

impl Timings {
    /// Adds `spent` to `stage`.
    pub(super) fn add(&self, stage: Stage, spent: Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.nanos[stage as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts a batch of `events` that went through every stage.
    pub(super) fn batch_done(&self, events: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// The totals so far.
    pub fn snapshot(&self) -> TimingsSnapshot {
        let stage = |s: Stage| Duration::from_nanos(self.nanos[s as usize].load(Ordering::Relaxed));
        TimingsSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            join: stage(Stage::Join),
            idle: stage(Stage::Idle),
            fill: stage(Stage::Fill),
            decode: stage(Stage::Decode),
            store: stage(Stage::Store),
            positions: stage(Stage::Positions),
        }
    }
}

/// Totals at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimingsSnapshot {
    /// Batches materialized.
    pub batches: u64,
    /// Events in them.
    pub events: u64,
    /// Time spent joining generations' groups, until their first event.
    pub join: Duration,
    /// Time spent waiting for a batch's first event.
    pub idle: Duration,
    /// Time spent gathering the rest of each batch.
    pub fill: Duration,
    /// Time spent decoding and validating.
    pub decode: Duration,
    /// Time spent in store writes.
    pub store: Duration,
    /// Time spent recording positions.
    pub positions: Duration,
}

impl TimingsSnapshot {
    /// Each stage after joining with its name, in order.
    pub fn stages(&self) -> [(&'static str, Duration); STAGES - 1] {
        [
            ("waiting for the next event", self.idle),
            ("filling the batch", self.fill),
            ("decoding and validating", self.decode),
            ("store writes", self.store),
            ("recording positions", self.positions),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_separately() {
        let timings = Timings::default();
        timings.add(Stage::Store, Duration::from_millis(3));
        timings.add(Stage::Store, Duration::from_millis(4));
        timings.add(Stage::Fill, Duration::from_millis(1));
        timings.batch_done(500);
        timings.batch_done(20);
        let s = timings.snapshot();
        assert_eq!((s.batches, s.events), (2, 520));
        assert_eq!(s.store, Duration::from_millis(7));
        assert_eq!(s.fill, Duration::from_millis(1));
        assert_eq!(s.join + s.idle + s.decode + s.positions, Duration::ZERO);
        assert_eq!(s.stages()[3], ("store writes", Duration::from_millis(7)));
    }
}
