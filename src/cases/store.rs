//! Where the engine keeps each case: its view (the case as its events left it) and its
//! outbox (events decided but not yet acknowledged by the broker), in one Redis hash per
//! case, `case:{<case id>}` under the store prefix:
//!
//! - `seq`: the sequence number of the last event folded into the view;
//! - `view`: the encoded `Case`;
//! - `o:<sequence>`: an encoded `CaseEvent` still to be published;
//!
//! and `case-events:{<case id>}` (same slot): sequence → every event of the case, kept
//! for `WatchCase` apart from the hash a command reads, so a command's read does not
//! grow with the case's history.
//!
//! and what finds cases and tasks: `cases:open` (every open case),
//! `case-watch:{<subject>}` (the open cases whose plan reads that subject's records, so
//! a record change reaches the cases it may prove a step of) and `tasks:<agency>` (task
//! id → encoded `Task`: the agency's tasks not yet acknowledged, which a task stream
//! sends again after a reconnect).
//!
//! A command's outcome is committed here first, view and outbox together, by a
//! compare-and-set on `seq` (so a second writer, a partition's old owner finishing late,
//! changes nothing), and published from the outbox after. A crash between the two leaves
//! the events in the outbox; the next command of the case publishes them first. The topic
//! may so receive an event twice, always with the same sequence and bytes.

use prost::Message as _;
use redis::aio::ConnectionManager;

use crate::proto::{Agency, Case, CaseEvent, StepState, Task};
use crate::records::agency_slug;

/// Compare-and-set of a case: KEYS[1] the case's hash, KEYS[2] its history; ARGV[1] the
/// expected `seq`, ARGV[2]
/// the new one, ARGV[3] the view, then sequence and event pairs for the outbox.
const COMMIT: &str = r"
if (redis.call('HGET', KEYS[1], 'seq') or '0') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'view', ARGV[3])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'o:' .. ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return 1
";

/// Why the case store failed.
#[derive(Debug, thiserror::Error)]
pub enum CaseStoreError {
    /// Redis failed or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
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

/// Cases in Redis, under a key prefix.
#[derive(Clone)]
pub struct CaseStore {
    conn: ConnectionManager,
    prefix: String,
    commit: redis::Script,
}

impl CaseStore {
    /// Connects to `url`; every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<CaseStore, CaseStoreError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(5)));
        Ok(CaseStore {
            conn: ConnectionManager::new_with_config(client, config).await?,
            prefix: prefix.to_owned(),
            commit: redis::Script::new(COMMIT),
        })
    }

    fn key(&self, case_id: &str) -> String {
        format!("{}case:{{{case_id}}}", self.prefix)
    }

    fn history_key(&self, case_id: &str) -> String {
        format!("{}case-events:{{{case_id}}}", self.prefix)
    }

    /// The case `case_id` and its outbox.
    pub async fn load(&self, case_id: &str) -> Result<StoredCase, CaseStoreError> {
        let fields: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.key(case_id))
            .query_async(&mut self.conn.clone())
            .await?;
        let corrupt = |what: &str| CaseStoreError::Corrupt {
            case_id: case_id.to_owned(),
            what: what.to_owned(),
        };
        let mut stored = StoredCase::default();
        for (field, value) in fields {
            if field == "view" {
                stored.case = Some(Case::decode(value.as_slice()).map_err(|_| corrupt("view"))?);
            } else if field.starts_with("o:") {
                stored
                    .outbox
                    .push(CaseEvent::decode(value.as_slice()).map_err(|_| corrupt(&field))?);
            }
        }
        stored.outbox.sort_by_key(|e| e.sequence);
        Ok(stored)
    }

    /// Stores `case` and puts `events` in its outbox, if the stored case is still at
    /// sequence `expected` (0: not opened). False if another writer got there first.
    pub async fn commit(
        &self,
        expected: u64,
        case: &Case,
        events: &[CaseEvent],
    ) -> Result<bool, CaseStoreError> {
        let mut invocation = self.commit.key(self.key(&case.case_id));
        invocation.key(self.history_key(&case.case_id));
        invocation
            .arg(expected.to_string())
            .arg(case.sequence.to_string())
            .arg(case.encode_to_vec());
        for e in events {
            invocation
                .arg(e.sequence.to_string())
                .arg(e.encode_to_vec());
        }
        let done: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(done == 1)
    }

    fn watch_key(&self, subject: &str) -> String {
        format!("{}case-watch:{{{subject}}}", self.prefix)
    }

    fn all_key(&self) -> String {
        format!("{}cases:all", self.prefix)
    }

    /// The newest `limit` cases, newest first.
    pub async fn newest(&self, limit: usize) -> Result<Vec<String>, CaseStoreError> {
        Ok(redis::cmd("ZREVRANGE")
            .arg(self.all_key())
            .arg(0)
            .arg(limit.saturating_sub(1))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// The events of `case_id` after sequence `after`, in order.
    pub async fn history(
        &self,
        case_id: &str,
        after: u64,
    ) -> Result<Vec<CaseEvent>, CaseStoreError> {
        let fields: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.history_key(case_id))
            .query_async(&mut self.conn.clone())
            .await?;
        let mut events = Vec::new();
        for (field, value) in fields {
            let corrupt = || CaseStoreError::Corrupt {
                case_id: case_id.to_owned(),
                what: format!("history field {field}"),
            };
            if field.parse::<u64>().map_err(|_| corrupt())? > after {
                events.push(CaseEvent::decode(value.as_slice()).map_err(|_| {
                    CaseStoreError::Corrupt {
                        case_id: case_id.to_owned(),
                        what: field.clone(),
                    }
                })?);
            }
        }
        events.sort_by_key(|e| e.sequence);
        Ok(events)
    }

    fn open_key(&self) -> String {
        format!("{}cases:open", self.prefix)
    }

    /// Lists an open case under the subjects its plan reads, or takes a closed one off
    /// them. Idempotent: the engine calls it after every command it applies.
    pub async fn index(&self, case: &Case) -> Result<(), CaseStoreError> {
        let open = !matches!(
            case.state(),
            crate::proto::CaseState::Completed | crate::proto::CaseState::Cancelled
        );
        let subjects = super::plan::reads(&case.params.clone().unwrap_or_default());
        let mut pipe = redis::pipe();
        // A step no longer open has no task to deliver.
        for s in &case.steps {
            let deliverable = open && matches!(s.state(), StepState::Open | StepState::Rejected);
            if !s.task_id.is_empty() && !deliverable {
                pipe.cmd("HDEL")
                    .arg(self.tasks_key(s.agency()))
                    .arg(&s.task_id)
                    .ignore();
            }
        }
        let command = if open { "SADD" } else { "SREM" };
        for (subject, _) in subjects {
            pipe.cmd(command)
                .arg(self.watch_key(subject.as_str()))
                .arg(&case.case_id)
                .ignore();
        }
        pipe.cmd(command)
            .arg(self.open_key())
            .arg(&case.case_id)
            .ignore();
        let opened_ms = case
            .opened_at
            .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000));
        pipe.cmd("ZADD")
            .arg(self.all_key())
            .arg("NX")
            .arg(opened_ms)
            .arg(&case.case_id)
            .ignore();
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    fn tasks_key(&self, agency: Agency) -> String {
        format!("{}tasks:{}", self.prefix, agency_slug(agency))
    }

    /// Keeps `task` for its agency until acknowledged.
    pub async fn add_task(&self, task: &Task) -> Result<(), CaseStoreError> {
        let _: i64 = redis::cmd("HSET")
            .arg(self.tasks_key(task.agency()))
            .arg(&task.task_id)
            .arg(task.encode_to_vec())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The tasks of `agency` not yet acknowledged, by task id.
    pub async fn tasks(&self, agency: Agency) -> Result<Vec<Task>, CaseStoreError> {
        let fields: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.tasks_key(agency))
            .query_async(&mut self.conn.clone())
            .await?;
        let mut tasks = Vec::with_capacity(fields.len());
        for (id, bytes) in fields {
            tasks.push(
                Task::decode(bytes.as_slice()).map_err(|_| CaseStoreError::Corrupt {
                    case_id: id,
                    what: "a pending task".into(),
                })?,
            );
        }
        tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(tasks)
    }

    /// `task_id` was received by its agency: not sent again.
    pub async fn ack_task(&self, agency: Agency, task_id: &str) -> Result<(), CaseStoreError> {
        let _: i64 = redis::cmd("HDEL")
            .arg(self.tasks_key(agency))
            .arg(task_id)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The open cases whose plan reads the records of `subject`.
    pub async fn watching(&self, subject: &str) -> Result<Vec<String>, CaseStoreError> {
        Ok(redis::cmd("SMEMBERS")
            .arg(self.watch_key(subject))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Every open case.
    pub async fn open_cases(&self) -> Result<Vec<String>, CaseStoreError> {
        Ok(redis::cmd("SMEMBERS")
            .arg(self.open_key())
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Takes published events out of the outbox of `case_id`.
    pub async fn published(
        &self,
        case_id: &str,
        events: &[CaseEvent],
    ) -> Result<(), CaseStoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = events.iter().map(|e| format!("o:{}", e.sequence)).collect();
        let _: i64 = redis::cmd("HDEL")
            .arg(self.key(case_id))
            .arg(fields)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
