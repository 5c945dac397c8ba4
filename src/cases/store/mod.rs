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
//! - indexing is idempotent: the engine indexes a case after every command it applies.

mod memory;
mod redis;

pub use memory::MemoryCaseStore;
pub use redis::RedisCaseStore;

use crate::proto::{Agency, Case, CaseEvent, CaseState, StepState, Task};

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

/// What indexing a case changes, the same for every store.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    case_id: String,
    /// Whether the case is still open (listed), or closed (taken off every list).
    open: bool,
    /// The subjects whose records its plan reads.
    subjects: Vec<String>,
    /// Tasks no longer to deliver: their step is no longer open, or the case closed.
    undeliverable: Vec<(Agency, String)>,
    /// When it was opened, ms since the epoch: its place among every case.
    opened_ms: i64,
}

impl Index {
    /// How `case` is to be indexed as it stands.
    pub fn of(case: &Case) -> Index {
        let open = !matches!(case.state(), CaseState::Completed | CaseState::Cancelled);
        let subjects = super::plan::reads(&case.params.clone().unwrap_or_default())
            .into_iter()
            .map(|(subject, _)| subject.as_str().to_owned())
            .collect();
        let undeliverable = case
            .steps
            .iter()
            .filter(|s| {
                let deliverable =
                    open && matches!(s.state(), StepState::Open | StepState::Rejected);
                !s.task_id.is_empty() && !deliverable
            })
            .map(|s| (s.agency(), s.task_id.clone()))
            .collect();
        Index {
            case_id: case.case_id.clone(),
            open,
            subjects,
            undeliverable,
            opened_ms: case
                .opened_at
                .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000)),
        }
    }
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
    /// them; drops the tasks it no longer needs delivered.
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
        match self {
            CaseStore::Redis(s) => s.newest(limit).await,
            CaseStore::Memory(s) => Ok(s.newest(limit)),
        }
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
        match self {
            CaseStore::Redis(s) => s.tasks(agency).await,
            CaseStore::Memory(s) => Ok(s.tasks(agency)),
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
