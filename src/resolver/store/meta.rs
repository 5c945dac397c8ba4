//! The generation marker: which materialization the store holds, how far it got, and
//! whether lookups may trust it.
//!
//! A store without a marker is empty, was flushed, or was written by something else: it
//! cannot answer lookups. A resolver that finds it so starts a new generation: it clears
//! the store (state `clearing`), notes the last offset of every record partition as the
//! rebuild's targets (`rebuilding`), and materializes the topics from the beginning under
//! a consumer group named after the generation. Positions are recorded per generation;
//! when they reach the targets the store is `ready`. Every replica checks the generation
//! each time it records positions, so a replica still writing into an old generation
//! notices and joins the new one instead of recording progress it did not make.
//!
//! The marker also names the key layout the generation is written in ([`LAYOUT`]). A
//! store of another layout (written by an older or newer govlink) would answer lookups
//! from keys nobody writes any more, so it is treated like a foreign store: lookups say
//! it is lost, and the materializer starts a new generation.

use std::collections::BTreeMap;

/// The key layout this code reads and writes, recorded in the marker when a generation
/// starts. Layout 1 (no `layout` field) kept all of a subject's copies in one hash; layout
/// 2 splits them by record type and keeps each person's contribution index; layout 3
/// keeps events only in the copies, in stored form, listed by record id; layout 4 keeps
/// the access index in list order, with refusals collapsed (`crate::audit`'s index).
pub const LAYOUT: &str = "4";

/// Where a generation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    /// The store is being emptied before a rebuild; nobody materializes yet.
    Clearing,
    /// The topics are being materialized from the beginning, up to the targets.
    Rebuilding,
    /// The store has caught up with the topics as of the rebuild's start.
    Ready,
}

impl StoreState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreState::Clearing => "clearing",
            StoreState::Rebuilding => "rebuilding",
            StoreState::Ready => "ready",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<StoreState> {
        [
            StoreState::Clearing,
            StoreState::Rebuilding,
            StoreState::Ready,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The generation marker and the positions recorded in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The generation's id; the materializers' consumer group is named after it.
    pub generation: String,
    /// Where it stands.
    pub state: StoreState,
    /// Which deployment wrote it (topic prefix and consumer group): a store written by
    /// another one is foreign and gets rebuilt.
    pub source: String,
    /// The key layout the generation is written in (empty when the marker names none).
    pub layout: String,
    /// `topic/partition` → the last offset a rebuild must reach.
    pub targets: BTreeMap<String, i64>,
    /// `topic/partition` → the highest offset materialized in this generation.
    pub positions: BTreeMap<String, i64>,
}

impl Meta {
    /// Whether the generation is written in the layout this code reads ([`LAYOUT`]).
    pub fn has_current_layout(&self) -> bool {
        self.layout == LAYOUT
    }

    /// Events a rebuild covers, and how many of them are materialized (from offsets, so
    /// an estimate on topics with gaps).
    pub fn progress(&self) -> (u64, u64) {
        let mut total = 0u64;
        let mut done = 0u64;
        for (field, target) in &self.targets {
            let target = u64::try_from(*target + 1).unwrap_or(0);
            let reached = self
                .positions
                .get(field)
                .map_or(0, |p| u64::try_from(*p + 1).unwrap_or(0));
            total += target;
            done += reached.min(target);
        }
        (total, done)
    }

    /// Whether every target is reached.
    pub fn caught_up(&self) -> bool {
        self.targets
            .iter()
            .all(|(field, target)| self.positions.get(field).is_some_and(|p| p >= target))
    }
}
