//! The case store in this process's memory, for `dev` and `demo` without Redis: the
//! same promises as Redis (see the module above), one lock around all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{CaseList, Index, StoredCase, TaskSnapshot};
use crate::proto::{Agency, Case, CaseEvent, Task};
use crate::resolver::disputes::Dispute;

#[derive(Default)]
struct Cases {
    /// Per case: its view and its outbox by sequence.
    views: HashMap<String, (Case, BTreeMap<u64, CaseEvent>)>,
    /// Per case: every event by sequence.
    histories: HashMap<String, BTreeMap<u64, CaseEvent>>,
    open: BTreeSet<String>,
    /// The lists of cases, each by (opening time, id); and each case's opening time.
    lists: HashMap<CaseList, BTreeSet<(i64, String)>>,
    opened: HashMap<String, i64>,
    watch: HashMap<String, BTreeSet<String>>,
    tasks: HashMap<Agency, BTreeMap<String, Task>>,
    /// Changes of each agency's tasks.
    task_changes: HashMap<Agency, u64>,
    /// Per record key: the open objections against it, by case id, with the version.
    disputes: HashMap<String, BTreeMap<String, u64>>,
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
            cases.remove_task(*agency, task_id);
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
        if let Some((key, version)) = &index.dispute {
            let open = cases.disputes.entry(key.clone()).or_default();
            if index.open {
                open.insert(index.case_id.clone(), *version);
            } else {
                open.remove(&index.case_id);
            }
        }
        // Like ZADD NX: a case keeps its first place.
        let opened = *cases
            .opened
            .entry(index.case_id.clone())
            .or_insert(index.opened_ms);
        let entry = (opened, index.case_id.clone());
        for list in &index.listed {
            cases
                .lists
                .entry(list.clone())
                .or_default()
                .insert(entry.clone());
        }
        for list in &index.unlisted {
            if let Some(members) = cases.lists.get_mut(list) {
                members.remove(&entry);
            }
        }
    }

    pub(super) fn disputes(&self, keys: &[String]) -> Vec<Dispute> {
        let cases = self.lock();
        keys.iter()
            .filter_map(|k| Some((k, cases.disputes.get(k)?)))
            .flat_map(|(k, open)| {
                open.iter().map(|(case_id, version)| Dispute {
                    record_key: k.clone(),
                    version: *version,
                    objection_id: case_id.clone(),
                })
            })
            .collect()
    }

    pub(super) fn list_sizes(&self, lists: &[CaseList]) -> Vec<u64> {
        let cases = self.lock();
        lists
            .iter()
            .map(|l| cases.lists.get(l).map_or(0, |m| m.len() as u64))
            .collect()
    }

    pub(super) fn list_page(
        &self,
        list: &CaseList,
        start: usize,
        count: usize,
    ) -> (Vec<String>, bool) {
        let cases = self.lock();
        let Some(members) = cases.lists.get(list) else {
            return (Vec::new(), false);
        };
        let mut page: Vec<String> = members
            .iter()
            .rev()
            .skip(start)
            .take(count.saturating_add(1))
            .map(|(_, id)| id.clone())
            .collect();
        let more = page.len() > count;
        page.truncate(count);
        (page, more)
    }

    pub(super) fn views(&self, case_ids: &[String]) -> Vec<Option<Case>> {
        let cases = self.lock();
        case_ids
            .iter()
            .map(|id| cases.views.get(id).map(|(case, _)| case.clone()))
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
        *cases.task_changes.entry(task.agency()).or_default() += 1;
    }

    pub(super) fn task_changes(&self, agency: Agency) -> u64 {
        self.lock().task_changes.get(&agency).copied().unwrap_or(0)
    }

    pub(super) fn task_snapshot(&self, agency: Agency) -> TaskSnapshot {
        let cases = self.lock();
        TaskSnapshot {
            tasks: cases
                .tasks
                .get(&agency)
                .map(|t| t.values().cloned().collect())
                .unwrap_or_default(),
            changes: cases.task_changes.get(&agency).copied().unwrap_or(0),
        }
    }

    pub(super) fn ack_task(&self, agency: Agency, task_id: &str) {
        self.lock().remove_task(agency, task_id);
    }
}

impl Cases {
    /// Drops a kept task; a change of the agency's tasks if it was kept.
    fn remove_task(&mut self, agency: Agency, task_id: &str) {
        let removed = self
            .tasks
            .get_mut(&agency)
            .is_some_and(|tasks| tasks.remove(task_id).is_some());
        if removed {
            *self.task_changes.entry(agency).or_default() += 1;
        }
    }
}
