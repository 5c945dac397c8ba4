//! The per-person access index behind `ListDataAccesses`: who looked at a person's data,
//! when and why, materialized from the audit topic.
//!
//! Redis layout (under the store's key prefix): `acc:{p:<resident id>}`, a sorted set
//! scored by milliseconds since the epoch whose members are encoded `PersonAccess`es.
//! A member is derived only from its entry (and carries the chain id and sequence), so
//! replaying the trail writes the same members again: indexing is idempotent. Entries
//! older than the retention are not indexed, trimmed when a person's set is written, set
//! to expire with its newest entry, and filtered out when listing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use redis::aio::ConnectionManager;

use crate::domain::ResidentId;
use crate::proto::audit_body::Kind;
use crate::proto::{AuditBody, AuditEntry, PersonAccess};

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Redis failed or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis holds something the index did not write.
    #[error("unexpected entry in the access index: {0}")]
    Corrupt(String),
}

impl IndexError {
    /// Whether trying again later may succeed (Redis unreachable, busy, loading).
    pub fn is_transient(&self) -> bool {
        match self {
            IndexError::Redis(e) => crate::resolver::store::redis_is_transient(e),
            IndexError::Corrupt(_) => false,
        }
    }
}

/// One person's access to add: whose, when (ms since the epoch), and the encoded access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexWrite {
    pub(super) person: String,
    pub(super) at_ms: i64,
    pub(super) member: Vec<u8>,
}

/// The access index.
#[derive(Clone)]
pub enum AccessIndex {
    /// Redis (production, tests), next to the record store.
    Redis(RedisIndex),
    /// In-process memory (`dev`, `demo`).
    Memory(MemoryIndex),
}

/// The index in Redis.
#[derive(Clone)]
pub struct RedisIndex {
    conn: ConnectionManager,
    prefix: String,
}

/// The index in memory.
#[derive(Clone, Default)]
pub struct MemoryIndex {
    people: Arc<Mutex<People>>,
}

/// Person → their accesses as (ms since the epoch, encoded access).
type People = HashMap<String, BTreeSet<(i64, Vec<u8>)>>;

impl AccessIndex {
    /// The index in the Redis of `link`, under `prefix` (the record store's prefix, so a
    /// flush of the store flushes the index with it).
    pub async fn redis(
        link: &crate::redis_link::RedisLink,
        prefix: &str,
    ) -> Result<AccessIndex, crate::reach::ReachError> {
        let conn = link.manager().await?;
        Ok(AccessIndex::Redis(RedisIndex {
            conn,
            prefix: prefix.to_owned(),
        }))
    }

    /// An empty index in memory.
    pub fn memory() -> AccessIndex {
        AccessIndex::Memory(MemoryIndex::default())
    }

    /// Newest first, at most `limit`, only entries newer than now - retention.
    pub async fn list(
        &self,
        person: &ResidentId,
        limit: usize,
        retention: Duration,
    ) -> Result<Vec<PersonAccess>, IndexError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let cutoff = cutoff_ms(retention);
        let members: Vec<Vec<u8>> = match self {
            AccessIndex::Redis(index) => {
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(index.key(person.as_str()))
                    .arg("+inf")
                    .arg(format!("({cutoff}"))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut index.conn.clone())
                    .await?
            }
            AccessIndex::Memory(index) => index.list(person.as_str(), limit, cutoff),
        };
        members
            .iter()
            .map(|m| {
                PersonAccess::decode(m.as_slice())
                    .map_err(|e| IndexError::Corrupt(format!("not a PersonAccess: {e}")))
            })
            .collect()
    }

    /// Adds accesses; trims each written person's set to `retention`.
    pub(super) async fn add(
        &self,
        writes: &[IndexWrite],
        retention: Duration,
    ) -> Result<(), IndexError> {
        if writes.is_empty() {
            return Ok(());
        }
        let cutoff = cutoff_ms(retention);
        match self {
            AccessIndex::Redis(index) => index.add(writes, cutoff, retention).await,
            AccessIndex::Memory(index) => {
                index.add(writes, cutoff);
                Ok(())
            }
        }
    }
}

impl RedisIndex {
    fn key(&self, person: &str) -> String {
        format!("{}acc:{{p:{person}}}", self.prefix)
    }

    /// One pipeline: the members of each person, then per person the trim and the expiry
    /// (when its newest entry leaves the retention window).
    async fn add(
        &self,
        writes: &[IndexWrite],
        cutoff: i64,
        retention: Duration,
    ) -> Result<(), IndexError> {
        let mut newest: HashMap<&str, i64> = HashMap::new();
        let mut pipe = redis::pipe();
        for w in writes {
            pipe.cmd("ZADD")
                .arg(self.key(&w.person))
                .arg(w.at_ms)
                .arg(&w.member)
                .ignore();
            let at = newest.entry(&w.person).or_insert(w.at_ms);
            *at = (*at).max(w.at_ms);
        }
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        for (person, at) in newest {
            let key = self.key(person);
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(format!("({cutoff}"))
                .ignore();
            // The set's newest entry may be older than this batch's: the expiry only
            // moves later than the batch's newest entry plus the retention, never earlier
            // than now plus the retention, so nothing within retention expires early.
            let expire_at = at.max(now_ms()).saturating_add(retention_ms);
            if expire_at < i64::MAX / 2 {
                pipe.cmd("PEXPIREAT")
                    .arg(&key)
                    .arg(expire_at)
                    .arg("GT")
                    .ignore();
                pipe.cmd("PEXPIREAT")
                    .arg(&key)
                    .arg(expire_at)
                    .arg("NX")
                    .ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }
}

impl MemoryIndex {
    fn list(&self, person: &str, limit: usize, cutoff: i64) -> Vec<Vec<u8>> {
        let people = self.people.lock().unwrap_or_else(|e| e.into_inner());
        people
            .get(person)
            .map(|set| {
                set.iter()
                    .rev()
                    .take_while(|(at, _)| *at > cutoff)
                    .take(limit)
                    .map(|(_, member)| member.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn add(&self, writes: &[IndexWrite], cutoff: i64) {
        let mut people = self.people.lock().unwrap_or_else(|e| e.into_inner());
        let mut written = BTreeSet::new();
        for w in writes {
            let set = people.entry(w.person.clone()).or_default();
            set.insert((w.at_ms, w.member.clone()));
            written.insert(&w.person);
        }
        for person in written {
            if let Some(set) = people.get_mut(person) {
                // Ordered by time: everything before the first one in retention goes.
                *set = set.split_off(&(cutoff.saturating_add(1), Vec::new()));
            }
        }
    }
}

/// What an audit entry adds to the index: one `PersonAccess` per person it is about
/// (carrying no other person's ID), unless it is older than `retention` or no access.
/// Person IDs that do not parse are left out (the resolver validates them before any
/// lookup, so none should be there).
pub fn person_accesses(
    entry: &AuditEntry,
    body: &AuditBody,
    retention: Duration,
) -> Vec<(ResidentId, PersonAccess)> {
    let Some(Kind::Access(access)) = &body.kind else {
        return Vec::new();
    };
    let Some(at) = body.at else {
        return Vec::new();
    };
    if timestamp_ms(&at) <= cutoff_ms(retention) {
        return Vec::new();
    }
    let mut people: Vec<ResidentId> = access
        .person_ids
        .iter()
        .filter_map(|id| ResidentId::parse(id).ok())
        .collect();
    people.sort();
    people.dedup();
    people
        .into_iter()
        .map(|person| {
            let seen = PersonAccess {
                at: Some(at),
                requester_agency: access.requester_agency,
                requester_service: access.requester_service.clone(),
                purpose: access.purpose.clone(),
                case_id: access.case_id.clone(),
                method: access.method.clone(),
                sections: access.sections.clone(),
                decision: access.decision,
                chain_id: entry.chain_id.clone(),
                sequence: entry.sequence,
            };
            (person, seen)
        })
        .collect()
}

/// The index writes of `accesses`.
pub(super) fn index_writes(accesses: Vec<(ResidentId, PersonAccess)>) -> Vec<IndexWrite> {
    accesses
        .into_iter()
        .map(|(person, access)| IndexWrite {
            person: person.as_str().to_owned(),
            at_ms: access.at.as_ref().map_or(0, timestamp_ms),
            member: access.encode_to_vec(),
        })
        .collect()
}

fn timestamp_ms(at: &prost_types::Timestamp) -> i64 {
    at.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(at.nanos / 1_000_000))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch before which entries are out of `retention`.
fn cutoff_ms(retention: Duration) -> i64 {
    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    now_ms().saturating_sub(retention)
}

#[cfg(test)]
mod tests;
