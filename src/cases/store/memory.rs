//! The case store in this process's memory, for `dev` and `demo` without Redis: the
//! same promises as Redis (see the module above), one lock around all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Index, StoredCase};
use crate::proto::{Agency, Case, CaseEvent, Task};

#[derive(Default)]
struct Cases {
    /// Per case: its view and its outbox by sequence.
    views: HashMap<String, (Case, BTreeMap<u64, CaseEvent>)>,
    /// Per case: every event by sequence.
    histories: HashMap<String, BTreeMap<u64, CaseEvent>>,
    open: BTreeSet<String>,
    /// Every case, by (opening time, id), and each case's opening time.
    all: BTreeSet<(i64, String)>,
    opened: HashMap<String, i64>,
    watch: HashMap<String, BTreeSet<String>>,
    tasks: HashMap<Agency, BTreeMap<String, Task>>,
}

/// Cases in memory, shared by clones.
#[derive(Clone, Default)]
pub struct MemoryCaseStore(Arc<Mutex<Cases>>);

impl MemoryCaseStore {
    /// An empty store.
    pub fn new() -> MemoryCaseStore {
        MemoryCaseStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Cases> {
        // Nothing panics while holding the lock, so poisoning cannot leave it half-written.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn load(&self, case_id: &str) -> StoredCase {
        match self.lock().views.get(case_id) {
            Some((case, outbox)) => StoredCase {
                case: Some(case.clone()),
                outbox: outbox.values().cloned().collect(),
            },
            None => StoredCase::default(),
        }
    }

    pub(super) fn commit(&self, expected: u64, case: &Case, events: &[CaseEvent]) -> bool {
        let mut cases = self.lock();
        let stored = cases
            .views
            .get(&case.case_id)
            .map_or(0, |(c, _)| c.sequence);
        if stored != expected {
            return false;
        }
        let (view, outbox) = cases.views.entry(case.case_id.clone()).or_default();
        *view = case.clone();
        outbox.extend(events.iter().map(|e| (e.sequence, e.clone())));
        let history = cases.histories.entry(case.case_id.clone()).or_default();
        history.extend(events.iter().map(|e| (e.sequence, e.clone())));
        true
    }

    pub(super) fn restore(&self, case: &Case, history: &[CaseEvent]) -> bool {
        let mut cases = self.lock();
        let stored = cases.histories.entry(case.case_id.clone()).or_default();
        stored.extend(history.iter().map(|e| (e.sequence, e.clone())));
        let (view, _) = cases.views.entry(case.case_id.clone()).or_default();
        if view.sequence >= case.sequence {
            return false;
        }
        *view = case.clone();
        true
    }

    pub(super) fn published(&self, case_id: &str, events: &[CaseEvent]) {
        if let Some((_, outbox)) = self.lock().views.get_mut(case_id) {
            for e in events {
                outbox.remove(&e.sequence);
            }
        }
    }

    pub(super) fn history(&self, case_id: &str, after: u64) -> Vec<CaseEvent> {
        self.lock()
            .histories
            .get(case_id)
            .map(|h| h.range(after + 1..).map(|(_, e)| e.clone()).collect())
            .unwrap_or_default()
    }

    pub(super) fn index(&self, index: &Index) {
        let mut cases = self.lock();
        for (agency, task_id) in &index.undeliverable {
            if let Some(tasks) = cases.tasks.get_mut(agency) {
                tasks.remove(task_id);
            }
        }
        for subject in &index.subjects {
            let watchers = cases.watch.entry(subject.clone()).or_default();
            if index.open {
                watchers.insert(index.case_id.clone());
            } else {
                watchers.remove(&index.case_id);
            }
        }
        if index.open {
            cases.open.insert(index.case_id.clone());
        } else {
            cases.open.remove(&index.case_id);
        }
        // Like ZADD NX: a case keeps its first place.
        if !cases.opened.contains_key(&index.case_id) {
            cases.opened.insert(index.case_id.clone(), index.opened_ms);
            cases.all.insert((index.opened_ms, index.case_id.clone()));
        }
    }

    pub(super) fn newest(&self, limit: usize) -> Vec<String> {
        let cases = self.lock();
        cases
            .all
            .iter()
            .rev()
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect()
    }

    pub(super) fn watching(&self, subject: &str) -> Vec<String> {
        let cases = self.lock();
        cases
            .watch
            .get(subject)
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn open_cases(&self) -> Vec<String> {
        self.lock().open.iter().cloned().collect()
    }

    pub(super) fn add_task(&self, task: &Task) {
        let mut cases = self.lock();
        let tasks = cases.tasks.entry(task.agency()).or_default();
        tasks.insert(task.task_id.clone(), task.clone());
    }

    pub(super) fn tasks(&self, agency: Agency) -> Vec<Task> {
        let cases = self.lock();
        cases
            .tasks
            .get(&agency)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn ack_task(&self, agency: Agency, task_id: &str) {
        if let Some(tasks) = self.lock().tasks.get_mut(&agency) {
            tasks.remove(task_id);
        }
    }
}
