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
//! - the store belongs to one *generation* of materialization (see [`Meta`]): positions
//!   are recorded per generation, only move forward, and lookups answer only once the
//!   generation has caught up with the topics.
//!
//! Applying a write has two steps: the record's own entry, then its copy under each
//! subject. The entry remembers the subjects of the current version and every subject
//! an earlier version had and this one has not (`gone`), so step two can be redone from
//! the entry alone: after a failure at any point, a retry of the batch converges to
//! exactly the state of an uninterrupted write, however many versions of one record the
//! batch carried.
//!
//! The event itself is kept only in the copies, in stored form ([`stored`]: without what
//! the record key and version give back), so a record costs its bytes once per subject
//! and no more; a record is read through the copy under its first subject.
//!
//! A subject's copies are kept per record type, and for contribution records step two
//! also keeps the person's contribution index (one small field per record, compare-and-set
//! by version like a copy), so a lookup reads only the types it returns and a summary
//! instead of hundreds of contribution records.

mod memory;
mod meta;
mod redis;
pub mod version;

pub use memory::MemoryStore;
pub use meta::{LAYOUT, Meta, StoreState};
pub use redis::RedisStore;

use std::borrow::Cow;

use crate::proto::{Position, RecordEvent};
use crate::records::{RecordKey, RecordType, SubjectKey, stored};
use crate::resolver::checks::ContributionSummary;

/// One record version to materialize.
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
        /// The stored form of the `RecordEvent` ([`stored::compact`]): the store keeps it
        /// as it is, and [`StoredRecord::decode`] restores the event.
        event: Cow<'a, [u8]>,
    },
    /// The record no longer exists; it is listed under no subject.
    Delete,
}

impl RecordWrite<'_> {
    /// The stored event, `None` for a deletion.
    fn event(&self) -> Option<&[u8]> {
        match &self.change {
            Change::Upsert { event, .. } => Some(event.as_ref()),
            Change::Delete => None,
        }
    }

    /// The subjects of this version in stored form (empty for a deletion).
    fn stored_subjects(&self) -> String {
        match &self.change {
            Change::Upsert { subjects, .. } => join_subjects(subjects.iter().map(|s| s.as_str())),
            Change::Delete => String::new(),
        }
    }
}

/// What step one (the record entries) decided for each write of a batch: `None` for a
/// stale write, else the subjects to tombstone and the subjects to list it under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntriesWritten(Vec<Option<SubjectPlan>>);

impl EntriesWritten {
    /// Per write of the batch: whether it was applied (not stale).
    pub fn applied_flags(&self) -> Vec<bool> {
        self.0.iter().map(Option::is_some).collect()
    }
}

/// Step two of one applied write, as its record entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubjectPlan {
    /// Subjects earlier versions had and this one has not (stored form).
    gone: String,
    /// Subjects of this version (stored form).
    current: String,
}

/// What a batch of writes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Writes of a version at least as high as the stored one (including replays).
    pub applied: usize,
    /// Writes older than the stored version, ignored.
    pub stale: usize,
}

/// One record as listed under a subject: live, or a tombstone left when a newer version
/// dropped the subject or deleted the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectEntry {
    /// The record's key.
    pub key: RecordKey,
    /// The version this entry was written for.
    pub version: u64,
    /// The stored event; `None` for a tombstone.
    pub event: Option<Vec<u8>>,
}

/// What a lookup reads of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRead {
    /// The person or property unit.
    pub subject: SubjectKey,
    /// The record types to read (only these are read and returned).
    pub types: Vec<RecordType>,
    /// Whether to read the person's contribution summary.
    pub contributions: bool,
}

/// What [`Store::read_subjects`] found for one [`SubjectRead`].
#[derive(Debug, Clone, Default)]
pub struct SubjectData {
    /// The live records of the asked types, ordered by record key.
    pub records: Vec<StoredRecord>,
    /// The contribution summary, when it was asked for (empty when there is none).
    pub contributions: Option<ContributionSummary>,
}

/// A live record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record's key.
    pub key: RecordKey,
    /// The stored version.
    pub version: u64,
    /// The stored form of its `RecordEvent`.
    pub event: Vec<u8>,
}

impl StoredRecord {
    /// The event as published.
    pub fn decode(&self) -> Result<RecordEvent, stored::NotAnEvent> {
        stored::restore(&self.key, self.version, &self.event)
    }
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
    /// The store has not caught up with the topics (it is new, was flushed, or is being
    /// rebuilt): an answer from it now could be wrong.
    #[error("{0}")]
    NotReady(NotReady),
    /// The generation this writer materializes into is over: the store was flushed or
    /// another resolver started a rebuild. Nothing of this write is recorded as done.
    #[error("the store's generation changed (it was flushed or a rebuild started)")]
    GenerationChanged,
    /// Redis gave no answer before the call's deadline (down, paused, failing over).
    #[error("redis gave no answer before the deadline")]
    NoAnswer,
}

/// `read`, given up at `deadline` with [`StoreError::NoAnswer`]: a lookup answers
/// `UNAVAILABLE` within its deadline however long Redis takes to fail (reconnecting,
/// or a server that stopped answering until the connection's response timeout).
pub async fn by_deadline<T>(
    deadline: tokio::time::Instant,
    read: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or(Err(StoreError::NoAnswer))
}

/// Why lookups cannot be answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// No generation marker of this key layout: the store is empty, flushed, foreign or
    /// written in another layout.
    Lost,
    /// A generation is being cleared or rebuilt from the topics.
    Rebuilding,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotReady::Lost => {
                "the record store is empty, was flushed or has another key layout; a rebuild \
                 from the topics is starting"
            }
            NotReady::Rebuilding => "a rebuild of the record store from the topics is running",
        })
    }
}

impl StoreError {
    /// Whether trying the same call again later may succeed (Redis unreachable, busy,
    /// loading) as opposed to a refusal that will repeat (a script error, foreign data).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Redis(e) => crate::redis_link::is_transient(e),
            StoreError::NotReady(_) | StoreError::GenerationChanged | StoreError::NoAnswer => true,
            StoreError::Corrupt(_) => false,
        }
    }
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
    /// Applies a batch of writes in order: both steps.
    pub async fn apply(&self, writes: &[RecordWrite<'_>]) -> Result<ApplyOutcome, StoreError> {
        let written = self.write_entries(writes).await?;
        self.write_subject_copies(writes, &written).await
    }

    /// Step one alone: the record entries of a batch. [`Store::apply`] runs it, then
    /// step two; it is public so a failure between the steps can be tested for real.
    pub async fn write_entries(
        &self,
        writes: &[RecordWrite<'_>],
    ) -> Result<EntriesWritten, StoreError> {
        if writes.is_empty() {
            return Ok(EntriesWritten::default());
        }
        match self {
            Store::Redis(s) => s.write_entries(writes).await,
            Store::Memory(s) => Ok(s.write_entries(writes)),
        }
    }

    /// Step two: every applied write's copy under its subjects, and a tombstone under
    /// every subject earlier versions had and it has not.
    pub async fn write_subject_copies(
        &self,
        writes: &[RecordWrite<'_>],
        written: &EntriesWritten,
    ) -> Result<ApplyOutcome, StoreError> {
        if writes.len() != written.0.len() {
            return Err(StoreError::Corrupt(format!(
                "{} entry results for {} writes",
                written.0.len(),
                writes.len()
            )));
        }
        let outcome = ApplyOutcome {
            applied: written.0.iter().flatten().count(),
            stale: written.0.iter().filter(|w| w.is_none()).count(),
        };
        if outcome.applied == 0 {
            return Ok(outcome);
        }
        match self {
            Store::Redis(s) => s.write_subject_copies(writes, written).await?,
            Store::Memory(s) => s.write_subject_copies(writes, written)?,
        }
        Ok(outcome)
    }

    /// The live record `key`; `None` if absent or deleted.
    /// [`StoreError::NotReady`] while the store has not caught up with the topics.
    pub async fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        match self {
            Store::Redis(s) => s.get(key).await,
            Store::Memory(s) => s.get(key),
        }
    }

    /// Every record listed under `subject`, tombstones included, ordered by record key:
    /// every record type of the subject, in one round trip.
    /// [`StoreError::NotReady`] while the store has not caught up with the topics.
    pub async fn subject_entries(
        &self,
        subject: &SubjectKey,
    ) -> Result<Vec<SubjectEntry>, StoreError> {
        match self {
            Store::Redis(s) => s.subject_entries(subject).await,
            Store::Memory(s) => s.subject_entries(subject),
        }
    }

    /// Every live record of `subject`, ordered by record key.
    pub async fn subject_records(
        &self,
        subject: &SubjectKey,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let entries = self.subject_entries(subject).await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                Some(StoredRecord {
                    event: e.event?,
                    key: e.key,
                    version: e.version,
                })
            })
            .collect())
    }

    /// What lookups read: for each of `reads`, the live records of the asked types and,
    /// if asked, the person's contribution summary. One round trip for all of them.
    /// [`StoreError::NotReady`] while the store has not caught up with the topics.
    pub async fn read_subjects(
        &self,
        reads: &[SubjectRead],
    ) -> Result<Vec<SubjectData>, StoreError> {
        match self {
            Store::Redis(s) => s.read_subjects(reads).await,
            Store::Memory(s) => s.read_subjects(reads),
        }
    }

    /// The generation marker and positions; `None` when the store has no marker (new,
    /// flushed, or written by something else).
    pub async fn meta(&self) -> Result<Option<Meta>, StoreError> {
        match self {
            Store::Redis(s) => s.meta().await,
            Store::Memory(s) => Ok(s.meta()),
        }
    }

    /// Starts generation `new` (state clearing) if the current one is still `seen`
    /// (`None`: no marker). Positions and targets of the old generation are dropped.
    /// False if another writer changed the generation first.
    pub async fn replace_generation(
        &self,
        seen: Option<&str>,
        new: &str,
        source: &str,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Redis(s) => s.replace_generation(seen, new, source).await,
            Store::Memory(s) => Ok(s.replace_generation(seen, new, source)),
        }
    }

    /// Deletes every record and subject entry, while generation `generation` is
    /// clearing; stops as soon as it no longer is. Returns how many keys it deleted.
    pub async fn clear(&self, generation: &str) -> Result<u64, StoreError> {
        match self {
            Store::Redis(s) => s.clear(generation).await,
            Store::Memory(s) => Ok(s.clear(generation)),
        }
    }

    /// Ends the clearing of `generation`: from now on it is rebuilt up to `targets` (the
    /// last offset of every non-empty record partition when the rebuild started), or
    /// ready at once when there are none. False if the generation changed.
    pub async fn start_rebuild(
        &self,
        generation: &str,
        targets: &[Position],
    ) -> Result<bool, StoreError> {
        match self {
            Store::Redis(s) => s.start_rebuild(generation, targets).await,
            Store::Memory(s) => Ok(s.start_rebuild(generation, targets)),
        }
    }

    /// Records that everything up to each position is materialized in `generation`
    /// (never moves back), and marks the store ready once a rebuild reached its
    /// targets. [`StoreError::GenerationChanged`] if the generation is over.
    pub async fn advance_positions(
        &self,
        generation: &str,
        positions: &[Position],
    ) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.advance_positions(generation, positions).await,
            Store::Memory(s) => s.advance_positions(generation, positions),
        }
    }
}

/// `topic/partition`: how positions and targets are keyed.
pub fn position_field(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// A set of subjects as stored: sorted, deduplicated, newline-separated.
fn join_subjects<'s>(subjects: impl Iterator<Item = &'s str>) -> String {
    let mut names: Vec<&str> = subjects.collect();
    names.sort_unstable();
    names.dedup();
    names.join("\n")
}

fn split_subjects(joined: &str) -> impl Iterator<Item = &str> {
    joined.split('\n').filter(|s| !s.is_empty())
}

/// The `gone` subjects of a new version: those of earlier versions (`gone` and
/// `previous`) that the new version (`current`) does not have. The Redis script computes
/// the same in Lua.
fn next_gone(gone: &str, previous: &str, current: &str) -> String {
    join_subjects(
        split_subjects(gone)
            .chain(split_subjects(previous))
            .filter(|s| !split_subjects(current).any(|c| c == *s)),
    )
}

/// The asked record types without repeats, in the order asked.
fn distinct(types: &[RecordType]) -> Vec<RecordType> {
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        if !out.contains(t) {
            out.push(*t);
        }
    }
    out
}

/// The contribution index fields of one applied contribution write: the value under the
/// subjects of its version, and the tombstone under the subjects it is no longer about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexValues {
    live: String,
    tombstone: String,
}

impl IndexValues {
    /// The value for one subject update of [`subject_updates`].
    fn value(&self, listed: bool) -> &str {
        if listed { &self.live } else { &self.tombstone }
    }
}

/// One applied write of a batch, ready for step two.
struct Applied<'w, 'a> {
    write: &'w RecordWrite<'a>,
    plan: &'w SubjectPlan,
    /// Set for contribution records only.
    index: Option<IndexValues>,
}

/// Step two of a batch, as both stores apply it: the applied writes, each with its
/// contribution index values. Contribution events are decoded here, before anything is
/// written, so a write the index cannot take changes nothing of step two.
fn step_two<'w, 'a>(
    writes: &'w [RecordWrite<'a>],
    written: &'w EntriesWritten,
) -> Result<Vec<Applied<'w, 'a>>, StoreError> {
    let mut applied = Vec::with_capacity(writes.len());
    for (write, plan) in writes.iter().zip(&written.0) {
        let Some(plan) = plan else { continue };
        applied.push(Applied {
            write,
            plan,
            index: index_values(write)?,
        });
    }
    Ok(applied)
}

/// The contribution index values of a write; `None` for records of other types.
fn index_values(w: &RecordWrite<'_>) -> Result<Option<IndexValues>, StoreError> {
    if w.key.record_type() != RecordType::ContributionPeriod {
        return Ok(None);
    }
    let tombstone = ContributionSummary::stored_tombstone(w.version);
    let Some(bytes) = w.event() else {
        return Ok(Some(IndexValues {
            live: tombstone.clone(),
            tombstone,
        }));
    };
    let event = stored::restore(&w.key, w.version, bytes)
        .map_err(|e| StoreError::Corrupt(format!("{} is not a RecordEvent: {e}", w.key)))?;
    let (_, live) = ContributionSummary::stored_value(&event).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "{} version {} has no contribution",
            w.key, w.version
        ))
    })?;
    Ok(Some(IndexValues { live, tombstone }))
}

/// Step two of an applied write: every current subject gets the version (`true`), every
/// gone subject a tombstone (`false`).
fn subject_updates(plan: &SubjectPlan) -> impl Iterator<Item = (&str, bool)> {
    split_subjects(&plan.current)
        .map(|s| (s, true))
        .chain(split_subjects(&plan.gone).map(|s| (s, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_values_lead_with_the_version_as_copies_do() {
        for v in [0, 7, 1 << 53, u64::MAX] {
            let tombstone = ContributionSummary::stored_tombstone(v);
            assert_eq!(version::split(tombstone.as_bytes()), Some((v, &b"0"[..])));
        }
    }

    #[test]
    fn gone_subjects_accumulate_until_a_version_has_them_again() {
        assert_eq!(next_gone("", "u:1\np:a", "u:1\np:b"), "p:a");
        assert_eq!(next_gone("p:a", "u:1\np:b", "u:1\np:c"), "p:a\np:b");
        assert_eq!(next_gone("p:a\np:b", "u:1\np:c", "u:1\np:a"), "p:b\np:c");
        assert_eq!(next_gone("p:b", "u:1", ""), "p:b\nu:1");
    }
}
