//! The Redis store. Layout (every key under the configured prefix):
//!
//! - `rec:{<record key>}` — hash: `v` version, `e` encoded event (empty when deleted),
//!   `s` subjects of this version, `ps` subjects of the version before;
//! - `sub:{<subject>}` — hash: record key → version, live flag and encoded event, so all
//!   records of one subject sit in one Cluster slot and come back in one round trip;
//! - `pos` — hash: `topic/partition` → highest materialized offset.
//!
//! Each step is a Lua script, so a compare-and-set by version is atomic; a batch is two
//! pipelines (record entries, then subject copies).

use redis::aio::ConnectionManager;
use redis::{Cmd, Pipeline, RedisError, Script, ServerErrorKind};

use super::{ApplyOutcome, RecordWrite, StoreError, position_field, subject_updates, version_text};
use crate::proto::Position;
use crate::records::{RecordKey, SubjectKey};

/// Step one: compare-and-set the record's own entry. Returns `{applied, previous
/// subjects, current subjects}`; a write of the stored version is a replay and returns the
/// stored subjects so step two can be redone.
const RECORD_CAS: &str = r"
local stored = redis.call('HGET', KEYS[1], 'v')
if stored and stored > ARGV[1] then
  return {0, '', ''}
end
if stored == ARGV[1] then
  return {1, redis.call('HGET', KEYS[1], 'ps') or '', redis.call('HGET', KEYS[1], 's') or ''}
end
local previous = redis.call('HGET', KEYS[1], 's') or ''
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[2], 's', ARGV[3], 'ps', previous)
return {1, previous, ARGV[3]}
";

/// Step two: compare-and-set one subject's copy of a record. ARGV: record key, version,
/// '1' live or '0' tombstone, encoded event.
const SUBJECT_CAS: &str = r"
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and string.sub(stored, 1, 20) >= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ARGV[3] .. ARGV[4])
return 1
";

/// Moves materialized positions forward only. ARGV: field, offset, field, offset, …
const POSITIONS_MAX: &str = r"
for i = 1, #ARGV, 2 do
  local stored = redis.call('HGET', KEYS[1], ARGV[i])
  if (not stored) or stored < ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
";

/// Width of the version prefix of a subject copy, then one flag byte.
const VERSION_WIDTH: usize = 20;

/// Records in Redis, under a key prefix.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    record_cas: Script,
    subject_cas: Script,
    positions_max: Script,
}

impl RedisStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`); every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        let store = RedisStore {
            conn,
            prefix: prefix.to_owned(),
            record_cas: Script::new(RECORD_CAS),
            subject_cas: Script::new(SUBJECT_CAS),
            positions_max: Script::new(POSITIONS_MAX),
        };
        store.load_scripts().await?;
        Ok(store)
    }

    async fn load_scripts(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for source in [RECORD_CAS, SUBJECT_CAS, POSITIONS_MAX] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(source);
        }
        pipe.query_async::<Vec<String>>(&mut conn).await?;
        Ok(())
    }

    /// Runs a pipeline of `EVALSHA`s, loading the scripts once if Redis lost them (it
    /// restarted or was flushed). Every script is idempotent, so the retry is safe.
    async fn run<T: redis::FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.load_scripts().await?;
                Ok(pipe.query_async(&mut conn).await?)
            }
            other => Ok(other?),
        }
    }

    fn record_key(&self, key: &RecordKey) -> String {
        format!("{}rec:{{{key}}}", self.prefix)
    }

    fn subject_key(&self, subject: &str) -> String {
        format!("{}sub:{{{subject}}}", self.prefix)
    }

    fn positions_key(&self) -> String {
        format!("{}pos", self.prefix)
    }

    pub(super) async fn apply(
        &self,
        writes: &[RecordWrite<'_>],
    ) -> Result<ApplyOutcome, StoreError> {
        let mut step_one = redis::pipe();
        for w in writes {
            step_one.add_command(evalsha(
                &self.record_cas,
                &[self.record_key(&w.key)],
                &[
                    version_text(w.version).as_bytes(),
                    w.event().unwrap_or_default(),
                    w.stored_subjects().as_bytes(),
                ],
            ));
        }
        let replies: Vec<(i64, String, String)> = self.run(&step_one).await?;
        if replies.len() != writes.len() {
            return Err(StoreError::Corrupt(format!(
                "{} replies to {} record writes",
                replies.len(),
                writes.len()
            )));
        }

        let mut outcome = ApplyOutcome::default();
        let mut step_two = redis::pipe();
        for (w, (applied, previous, current)) in writes.iter().zip(&replies) {
            if *applied == 0 {
                outcome.stale += 1;
                continue;
            }
            outcome.applied += 1;
            let version = version_text(w.version);
            for (subject, listed) in subject_updates(previous, current) {
                let (flag, event): (&[u8], &[u8]) = match w.event() {
                    Some(event) if listed => (b"1", event),
                    _ => (b"0", b""),
                };
                step_two.add_command(evalsha(
                    &self.subject_cas,
                    &[self.subject_key(subject)],
                    &[w.key.as_str().as_bytes(), version.as_bytes(), flag, event],
                ));
            }
        }
        if step_two.cmd_iter().next().is_some() {
            self.run::<Vec<i64>>(&step_two).await?;
        }
        Ok(outcome)
    }

    pub(super) async fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let event: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.record_key(key))
            .arg("e")
            .query_async(&mut conn)
            .await?;
        Ok(event.filter(|e| !e.is_empty()))
    }

    pub(super) async fn subject_records(
        &self,
        subject: &SubjectKey,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.subject_key(subject.as_str()))
            .query_async(&mut conn)
            .await?;
        let mut live = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            match value.get(VERSION_WIDTH) {
                Some(b'1') => live.push((key, value[VERSION_WIDTH + 1..].to_vec())),
                Some(b'0') => {}
                _ => return Err(StoreError::Corrupt(format!("subject entry {key}"))),
            }
        }
        live.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(live.into_iter().map(|(_, event)| event).collect())
    }

    pub(super) async fn advance_positions(&self, positions: &[Position]) -> Result<(), StoreError> {
        let mut args = Vec::with_capacity(positions.len() * 2);
        for p in positions {
            args.push(position_field(&p.topic, p.partition).into_bytes());
            args.push(version_text(u64::try_from(p.offset).unwrap_or(0)).into_bytes());
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let mut pipe = redis::pipe();
        pipe.add_command(evalsha(&self.positions_max, &[self.positions_key()], &args));
        self.run::<Vec<i64>>(&pipe).await?;
        Ok(())
    }

    pub(super) async fn position(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn.clone();
        let stored: Option<String> = redis::cmd("HGET")
            .arg(self.positions_key())
            .arg(position_field(topic, partition))
            .query_async(&mut conn)
            .await?;
        stored
            .map(|s| {
                s.parse()
                    .map_err(|_| StoreError::Corrupt(format!("position {s}")))
            })
            .transpose()
    }
}

fn evalsha(script: &Script, keys: &[String], args: &[&[u8]]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        cmd.arg(key);
    }
    for arg in args {
        cmd.arg(*arg);
    }
    cmd
}
