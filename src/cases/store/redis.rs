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
//! and what finds cases and tasks: `cases:open` (every open case), `case-watch:{<subject>}`
//! (the open cases whose plan reads that subject's records), `tasks:<agency>` (task id →
//! encoded `Task`, and `#changes`: how many changes the hash has seen), and the lists
//! `ListCases` reads, sorted sets of case ids scored by opening time (ms): `cases:all`,
//! `cases:person:{p:<resident id>}`, `cases:open-steps:<agency>`, `cases:kind:<kind>`,
//! `cases:state:<state>`; `cases:layout` names the lists' layout.
//!
//! The compare-and-set on `seq` is a script, so view and outbox land together. Every
//! change of `tasks:<agency>` is a script that counts it in the same hash, so a stream
//! that polls `#changes` misses none. The lists are in other slots than the views: see
//! `index.rs` for why an entry may lag or linger, and how that is safe.

use crate::redis_link::RedisConn;
use prost::Message as _;

use super::{CaseList, CaseStoreError, Index, LISTS_LAYOUT, StoredCase, TaskSnapshot};
use crate::proto::{Agency, Case, CaseEvent, Task};
use crate::records::agency_slug;
use crate::resolver::disputes::Dispute;

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

/// The field of `tasks:<agency>` counting its changes; no task id starts with `#`.
const CHANGES: &str = "#changes";

/// Keeps a task: KEYS[1] the agency's tasks; ARGV[1] the task id, ARGV[2] the task.
const ADD_TASK: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[1], '#changes', 1)
";

/// Drops tasks: KEYS[1] the agency's tasks; ARGV the task ids. A change only if one was
/// kept, so indexing a case whose tasks are long gone wakes no stream.
const DROP_TASKS: &str = r"
local dropped = redis.call('HDEL', KEYS[1], unpack(ARGV))
if dropped > 0 then
  redis.call('HINCRBY', KEYS[1], '#changes', 1)
end
return dropped
";

/// Cases in Redis, under a key prefix.
#[derive(Clone)]
pub struct RedisCaseStore {
    conn: RedisConn,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

/// The store's scripts, shared by clones.
struct Scripts {
    commit: redis::Script,
    restore: redis::Script,
    add_task: redis::Script,
    drop_tasks: redis::Script,
}

impl RedisCaseStore {
    /// Connects to the Redis of `link` (see `RedisLink::connect`); every key starts with
    /// `prefix`.
    pub async fn connect(
        link: &crate::redis_link::RedisLink,
        prefix: &str,
    ) -> Result<RedisCaseStore, crate::reach::ReachError> {
        Ok(RedisCaseStore {
            conn: link.connect().await?,
            prefix: prefix.to_owned(),
            scripts: std::sync::Arc::new(Scripts {
                commit: redis::Script::new(COMMIT),
                restore: redis::Script::new(RESTORE),
                add_task: redis::Script::new(ADD_TASK),
                drop_tasks: redis::Script::new(DROP_TASKS),
            }),
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
        let mut invocation = self.scripts.commit.key(self.key(&case.case_id));
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
        // The command that led here is acknowledged once the case is committed: on a
        // cluster, only after a replica has the commit too.
        self.conn.settle().await?;
        Ok(done == 1)
    }

    /// See [`super::CaseStore::restore`].
    pub async fn restore(
        &self,
        case: &Case,
        history: &[CaseEvent],
    ) -> Result<bool, CaseStoreError> {
        let mut invocation = self.scripts.restore.key(self.key(&case.case_id));
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

    fn list_key(&self, list: &CaseList) -> String {
        format!("{}{}", self.prefix, list.key())
    }

    fn layout_key(&self) -> String {
        format!("{}cases:layout", self.prefix)
    }

    /// How many cases each of `lists` holds, in one round trip.
    pub async fn list_sizes(&self, lists: &[CaseList]) -> Result<Vec<u64>, CaseStoreError> {
        let mut pipe = redis::pipe();
        for list in lists {
            pipe.cmd("ZCARD").arg(self.list_key(list));
        }
        Ok(pipe.query_async(&mut self.conn.clone()).await?)
    }

    /// At most `count` cases of `list` from `start`, newest first, and whether more follow.
    pub async fn list_page(
        &self,
        list: &CaseList,
        start: usize,
        count: usize,
    ) -> Result<(Vec<String>, bool), CaseStoreError> {
        if count == 0 {
            return Ok((Vec::new(), false));
        }
        // One past the page: whether more follow, in the same read.
        let mut page: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.list_key(list))
            .arg(start)
            .arg(start.saturating_add(count))
            .query_async(&mut self.conn.clone())
            .await?;
        let more = page.len() > count;
        page.truncate(count);
        Ok((page, more))
    }

    /// The views of `case_ids`, in their order, in one pipelined round trip.
    pub async fn views(&self, case_ids: &[String]) -> Result<Vec<Option<Case>>, CaseStoreError> {
        if case_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in case_ids {
            pipe.cmd("HGET").arg(self.key(id)).arg("view");
        }
        let views: Vec<Option<Vec<u8>>> = pipe.query_async(&mut self.conn.clone()).await?;
        case_ids
            .iter()
            .zip(views)
            .map(|(id, view)| {
                view.map(|bytes| {
                    Case::decode(bytes.as_slice()).map_err(|_| CaseStoreError::Corrupt {
                        case_id: id.clone(),
                        what: "view".into(),
                    })
                })
                .transpose()
            })
            .collect()
    }

    /// Whether the lists are in this code's layout.
    pub async fn lists_current(&self) -> Result<bool, CaseStoreError> {
        let layout: Option<String> = redis::cmd("GET")
            .arg(self.layout_key())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(layout.as_deref() == Some(LISTS_LAYOUT))
    }

    /// Records that every case is listed in this code's layout.
    pub async fn mark_lists_current(&self) -> Result<(), CaseStoreError> {
        let () = redis::cmd("SET")
            .arg(self.layout_key())
            .arg(LISTS_LAYOUT)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
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
        for agency in crate::records::AGENCIES {
            let ids: Vec<&String> = index
                .undeliverable
                .iter()
                .filter(|(a, _)| *a == agency)
                .map(|(_, id)| id)
                .collect();
            if !ids.is_empty() {
                // EVAL, not EVALSHA: in a pipeline a script not yet loaded cannot be
                // retried on its own; the script is a few dozen bytes.
                pipe.cmd("EVAL")
                    .arg(DROP_TASKS)
                    .arg(1)
                    .arg(self.tasks_key(agency))
                    .arg(ids)
                    .ignore();
            }
        }
        let command = if index.open { "SADD" } else { "SREM" };
        for subject in &index.subjects {
            pipe.cmd(command)
                .arg(self.watch_key(subject))
                .arg(&index.case_id)
                .ignore();
        }
        if let Some((key, version)) = &index.dispute {
            if index.open {
                pipe.cmd("HSET")
                    .arg(self.disputes_key(key))
                    .arg(&index.case_id)
                    .arg(*version)
                    .ignore();
            } else {
                pipe.cmd("HDEL")
                    .arg(self.disputes_key(key))
                    .arg(&index.case_id)
                    .ignore();
            }
        }
        pipe.cmd(command)
            .arg(self.open_key())
            .arg(&index.case_id)
            .ignore();
        // NX: a case keeps its first place (a re-index after a crash may carry a later
        // time).
        for list in &index.listed {
            pipe.cmd("ZADD")
                .arg(self.list_key(list))
                .arg("NX")
                .arg(index.opened_ms)
                .arg(&index.case_id)
                .ignore();
        }
        for list in &index.unlisted {
            pipe.cmd("ZREM")
                .arg(self.list_key(list))
                .arg(&index.case_id)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// The open objections against a record: case id → disputed version.
    fn disputes_key(&self, record_key: &str) -> String {
        format!("{}disputes:{record_key}", self.prefix)
    }

    /// The open objections against each of `keys`, in one round trip.
    pub async fn disputes(&self, keys: &[String]) -> Result<Vec<Dispute>, CaseStoreError> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("HGETALL").arg(self.disputes_key(key));
        }
        let found: Vec<Vec<(String, u64)>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(keys
            .iter()
            .zip(found)
            .flat_map(|(key, open)| {
                open.into_iter().map(|(case_id, version)| Dispute {
                    record_key: key.clone(),
                    version,
                    objection_id: case_id,
                })
            })
            .collect())
    }

    fn tasks_key(&self, agency: Agency) -> String {
        format!("{}tasks:{}", self.prefix, agency_slug(agency))
    }

    /// Keeps `task` for its agency until acknowledged.
    pub async fn add_task(&self, task: &Task) -> Result<(), CaseStoreError> {
        let _: i64 = self
            .scripts
            .add_task
            .key(self.tasks_key(task.agency()))
            .arg(&task.task_id)
            .arg(task.encode_to_vec())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// How many changes the tasks of `agency` have seen.
    pub async fn task_changes(&self, agency: Agency) -> Result<u64, CaseStoreError> {
        let changes: Option<u64> = redis::cmd("HGET")
            .arg(self.tasks_key(agency))
            .arg(CHANGES)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(changes.unwrap_or(0))
    }

    /// The tasks of `agency` not yet acknowledged, by task id, and their changes.
    pub async fn task_snapshot(&self, agency: Agency) -> Result<TaskSnapshot, CaseStoreError> {
        let fields: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.tasks_key(agency))
            .query_async(&mut self.conn.clone())
            .await?;
        let mut snapshot = TaskSnapshot::default();
        for (id, bytes) in fields {
            if id == CHANGES {
                snapshot.changes = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| CaseStoreError::Corrupt {
                        case_id: String::new(),
                        what: format!("the change count of {}", agency_slug(agency)),
                    })?;
                continue;
            }
            snapshot
                .tasks
                .push(
                    Task::decode(bytes.as_slice()).map_err(|_| CaseStoreError::Corrupt {
                        case_id: id,
                        what: "a pending task".into(),
                    })?,
                );
        }
        snapshot.tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(snapshot)
    }

    /// `task_id` was received by its agency: not sent again.
    pub async fn ack_task(&self, agency: Agency, task_id: &str) -> Result<(), CaseStoreError> {
        let _: i64 = self
            .scripts
            .drop_tasks
            .key(self.tasks_key(agency))
            .arg(task_id)
            .invoke_async(&mut self.conn.clone())
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
        // The tasks publishing added are kept until their agency acknowledges them, and
        // nothing adds them again once the outbox is empty: on a cluster, empty it only
        // once a replica has them.
        self.conn.settle().await?;
        let fields: Vec<String> = events.iter().map(|e| format!("o:{}", e.sequence)).collect();
        let _: i64 = redis::cmd("HDEL")
            .arg(self.key(case_id))
            .arg(fields)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
