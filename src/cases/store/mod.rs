//! Where the engine keeps each case: its view (the case as its events left it), its
//! outbox (events decided but not yet acknowledged by the broker) and its history (every
//! event, for `WatchCase`); and what finds cases and tasks: the open cases, every case
//! by opening time, the open cases whose plan reads a subject's records (so a record
//! change reaches the cases it may prove a step of), and each agency's tasks not yet
//! acknowledged (which a task stream sends again after a reconnect).
//!
//! Redis in production; in memory for `dev` and `demo` without Redis. Both keep the same
//! promises:
//!
//! - a command's outcome is committed first, view and outbox together, by a
//!   compare-and-set on the case's sequence number (so a second writer, a partition's
//!   old owner finishing late, changes nothing), and published from the outbox after. A
//!   crash between the two leaves the events in the outbox; the next command of the case
//!   publishes them first. The topic may so receive an event twice, always with the same
//!   sequence and bytes;
//! - indexing is idempotent: the engine indexes a case after every command it applies;
//!   the lists `ListCases` reads (see `index.rs`) are hints it filters again;
//! - every change of an agency's kept tasks counts one change of them, in the same
//!   atomic step, so a task stream polls a counter and reads the tasks only when it
//!   moved.

mod index;
mod memory;
mod redis;

pub use index::{CaseList, Index};
pub use memory::MemoryCaseStore;
pub use redis::RedisCaseStore;

use crate::proto::{Agency, Case, CaseEvent, Task};
use crate::resolver::disputes::{Dispute, OpenDisputes};

/// The layout of the case lists this code keeps (see [`CaseStore::lists_current`]).
/// Layout 1 (no marker) kept only the list of every case; layout 2 adds the lists by
/// person, work list, kind and state.
pub const LISTS_LAYOUT: &str = "2";

/// An agency's tasks not yet acknowledged, as of one change of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSnapshot {
    /// The tasks, by task id.
    pub tasks: Vec<Task>,
    /// How many changes the agency's tasks had seen when they were read (see
    /// [`CaseStore::task_changes`]).
    pub changes: u64,
}

/// Why the case store failed.
#[derive(Debug, thiserror::Error)]
pub enum CaseStoreError {
    /// Redis failed or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis holds something the engine did not write.
    #[error("case {case_id}: {what} does not decode")]
    Corrupt {
        /// The case.
        case_id: String,
        /// The field.
        what: String,
    },
}

/// A case as stored: its view and what is still to be published.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredCase {
    /// The case; `None` before it is opened.
    pub case: Option<Case>,
    /// Events committed but not yet acknowledged, in sequence order.
    pub outbox: Vec<CaseEvent>,
}

/// The case store of a deployment.
#[derive(Clone)]
pub enum CaseStore {
    /// Shared by every engine and service of the deployment.
    Redis(RedisCaseStore),
    /// This process's own, gone when it stops (`dev`, `demo`).
    Memory(MemoryCaseStore),
}

impl CaseStore {
    /// The Redis store of `link`; every key starts with `prefix`.
    pub async fn connect(
        link: &crate::redis_link::RedisLink,
        prefix: &str,
    ) -> Result<CaseStore, crate::reach::ReachError> {
        Ok(CaseStore::Redis(
            RedisCaseStore::connect(link, prefix).await?,
        ))
    }

    /// The case `case_id` and its outbox.
    pub async fn load(&self, case_id: &str) -> Result<StoredCase, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.load(case_id).await,
            CaseStore::Memory(s) => Ok(s.load(case_id)),
        }
    }

    /// Stores `case` and puts `events` in its outbox and history, if the stored case is
    /// still at sequence `expected` (0: not opened). False if another writer got there
    /// first.
    pub async fn commit(
        &self,
        expected: u64,
        case: &Case,
        events: &[CaseEvent],
    ) -> Result<bool, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.commit(expected, case, events).await,
            CaseStore::Memory(s) => Ok(s.commit(expected, case, events)),
        }
    }

    /// Puts back a case folded from its history on the case topic: the view, if the
    /// stored one is missing or older (lower sequence), and every event of the history.
    /// True if the view was put back; a stored view as new or newer is kept (an engine
    /// moved the case on meanwhile).
    pub async fn restore(
        &self,
        case: &Case,
        history: &[CaseEvent],
    ) -> Result<bool, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.restore(case, history).await,
            CaseStore::Memory(s) => Ok(s.restore(case, history)),
        }
    }

    /// Takes published events out of the outbox of `case_id`.
    pub async fn published(
        &self,
        case_id: &str,
        events: &[CaseEvent],
    ) -> Result<(), CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.published(case_id, events).await,
            CaseStore::Memory(s) => {
                s.published(case_id, events);
                Ok(())
            }
        }
    }

    /// The events of `case_id` after sequence `after`, in order.
    pub async fn history(
        &self,
        case_id: &str,
        after: u64,
    ) -> Result<Vec<CaseEvent>, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.history(case_id, after).await,
            CaseStore::Memory(s) => Ok(s.history(case_id, after)),
        }
    }

    /// Lists an open case under the subjects its plan reads, or takes a closed one off
    /// them; puts it in the lists `ListCases` reads that it belongs to and takes it off
    /// the others (see [`Index`]); drops the tasks it no longer needs delivered.
    pub async fn index(&self, case: &Case) -> Result<(), CaseStoreError> {
        let index = Index::of(case);
        match self {
            CaseStore::Redis(s) => s.index(&index).await,
            CaseStore::Memory(s) => {
                s.index(&index);
                Ok(())
            }
        }
    }

    /// The newest `limit` cases, newest first.
    pub async fn newest(&self, limit: usize) -> Result<Vec<String>, CaseStoreError> {
        Ok(self.list_page(&CaseList::All, 0, limit).await?.0)
    }

    /// How many cases each of `lists` holds, in one round trip.
    pub async fn list_sizes(&self, lists: &[CaseList]) -> Result<Vec<u64>, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.list_sizes(lists).await,
            CaseStore::Memory(s) => Ok(s.list_sizes(lists)),
        }
    }

    /// At most `count` cases of `list` from position `start`, newest first, and whether
    /// more follow.
    pub async fn list_page(
        &self,
        list: &CaseList,
        start: usize,
        count: usize,
    ) -> Result<(Vec<String>, bool), CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.list_page(list, start, count).await,
            CaseStore::Memory(s) => Ok(s.list_page(list, start, count)),
        }
    }

    /// The views of `case_ids`, in their order (`None` for a case not stored), in one
    /// round trip.
    pub async fn views(&self, case_ids: &[String]) -> Result<Vec<Option<Case>>, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.views(case_ids).await,
            CaseStore::Memory(s) => Ok(s.views(case_ids)),
        }
    }

    /// Whether the lists are kept in this code's layout ([`LISTS_LAYOUT`]) for every case
    /// stored: false for a store an older govlink wrote, until [`CaseStore::relist`].
    pub async fn lists_current(&self) -> Result<bool, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.lists_current().await,
            CaseStore::Memory(_) => Ok(true),
        }
    }

    /// Indexes every case again, from the list of every case, and marks the lists
    /// current; the cases indexed. Harmless to repeat or to run in several engines.
    pub async fn relist(&self) -> Result<usize, CaseStoreError> {
        const PAGE: usize = 500;
        if self.lists_current().await? {
            return Ok(0);
        }
        let (mut start, mut indexed) = (0, 0);
        loop {
            let (ids, more) = self.list_page(&CaseList::All, start, PAGE).await?;
            for case in self.views(&ids).await?.into_iter().flatten() {
                self.index(&case).await?;
                indexed += 1;
            }
            start += ids.len();
            if !more {
                break;
            }
        }
        if let CaseStore::Redis(s) = self {
            s.mark_lists_current().await?;
        }
        Ok(indexed)
    }

    /// The open cases whose plan reads the records of `subject`.
    pub async fn watching(&self, subject: &str) -> Result<Vec<String>, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.watching(subject).await,
            CaseStore::Memory(s) => Ok(s.watching(subject)),
        }
    }

    /// Every open case.
    pub async fn open_cases(&self) -> Result<Vec<String>, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.open_cases().await,
            CaseStore::Memory(s) => Ok(s.open_cases()),
        }
    }

    /// Keeps `task` for its agency until acknowledged.
    pub async fn add_task(&self, task: &Task) -> Result<(), CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.add_task(task).await,
            CaseStore::Memory(s) => {
                s.add_task(task);
                Ok(())
            }
        }
    }

    /// The tasks of `agency` not yet acknowledged, by task id.
    pub async fn tasks(&self, agency: Agency) -> Result<Vec<Task>, CaseStoreError> {
        Ok(self.task_snapshot(agency).await?.tasks)
    }

    /// How many changes the tasks of `agency` have seen: a task kept, acknowledged or
    /// dropped counts one. One small read, for a stream to poll.
    pub async fn task_changes(&self, agency: Agency) -> Result<u64, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.task_changes(agency).await,
            CaseStore::Memory(s) => Ok(s.task_changes(agency)),
        }
    }

    /// The tasks of `agency` not yet acknowledged, with the count of changes they are
    /// as of (read together).
    pub async fn task_snapshot(&self, agency: Agency) -> Result<TaskSnapshot, CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.task_snapshot(agency).await,
            CaseStore::Memory(s) => Ok(s.task_snapshot(agency)),
        }
    }

    /// `task_id` was received by its agency: not sent again.
    pub async fn ack_task(&self, agency: Agency, task_id: &str) -> Result<(), CaseStoreError> {
        match self {
            CaseStore::Redis(s) => s.ack_task(agency, task_id).await,
            CaseStore::Memory(s) => {
                s.ack_task(agency, task_id);
                Ok(())
            }
        }
    }
}

/// The open objections by record key, as the engine indexes them: what the resolver
/// consults to say a record is disputed.
impl OpenDisputes for CaseStore {
    fn of_records<'a>(
        &'a self,
        record_keys: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<Vec<Dispute>, String>> {
        Box::pin(async move {
            match self {
                CaseStore::Redis(s) => s.disputes(record_keys).await.map_err(|e| e.to_string()),
                CaseStore::Memory(s) => Ok(s.disputes(record_keys)),
            }
        })
    }
}
