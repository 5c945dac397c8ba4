//! The case store in Redis: one hash per case, `case:{<case id>}` under the store prefix:
//!
//! - `seq`: the sequence number of the last event folded into the view;
//! - `view`: the encoded `Case`;
//! - `o:<sequence>`: an encoded `CaseEvent` still to be published;
//!
//! and `case-events:{<case id>}` (same slot): sequence → every event of the case, kept
//! for `WatchCase` apart from the hash a command reads, so a command's read does not
//! grow with the case's history.
//!
//! and what finds cases and tasks: `cases:open` (every open case), `cases:all` (every
//! case by opening time), `case-watch:{<subject>}` (the open cases whose plan reads that
//! subject's records) and `tasks:<agency>` (task id → encoded `Task`).
//!
//! The compare-and-set on `seq` is a script, so view and outbox land together.

use prost::Message as _;
use redis::aio::ConnectionManager;

use super::{CaseStoreError, Index, StoredCase};
use crate::proto::{Agency, Case, CaseEvent, Task};
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

/// Puts back a case: KEYS[1] the case's hash, KEYS[2] its history; ARGV[1] the case's
/// sequence, ARGV[2] its view, then sequence and event pairs for the history. The view
/// only where the stored one is older.
const RESTORE: &str = r"
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'view', ARGV[2])
return 1
";

/// Cases in Redis, under a key prefix.
#[derive(Clone)]
pub struct RedisCaseStore {
    conn: ConnectionManager,
    prefix: String,
    commit: redis::Script,
    restore: redis::Script,
}

impl RedisCaseStore {
    /// Connects to the Redis of `link` (see `RedisLink::manager`); every key starts with
    /// `prefix`.
    pub async fn connect(
        link: &crate::redis_link::RedisLink,
        prefix: &str,
    ) -> Result<RedisCaseStore, crate::reach::ReachError> {
        Ok(RedisCaseStore {
            conn: link.manager().await?,
            prefix: prefix.to_owned(),
            commit: redis::Script::new(COMMIT),
            restore: redis::Script::new(RESTORE),
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

    /// See [`super::CaseStore::restore`].
    pub async fn restore(
        &self,
        case: &Case,
        history: &[CaseEvent],
    ) -> Result<bool, CaseStoreError> {
        let mut invocation = self.restore.key(self.key(&case.case_id));
        invocation.key(self.history_key(&case.case_id));
        invocation
            .arg(case.sequence.to_string())
            .arg(case.encode_to_vec());
        for e in history {
            invocation
                .arg(e.sequence.to_string())
                .arg(e.encode_to_vec());
        }
        let restored: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(restored == 1)
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

    /// Applies `index` (see [`Index::of`]).
    pub async fn index(&self, index: &Index) -> Result<(), CaseStoreError> {
        let mut pipe = redis::pipe();
        for (agency, task_id) in &index.undeliverable {
            pipe.cmd("HDEL")
                .arg(self.tasks_key(*agency))
                .arg(task_id)
                .ignore();
        }
        let command = if index.open { "SADD" } else { "SREM" };
        for subject in &index.subjects {
            pipe.cmd(command)
                .arg(self.watch_key(subject))
                .arg(&index.case_id)
                .ignore();
        }
        pipe.cmd(command)
            .arg(self.open_key())
            .arg(&index.case_id)
            .ignore();
        pipe.cmd("ZADD")
            .arg(self.all_key())
            .arg("NX")
            .arg(index.opened_ms)
            .arg(&index.case_id)
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
