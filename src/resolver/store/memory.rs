//! The in-memory store of `dev` and `demo`: the same contract as Redis, in one process,
//! with the same two steps per write (so a failure between them means the same).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    EntriesWritten, LAYOUT, Meta, NotReady, RecordWrite, StoreError, StoreState, StoredRecord,
    SubjectData, SubjectEntry, SubjectPlan, SubjectRead, distinct, next_gone, position_field,
    split_subjects, step_two, subject_updates,
};
use crate::proto::Position;
use crate::records::{RecordKey, RecordType, SubjectKey};
use crate::resolver::checks::ContributionSummary;

/// A record's own entry. As in Redis, its event is kept only in its subject copies.
#[derive(Default)]
struct Entry {
    version: u64,
    subjects: String,
    gone: String,
}

/// One subject's copies of one record type: record key → (version, event or tombstone).
type SubjectCopies = BTreeMap<RecordKey, (u64, Option<Vec<u8>>)>;

/// One person's contribution index: record id → (version, stored value).
type ContributionIndex = BTreeMap<String, (u64, String)>;

#[derive(Default)]
struct State {
    records: HashMap<RecordKey, Entry>,
    /// By subject and record type, as Redis keys them.
    subjects: HashMap<(String, RecordType), SubjectCopies>,
    /// By subject.
    contributions: HashMap<String, ContributionIndex>,
    meta: Option<Meta>,
}

/// Records in a process's memory; lost when it exits.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store (no generation yet, like a new Redis).
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every operation below completes its changes before another can run, so a
        // poisoned lock holds no half-applied step: recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write_entries(&self, writes: &[RecordWrite<'_>]) -> EntriesWritten {
        let mut state = self.lock();
        EntriesWritten(
            writes
                .iter()
                .map(|w| {
                    let entry = state.records.entry(w.key.clone()).or_default();
                    if entry.version > w.version {
                        return None;
                    }
                    if entry.version < w.version {
                        let current = w.stored_subjects();
                        entry.gone = next_gone(&entry.gone, &entry.subjects, &current);
                        entry.subjects = current;
                        entry.version = w.version;
                    }
                    Some(SubjectPlan {
                        gone: entry.gone.clone(),
                        current: entry.subjects.clone(),
                    })
                })
                .collect(),
        )
    }

    pub(super) fn write_subject_copies(
        &self,
        writes: &[RecordWrite<'_>],
        written: &EntriesWritten,
    ) -> Result<(), StoreError> {
        let applied = step_two(writes, written)?;
        let mut state = self.lock();
        for a in applied {
            let (w, record_type) = (a.write, a.write.key.record_type());
            for (subject, listed) in subject_updates(a.plan) {
                let event = w.event().filter(|_| listed).map(<[u8]>::to_vec);
                let copies = state
                    .subjects
                    .entry((subject.to_owned(), record_type))
                    .or_default();
                if copies
                    .get(&w.key)
                    .is_none_or(|(stored, _)| *stored < w.version)
                {
                    copies.insert(w.key.clone(), (w.version, event));
                }
                if let Some(index) = &a.index {
                    let fields = state.contributions.entry(subject.to_owned()).or_default();
                    let id = w.key.record_id();
                    if fields.get(id).is_none_or(|(stored, _)| *stored < w.version) {
                        let value = index.value(listed).to_owned();
                        fields.insert(id.to_owned(), (w.version, value));
                    }
                }
            }
        }
        Ok(())
    }

    fn ready(state: &State) -> Result<(), StoreError> {
        match state.meta.as_ref() {
            Some(meta) if meta.has_current_layout() => match meta.state {
                StoreState::Ready => Ok(()),
                _ => Err(StoreError::NotReady(NotReady::Rebuilding)),
            },
            _ => Err(StoreError::NotReady(NotReady::Lost)),
        }
    }

    pub(super) fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        let state = self.lock();
        Self::ready(&state)?;
        let first = state
            .records
            .get(key)
            .and_then(|e| split_subjects(&e.subjects).next());
        let copy = first
            .and_then(|s| state.subjects.get(&(s.to_owned(), key.record_type())))
            .and_then(|copies| copies.get(key));
        Ok(copy.and_then(|(version, event)| {
            Some(StoredRecord {
                key: key.clone(),
                version: *version,
                event: event.clone()?,
            })
        }))
    }

    pub(super) fn subject_entries(
        &self,
        subject: &SubjectKey,
    ) -> Result<Vec<SubjectEntry>, StoreError> {
        let state = self.lock();
        Self::ready(&state)?;
        let mut listed = Vec::new();
        for t in RecordType::ALL {
            let Some(copies) = state.subjects.get(&(subject.as_str().to_owned(), t)) else {
                continue;
            };
            listed.extend(copies.iter().map(|(key, (version, event))| SubjectEntry {
                key: key.clone(),
                version: *version,
                event: event.clone(),
            }));
        }
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    pub(super) fn read_subjects(
        &self,
        reads: &[SubjectRead],
    ) -> Result<Vec<SubjectData>, StoreError> {
        let state = self.lock();
        Self::ready(&state)?;
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            let subject = read.subject.as_str().to_owned();
            let mut data = SubjectData::default();
            for t in distinct(&read.types) {
                let Some(copies) = state.subjects.get(&(subject.clone(), t)) else {
                    continue;
                };
                for (key, (version, event)) in copies {
                    if let Some(event) = event {
                        data.records.push(StoredRecord {
                            key: key.clone(),
                            version: *version,
                            event: event.clone(),
                        });
                    }
                }
            }
            data.records.sort_by(|a, b| a.key.cmp(&b.key));
            if read.contributions {
                let fields = state.contributions.get(&subject).into_iter().flatten();
                let summary = ContributionSummary::from_stored(
                    fields.map(|(id, (_, value))| (id.as_str(), value.as_bytes())),
                )
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                data.contributions = Some(summary);
            }
            out.push(data);
        }
        Ok(out)
    }

    pub(super) fn meta(&self) -> Option<Meta> {
        self.lock().meta.clone()
    }

    pub(super) fn replace_generation(&self, seen: Option<&str>, new: &str, source: &str) -> bool {
        let mut state = self.lock();
        if state.meta.as_ref().map(|m| m.generation.as_str()) != seen {
            return false;
        }
        state.meta = Some(Meta {
            generation: new.to_owned(),
            state: StoreState::Clearing,
            source: source.to_owned(),
            layout: LAYOUT.to_owned(),
            targets: BTreeMap::new(),
            positions: BTreeMap::new(),
        });
        true
    }

    pub(super) fn clear(&self, generation: &str) -> u64 {
        let mut state = self.lock();
        if !state
            .meta
            .as_ref()
            .is_some_and(|m| m.generation == generation && m.state == StoreState::Clearing)
        {
            return 0;
        }
        let deleted = state.records.len() + state.subjects.len() + state.contributions.len();
        state.records.clear();
        state.subjects.clear();
        state.contributions.clear();
        deleted as u64
    }

    pub(super) fn start_rebuild(&self, generation: &str, targets: &[Position]) -> bool {
        let mut state = self.lock();
        let Some(meta) = state.meta.as_mut() else {
            return false;
        };
        if meta.generation != generation || meta.state != StoreState::Clearing {
            return false;
        }
        meta.targets = targets
            .iter()
            .map(|p| (position_field(&p.topic, p.partition), p.offset))
            .collect();
        meta.state = if meta.targets.is_empty() {
            StoreState::Ready
        } else {
            StoreState::Rebuilding
        };
        true
    }

    pub(super) fn advance_positions(
        &self,
        generation: &str,
        positions: &[Position],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let Some(meta) = state.meta.as_mut().filter(|m| m.generation == generation) else {
            return Err(StoreError::GenerationChanged);
        };
        for p in positions {
            let stored = meta
                .positions
                .entry(position_field(&p.topic, p.partition))
                .or_insert(p.offset);
            *stored = (*stored).max(p.offset);
        }
        if meta.state == StoreState::Rebuilding && meta.caught_up() {
            meta.state = StoreState::Ready;
        }
        Ok(())
    }
}
