//! The in-memory store of `dev` and `demo`: the same contract as Redis, in one process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{ApplyOutcome, RecordWrite, position_field, subject_updates};
use crate::proto::Position;
use crate::records::{RecordKey, SubjectKey};

#[derive(Default)]
struct Entry {
    version: u64,
    event: Option<Vec<u8>>,
    subjects: String,
    previous_subjects: String,
}

/// One subject's copies: record key → (version, event or tombstone).
type SubjectCopies = BTreeMap<RecordKey, (u64, Option<Vec<u8>>)>;

#[derive(Default)]
struct State {
    records: HashMap<RecordKey, Entry>,
    subjects: HashMap<String, SubjectCopies>,
    positions: HashMap<String, i64>,
}

/// Records in a process's memory; lost when it exits.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write behind: every
        // write below completes before any other code runs. Recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn apply(&self, writes: &[RecordWrite<'_>]) -> ApplyOutcome {
        let mut state = self.lock();
        let mut outcome = ApplyOutcome::default();
        for w in writes {
            let entry = state.records.entry(w.key.clone()).or_default();
            let (previous, current) = if entry.version > w.version {
                outcome.stale += 1;
                continue;
            } else if entry.version == w.version && entry.version > 0 {
                (entry.previous_subjects.clone(), entry.subjects.clone())
            } else {
                let current = w.stored_subjects();
                entry.previous_subjects = std::mem::replace(&mut entry.subjects, current.clone());
                entry.version = w.version;
                entry.event = w.event().map(<[u8]>::to_vec);
                (entry.previous_subjects.clone(), current)
            };
            outcome.applied += 1;
            for (subject, listed) in subject_updates(&previous, &current) {
                let event = w.event().filter(|_| listed).map(<[u8]>::to_vec);
                put(&mut state, subject, &w.key, w.version, event);
            }
        }
        outcome
    }

    pub(super) fn get(&self, key: &RecordKey) -> Option<Vec<u8>> {
        self.lock().records.get(key).and_then(|e| e.event.clone())
    }

    pub(super) fn subject_records(&self, subject: &SubjectKey) -> Vec<Vec<u8>> {
        self.lock()
            .subjects
            .get(subject.as_str())
            .map(|records| records.values().filter_map(|(_, e)| e.clone()).collect())
            .unwrap_or_default()
    }

    pub(super) fn advance_positions(&self, positions: &[Position]) {
        let mut state = self.lock();
        for p in positions {
            let stored = state
                .positions
                .entry(position_field(&p.topic, p.partition))
                .or_insert(-1);
            *stored = (*stored).max(p.offset);
        }
    }

    pub(super) fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.lock()
            .positions
            .get(&position_field(topic, partition))
            .copied()
    }
}

fn put(state: &mut State, subject: &str, key: &RecordKey, version: u64, event: Option<Vec<u8>>) {
    let records = state.subjects.entry(subject.to_owned()).or_default();
    match records.get(key) {
        Some((stored, _)) if *stored >= version => {}
        _ => {
            records.insert(key.clone(), (version, event));
        }
    }
}
