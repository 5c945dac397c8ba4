//! The Redis store. Layout 2 (every key under the configured prefix):
//!
//! - `rec:<record type>:<record id>` — string: the version ([`version`]), the subjects of
//!   this version (none when deleted), a tab, the subjects earlier versions had and this
//!   one has not (subjects newline-separated);
//! - `sub:{<subject>}:<record type>` — hash: record id → version, live flag
//!   (`1`, or `0` for a tombstone) and the stored event (`records::stored`): one
//!   subject's copies of one record type, so a lookup reads only the types it returns.
//!   The event is kept only in copies: a record is read through its first subject;
//! - `sum:{<subject>}:contributions` — hash: contribution record id → version, flag and
//!   the month it pays (`ContributionSummary::stored_value`), the person's contribution
//!   index that lookups fold instead of decoding every contribution record;
//! - `meta` — hash: `gen` generation, `state`, `source`, `layout`, `t:<topic>/<partition>`
//!   rebuild targets and `p:<topic>/<partition>` highest materialized offsets (see
//!   `meta.rs`).
//!
//! The hash tag of a subject's keys is the subject, so they all sit in one Cluster slot
//! and a lookup of several types is one pipeline to one node. Each step is a Lua script,
//! so a compare-and-set by version is atomic; a batch is two pipelines (record entries,
//! then subject copies and index fields). Lookups read the store's state and layout in
//! the same round trip as the records, so a flushed store, or one written in another
//! layout, never answers a wrong `NOT_FOUND`.

mod scripts;

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::redis_link::RedisConn;
use redis::{Cmd, Pipeline, RedisError, Script, ServerErrorKind, Value};

use super::{
    EntriesWritten, LAYOUT, Meta, NotReady, RecordWrite, StoreError, StoreState, StoredRecord,
    SubjectData, SubjectEntry, SubjectPlan, SubjectRead, distinct, position_field, split_subjects,
    step_two, subject_updates, version,
};
use crate::proto::Position;
use crate::reach::ReachError;
use crate::records::{RecordKey, RecordType, SubjectKey};
use crate::redis_link::{Node, RedisLink, group_by_slot};
use crate::resolver::checks::ContributionSummary;
use scripts::{ADVANCE_AT, CLEAR, REBUILD, RECORD, REPLACE, SOURCES, SUBJECT};

/// Keys deleted per script call while clearing.
const CLEAR_PAGE: usize = 500;

/// Records in Redis, under a key prefix.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    prefix: String,
    /// Shared by clones: a store is cloned into every task that uses it.
    scripts: std::sync::Arc<[Script; 6]>,
}

impl RedisStore {
    /// Connects to the Redis of `link` (see [`RedisLink::connect`]); every key starts
    /// with `prefix`.
    pub async fn connect(link: &RedisLink, prefix: &str) -> Result<RedisStore, ReachError> {
        let store = RedisStore {
            conn: link.connect().await?,
            prefix: prefix.to_owned(),
            scripts: std::sync::Arc::new(SOURCES.map(Script::new)),
        };
        // The first command: a user whose ACL does not allow scripts is named here.
        store.load_scripts().await.map_err(|e| link.failed(&e))?;
        Ok(store)
    }

    async fn load_scripts(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for source in SOURCES {
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

    /// One script call as a pipeline of one.
    async fn run_one<T: redis::FromRedisValue>(
        &self,
        script: usize,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        let mut pipe = redis::pipe();
        pipe.add_command(evalsha(&self.scripts[script], keys, args));
        let (reply,): (T,) = self.run(&pipe).await?;
        Ok(reply)
    }

    fn record_key(&self, key: &RecordKey) -> String {
        let (record_type, id) = (key.record_type().as_str(), key.record_id());
        format!("{}rec:{record_type}:{id}", self.prefix)
    }

    fn subject_key(&self, subject: &str, record_type: RecordType) -> String {
        format!("{}sub:{{{subject}}}:{}", self.prefix, record_type.as_str())
    }

    fn contributions_key(&self, subject: &str) -> String {
        format!("{}sum:{{{subject}}}:contributions", self.prefix)
    }

    fn meta_key(&self) -> String {
        format!("{}meta", self.prefix)
    }

    pub(super) async fn write_entries(
        &self,
        writes: &[RecordWrite<'_>],
    ) -> Result<EntriesWritten, StoreError> {
        let keys: Vec<String> = writes.iter().map(|w| self.record_key(&w.key)).collect();
        let calls = self.entry_calls(&keys);
        let mut pipe = redis::pipe();
        for call in &calls {
            let args: Vec<[String; 2]> = call
                .iter()
                .map(|&i| {
                    [
                        version::text(writes[i].version),
                        writes[i].stored_subjects(),
                    ]
                })
                .collect();
            let args: Vec<&[u8]> = args.iter().flatten().map(String::as_bytes).collect();
            let call_keys: Vec<String> = call.iter().map(|&i| keys[i].clone()).collect();
            pipe.add_command(evalsha(&self.scripts[RECORD], &call_keys, &args));
        }
        let replies: Vec<Vec<(i64, String, String)>> = self.run(&pipe).await?;
        let mut plans: Vec<Option<Option<SubjectPlan>>> = vec![None; writes.len()];
        for (call, replies) in calls.iter().zip(replies) {
            if replies.len() != call.len() {
                return Err(StoreError::Corrupt(format!(
                    "{} replies to {} record writes",
                    replies.len(),
                    call.len()
                )));
            }
            for (&i, (applied, gone, current)) in call.iter().zip(replies) {
                plans[i] = Some((applied != 0).then_some(SubjectPlan { gone, current }));
            }
        }
        let plans: Option<Vec<Option<SubjectPlan>>> = plans.into_iter().collect();
        plans
            .map(EntriesWritten)
            .ok_or_else(|| StoreError::Corrupt("a record write got no reply".into()))
    }

    /// The step-one script calls of a batch whose record keys are `keys`, as indexes into
    /// them: runs of [`KEYS_PER_CALL`] in batch order, or on a cluster, where one script
    /// touches one slot only, runs of keys of one slot (a key's writes keep their order).
    fn entry_calls(&self, keys: &[String]) -> Vec<Vec<usize>> {
        let indexes: Vec<usize> = (0..keys.len()).collect();
        if !self.conn.is_cluster() {
            return indexes.chunks(KEYS_PER_CALL).map(<[_]>::to_vec).collect();
        }
        group_by_slot(keys.iter().enumerate())
            .into_iter()
            .flat_map(|same| {
                same.chunks(KEYS_PER_CALL)
                    .map(<[_]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub(super) async fn write_subject_copies(
        &self,
        writes: &[RecordWrite<'_>],
        written: &EntriesWritten,
    ) -> Result<(), StoreError> {
        // One call per subject (its keys share a Cluster slot), updates in batch order.
        let mut calls: BTreeMap<&str, SubjectCall> = BTreeMap::new();
        let applied = step_two(writes, written)?;
        for a in &applied {
            let w = a.write;
            let version = version::text(w.version);
            for (subject, listed) in subject_updates(a.plan) {
                let call = calls.entry(subject).or_default();
                let (flag, event): (&[u8], &[u8]) = match w.event() {
                    Some(event) if listed => (b"1", event),
                    _ => (b"0", b""),
                };
                let copies = self.subject_key(subject, w.key.record_type());
                call.update(copies, w.key.record_id(), &version, flag, event);
                if let Some(index) = &a.index {
                    let rest = index
                        .value(listed)
                        .strip_prefix(version.as_str())
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "index value of {} version {version}",
                                w.key
                            ))
                        })?;
                    let key = self.contributions_key(subject);
                    call.update(key, w.key.record_id(), &version, rest.as_bytes(), b"");
                }
            }
        }
        if calls.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for call in calls.values() {
            let args: Vec<&[u8]> = call.args.iter().map(AsRef::as_ref).collect();
            pipe.add_command(evalsha(&self.scripts[SUBJECT], &call.keys, &args));
        }
        self.run::<Vec<i64>>(&pipe).await?;
        Ok(())
    }

    /// A pipeline that starts with the readiness read: the store's state and layout.
    fn pipe_after_readiness(&self) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(self.meta_key())
            .arg("state")
            .arg("layout");
        pipe
    }

    /// Sends `pipe` (made by [`RedisStore::pipe_after_readiness`]) and checks readiness;
    /// the replies of the commands after it, in order.
    async fn query_when_ready(&self, pipe: &Pipeline) -> Result<Replies, StoreError> {
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        let mut replies = Replies(replies.into_iter());
        let (state, layout): (Option<String>, Option<String>) = replies.next()?;
        check_ready(state.as_deref(), layout.as_deref())?;
        Ok(replies)
    }

    pub(super) async fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        let mut pipe = self.pipe_after_readiness();
        pipe.get(self.record_key(key));
        let entry: Option<String> = self.query_when_ready(&pipe).await?.next()?;
        // A deleted record has no subjects; a live one has its event in each copy.
        let subjects = entry
            .as_deref()
            .map(|e| entry_subjects(key, e))
            .transpose()?;
        let Some(first) = subjects.and_then(|s| split_subjects(s).next()) else {
            return Ok(None);
        };
        let mut pipe = self.pipe_after_readiness();
        pipe.hget(self.subject_key(first, key.record_type()), key.record_id());
        let copy: Option<Vec<u8>> = self.query_when_ready(&pipe).await?.next()?;
        let Some(copy) = copy else { return Ok(None) };
        let (version, event) = parse_copy(key.as_str(), copy)?;
        Ok(event.map(|event| StoredRecord {
            key: key.clone(),
            version,
            event,
        }))
    }

    pub(super) async fn subject_entries(
        &self,
        subject: &SubjectKey,
    ) -> Result<Vec<SubjectEntry>, StoreError> {
        let mut pipe = self.pipe_after_readiness();
        for t in RecordType::ALL {
            pipe.hgetall(self.subject_key(subject.as_str(), t));
        }
        let mut replies = self.query_when_ready(&pipe).await?;
        let mut listed = Vec::new();
        for t in RecordType::ALL {
            let copies: Vec<(String, Vec<u8>)> = replies.next()?;
            for (id, value) in copies {
                let key = copy_key(t, &id)?;
                let (version, event) = parse_copy(key.as_str(), value)?;
                listed.push(SubjectEntry {
                    key,
                    version,
                    event,
                });
            }
        }
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    pub(super) async fn read_subjects(
        &self,
        reads: &[SubjectRead],
    ) -> Result<Vec<SubjectData>, StoreError> {
        let asked: Vec<Vec<RecordType>> = reads.iter().map(|r| distinct(&r.types)).collect();
        let mut pipe = self.pipe_after_readiness();
        for (read, types) in reads.iter().zip(&asked) {
            for t in types {
                pipe.hgetall(self.subject_key(read.subject.as_str(), *t));
            }
            if read.contributions {
                pipe.hgetall(self.contributions_key(read.subject.as_str()));
            }
        }
        let mut replies = self.query_when_ready(&pipe).await?;
        let mut out = Vec::with_capacity(reads.len());
        for (read, types) in reads.iter().zip(&asked) {
            let mut data = SubjectData::default();
            for t in types {
                let copies: Vec<(String, Vec<u8>)> = replies.next()?;
                for (id, value) in copies {
                    if let Some(record) = live_record(&id, value, *t)? {
                        data.records.push(record);
                    }
                }
            }
            data.records.sort_by(|a, b| a.key.cmp(&b.key));
            if read.contributions {
                let fields: Vec<(String, Vec<u8>)> = replies.next()?;
                let summary = ContributionSummary::from_stored(fields)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                data.contributions = Some(summary);
            }
            out.push(data);
        }
        Ok(out)
    }

    pub(super) async fn meta(&self) -> Result<Option<Meta>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.meta_key())
            .query_async(&mut conn)
            .await?;
        parse_meta(fields)
    }

    pub(super) async fn replace_generation(
        &self,
        seen: Option<&str>,
        new: &str,
        source: &str,
    ) -> Result<bool, StoreError> {
        let replaced: i64 = self
            .run_one(
                REPLACE,
                &[self.meta_key()],
                &[
                    seen.unwrap_or_default().as_bytes(),
                    new.as_bytes(),
                    source.as_bytes(),
                    LAYOUT.as_bytes(),
                ],
            )
            .await?;
        Ok(replaced == 1)
    }

    /// Deletes every key under the prefix but the marker, node by node on a cluster, a
    /// page at a time while `generation` is still clearing. On one server a page is one
    /// script that checks the generation and deletes; a cluster's keys lie in many slots,
    /// so there each page checks the generation and then deletes (a page may outlive
    /// the generation by that one step; a generation is replaced only when the store was
    /// found lost, and its successor clears again).
    pub(super) async fn clear(&self, generation: &str) -> Result<u64, StoreError> {
        let mut deleted = 0u64;
        for node in self.conn.masters().await? {
            match self.clear_node(&node, generation).await? {
                Some(n) => deleted += n,
                None => break,
            }
        }
        Ok(deleted)
    }

    /// [`RedisStore::clear`] on one node; `None` once the generation is no longer
    /// clearing.
    async fn clear_node(
        &self,
        node: &Option<Node>,
        generation: &str,
    ) -> Result<Option<u64>, StoreError> {
        let meta_key = self.meta_key();
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys) = self
                .conn
                .scan_page(node, &pattern, cursor, CLEAR_PAGE)
                .await?;
            let keys: Vec<String> = keys.into_iter().filter(|k| *k != meta_key).collect();
            if !keys.is_empty() {
                match self.clear_page(generation, keys).await? {
                    Some(n) => deleted += n,
                    None => return Ok(None),
                }
            }
            if next == 0 {
                return Ok(Some(deleted));
            }
            cursor = next;
        }
    }

    /// Deletes `keys` while `generation` is clearing: how many existed, `None` if it no
    /// longer is.
    async fn clear_page(
        &self,
        generation: &str,
        keys: Vec<String>,
    ) -> Result<Option<u64>, StoreError> {
        if !self.conn.is_cluster() {
            let mut batch = vec![self.meta_key()];
            batch.extend(keys);
            let n: i64 = self
                .run_one(CLEAR, &batch, &[generation.as_bytes()])
                .await?;
            return Ok(u64::try_from(n).ok());
        }
        let (seen, state): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.meta_key())
            .arg("gen")
            .arg("state")
            .query_async(&mut self.conn.clone())
            .await?;
        if seen.as_deref() != Some(generation)
            || state.as_deref() != Some(StoreState::Clearing.as_str())
        {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("UNLINK").arg(key);
        }
        let unlinked: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(Some(unlinked.iter().sum()))
    }

    pub(super) async fn start_rebuild(
        &self,
        generation: &str,
        targets: &[Position],
    ) -> Result<bool, StoreError> {
        let args = position_args(generation, targets);
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let started: i64 = self.run_one(REBUILD, &[self.meta_key()], &args).await?;
        Ok(started == 1)
    }

    pub(super) async fn advance_positions(
        &self,
        generation: &str,
        positions: &[Position],
    ) -> Result<(), StoreError> {
        // Positions say the records before them are in the store: on a cluster, only
        // once a replica that a failover would promote has them too.
        self.conn.settle().await?;
        let args = position_args(generation, positions);
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let reply: i64 = self.run_one(ADVANCE_AT, &[self.meta_key()], &args).await?;
        match reply {
            -1 | -2 => Err(StoreError::GenerationChanged),
            _ => Ok(()),
        }
    }
}

/// Record entries per step-one script call: a few hundred microseconds of Redis time, so
/// lookups between the calls wait no longer than that.
const KEYS_PER_CALL: usize = 100;

/// The step-two updates of one subject, as `SUBJECT_CAS` takes them (borrowing the
/// writes' fields and events).
#[derive(Default)]
struct SubjectCall<'w> {
    keys: Vec<String>,
    args: Vec<Cow<'w, [u8]>>,
}

impl<'w> SubjectCall<'w> {
    /// Adds a compare-and-set of `field` of `key` to `version`, value `version` + `flag`
    /// + `rest`.
    fn update(
        &mut self,
        key: String,
        field: &'w str,
        version: &str,
        flag: &'w [u8],
        rest: &'w [u8],
    ) {
        let index = match self.keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        };
        self.args.extend([
            Cow::Owned((index + 1).to_string().into_bytes()),
            Cow::Borrowed(field.as_bytes()),
            Cow::Owned(version.as_bytes().to_vec()),
            Cow::Borrowed(flag),
            Cow::Borrowed(rest),
        ]);
    }
}

/// ARGV of the position scripts: the generation, then field and offset pairs (offsets as
/// 20 digits, so text order is numeric order).
fn position_args(generation: &str, positions: &[Position]) -> Vec<Vec<u8>> {
    let mut args = Vec::with_capacity(1 + positions.len() * 2);
    args.push(generation.as_bytes().to_vec());
    for p in positions {
        args.push(position_field(&p.topic, p.partition).into_bytes());
        args.push(format!("{:020}", p.offset.max(0)).into_bytes());
    }
    args
}

/// The replies of a pipeline, taken in the order its commands were added.
struct Replies(std::vec::IntoIter<Value>);

impl Replies {
    fn next<T: redis::FromRedisValue>(&mut self) -> Result<T, StoreError> {
        let value = self
            .0
            .next()
            .ok_or_else(|| StoreError::Corrupt("fewer replies than commands".into()))?;
        redis::from_redis_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// A subject copy: its version, and its event (`None` for a tombstone).
fn parse_copy(key: &str, mut value: Vec<u8>) -> Result<(u64, Option<Vec<u8>>), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("subject entry {key}"));
    let (version, rest) = version::split(&value).ok_or_else(corrupt)?;
    let flag_at = value.len() - rest.len();
    match rest.first() {
        Some(b'1') => Ok((version, Some(value.split_off(flag_at + 1)))),
        Some(b'0') => Ok((version, None)),
        _ => Err(corrupt()),
    }
}

/// The subjects of the current version in a record entry (see `RECORD_CAS`).
fn entry_subjects<'e>(key: &RecordKey, entry: &'e str) -> Result<&'e str, StoreError> {
    version::split(entry.as_bytes())
        .and_then(|(_, rest)| entry.get(entry.len() - rest.len()..))
        .and_then(|rest| rest.split_once('\t'))
        .map(|(current, _)| current)
        .ok_or_else(|| StoreError::Corrupt(format!("record entry of {key}")))
}

/// The key of a copy listed as `id` in the hash of `record_type`.
fn copy_key(record_type: RecordType, id: &str) -> Result<RecordKey, StoreError> {
    RecordKey::checked(record_type, id).map_err(|_| {
        StoreError::Corrupt(format!("{id:?} among the {} copies", record_type.as_str()))
    })
}

/// A copy read from the hash of `record_type`, when it is live.
fn live_record(
    id: &str,
    value: Vec<u8>,
    record_type: RecordType,
) -> Result<Option<StoredRecord>, StoreError> {
    let key = copy_key(record_type, id)?;
    let (version, event) = parse_copy(key.as_str(), value)?;
    Ok(event.map(|event| StoredRecord {
        key,
        version,
        event,
    }))
}

/// Lookups answer only from a ready generation of this layout: a store of another layout
/// is as good as lost.
fn check_ready(state: Option<&str>, layout: Option<&str>) -> Result<(), StoreError> {
    if layout != Some(LAYOUT) {
        return Err(StoreError::NotReady(NotReady::Lost));
    }
    match state.and_then(StoreState::parse) {
        Some(StoreState::Ready) => Ok(()),
        Some(_) => Err(StoreError::NotReady(NotReady::Rebuilding)),
        None => Err(StoreError::NotReady(NotReady::Lost)),
    }
}

fn parse_meta(fields: BTreeMap<String, String>) -> Result<Option<Meta>, StoreError> {
    let Some(generation) = fields.get("gen").cloned() else {
        return Ok(None);
    };
    let state = fields
        .get("state")
        .and_then(|s| StoreState::parse(s))
        .ok_or_else(|| StoreError::Corrupt("generation without a state".into()))?;
    let offsets = |tag: &str| -> Result<BTreeMap<String, i64>, StoreError> {
        fields
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(tag).map(|f| (f, v)))
            .map(|(f, v)| {
                v.parse()
                    .map(|o| (f.to_owned(), o))
                    .map_err(|_| StoreError::Corrupt(format!("offset {v}")))
            })
            .collect()
    };
    Ok(Some(Meta {
        generation,
        state,
        source: fields.get("source").cloned().unwrap_or_default(),
        layout: fields.get("layout").cloned().unwrap_or_default(),
        targets: offsets("t:")?,
        positions: offsets("p:")?,
    }))
}

/// `text` with Redis glob characters escaped, for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
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
