//! The store contract: where the resolver keeps the latest version of every record.
//! Redis in production; an in-memory store for `dev` and `demo`. Both keep the same
//! promises, checked by the same contract tests:
//!
//! - a write lands only if its version is higher than the stored one, so duplicates,
//!   replays and reordering converge to the highest version;
//! - a deletion is a tombstone carrying its version, so an older version cannot
//!   resurrect the record;
//! - every live record is listed under each of its subjects, and when a newer version
//!   drops a subject (a flat sold to a new owner), the old subject stops listing it;
//! - the materialized position per topic partition only moves forward.
//!
//! Applying a write has two steps: the record's own entry (which remembers the subjects
//! of the current and of the previous version), then its copy under each subject. Either
//! step may be repeated after a crash: repeating a write of the stored version redoes the
//! second step, which is idempotent.

mod memory;
mod redis;

pub use memory::MemoryStore;
pub use redis::RedisStore;

use crate::proto::Position;
use crate::records::{RecordKey, SubjectKey};

/// One record version to materialize. It borrows the encoded event from the message it
/// was read from, so a batch is written to the store without copying payloads.
#[derive(Debug, Clone)]
pub struct RecordWrite<'a> {
    /// The record's key.
    pub key: RecordKey,
    /// Its version at the source.
    pub version: u64,
    /// What this version does to the record.
    pub change: Change<'a>,
}

/// A new version's content, or the record's deletion.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    /// The record as of this version.
    Upsert {
        /// The subjects the record is about.
        subjects: Vec<SubjectKey>,
        /// The encoded `RecordEvent`.
        event: &'a [u8],
    },
    /// The record no longer exists; it is listed under no subject.
    Delete,
}

impl RecordWrite<'_> {
    /// The encoded event, `None` for a deletion.
    fn event(&self) -> Option<&[u8]> {
        match &self.change {
            Change::Upsert { event, .. } => Some(event),
            Change::Delete => None,
        }
    }

    /// The subjects of this version in stored form (empty for a deletion).
    fn stored_subjects(&self) -> String {
        match &self.change {
            Change::Upsert { subjects, .. } => join_subjects(subjects),
            Change::Delete => String::new(),
        }
    }
}

/// What a batch of writes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Writes of a version at least as high as the stored one (including replays).
    pub applied: usize,
    /// Writes older than the stored version, ignored.
    pub stale: usize,
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis answered something the store did not write.
    #[error("unexpected reply from redis: {0}")]
    Corrupt(String),
}

/// The store behind the resolver.
#[derive(Clone)]
pub enum Store {
    /// Redis (production, tests).
    Redis(RedisStore),
    /// In-process memory (`dev`, `demo`).
    Memory(MemoryStore),
}

impl Store {
    /// Applies a batch of writes in order.
    pub async fn apply(&self, writes: &[RecordWrite<'_>]) -> Result<ApplyOutcome, StoreError> {
        if writes.is_empty() {
            return Ok(ApplyOutcome::default());
        }
        match self {
            Store::Redis(s) => s.apply(writes).await,
            Store::Memory(s) => Ok(s.apply(writes)),
        }
    }

    /// The encoded event of the live record `key`; `None` if absent or deleted.
    pub async fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Redis(s) => s.get(key).await,
            Store::Memory(s) => Ok(s.get(key)),
        }
    }

    /// The encoded events of every live record of `subject`, ordered by record key.
    pub async fn subject_records(&self, subject: &SubjectKey) -> Result<Vec<Vec<u8>>, StoreError> {
        match self {
            Store::Redis(s) => s.subject_records(subject).await,
            Store::Memory(s) => Ok(s.subject_records(subject)),
        }
    }

    /// Records that everything up to each position is materialized (never moves back).
    pub async fn advance_positions(&self, positions: &[Position]) -> Result<(), StoreError> {
        if positions.is_empty() {
            return Ok(());
        }
        match self {
            Store::Redis(s) => s.advance_positions(positions).await,
            Store::Memory(s) => {
                s.advance_positions(positions);
                Ok(())
            }
        }
    }

    /// The highest offset materialized in a topic partition.
    pub async fn position(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Redis(s) => s.position(topic, partition).await,
            Store::Memory(s) => Ok(s.position(topic, partition)),
        }
    }
}

/// Versions are stored as fixed-width decimals: string order is numeric order for every
/// `u64`, and Lua compares them without losing precision above 2^53.
fn version_text(version: u64) -> String {
    format!("{version:020}")
}

fn position_field(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The subjects of one version, as stored: sorted, newline-separated.
fn join_subjects(subjects: &[SubjectKey]) -> String {
    let mut names: Vec<&str> = subjects.iter().map(SubjectKey::as_str).collect();
    names.sort_unstable();
    names.dedup();
    names.join("\n")
}

fn split_subjects(joined: &str) -> impl Iterator<Item = &str> {
    joined.split('\n').filter(|s| !s.is_empty())
}

/// Step two of an applied write, given the subjects the record entry returned: every
/// current subject gets the version (`true`), every subject the previous version had and
/// this one has not gets a tombstone (`false`).
fn subject_updates<'s>(
    previous: &'s str,
    current: &'s str,
) -> impl Iterator<Item = (&'s str, bool)> {
    split_subjects(current).map(|s| (s, true)).chain(
        split_subjects(previous)
            .filter(move |p| !split_subjects(current).any(|c| c == *p))
            .map(|s| (s, false)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_orders_like_numbers() {
        let mut versions = [0, 9, 10, 1 << 53, (1 << 53) + 1, u64::MAX];
        versions.reverse();
        let mut texts: Vec<String> = versions.iter().map(|v| version_text(*v)).collect();
        texts.sort();
        versions.sort_unstable();
        assert_eq!(
            texts,
            versions
                .iter()
                .map(|v| version_text(*v))
                .collect::<Vec<_>>()
        );
    }
}
