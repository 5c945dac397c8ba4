//! The per-person access index behind `ListDataAccesses`: who looked at a person's data,
//! when and why, materialized from the audit topic.
//!
//! A person's list holds two kinds of entries, in one order (see [`order`]): accesses kept
//! on their own (allowed ones), and refusals collapsed by requester, method, purpose, case
//! and reason into one entry with a count and its first and last time (see [`groups`]).
//! So a flood of refusals takes one entry, and cannot push anything out of the list.
//! The list is read in pages that resume after the last key returned.
//!
//! Each person's part is bounded ([`IndexBounds`]): beyond it the oldest accesses, and
//! the refusal groups refused longest ago, are dropped, and the index notes the newest
//! access it dropped so the listing says from when it is complete. Entries older than
//! the retention are not indexed, trimmed when a person's part is written, filtered out
//! when listing, and a person's keys expire with their newest entry.
//!
//! Indexing is idempotent: an access's key is derived from its place in the trail, and a
//! group counts each chain's refusals only past the highest sequence it counted.
//!
//! Redis layout (under the store's key prefix), all under the person's hash tag:
//! `acc:{p:<id>}` the accesses (sorted set of equal scores: key + encoded `PersonAccess`),
//! `acg:{p:<id>}` the groups' keys (sorted set of equal scores), `acl:{p:<id>}` the same
//! keys scored by their latest refusal, `acd:{p:<id>}` the groups (hash: group id →
//! encoded state), `acx:{p:<id>}` the newest access the bounds dropped (ms),
//! `acn:{p:<id>}` the order accesses were indexed in (stream, see [`arrivals`]); and `ach`,
//! the indexer's verified head of every chain (hash: chain id → `<sequence>:<hash hex>`).

mod arrivals;
mod groups;
mod memory;
mod order;
mod redis;
mod scripts;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;

use crate::domain::ResidentId;
use crate::proto::audit_body::Kind;
use crate::proto::{AccessDecision, AuditBody, AuditEntry, PersonAccess};
pub use arrivals::{Arrival, ArrivalId, MAX_ARRIVALS_PER_READ};
use groups::GroupId;
pub use memory::MemoryIndex;
pub use order::Cursor;
pub use redis::RedisIndex;

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Redis failed or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis holds something the index did not write.
    #[error("unexpected entry in the access index: {0}")]
    Corrupt(String),
}

impl IndexError {
    /// Whether trying again later may succeed (Redis unreachable, busy, loading).
    pub fn is_transient(&self) -> bool {
        match self {
            IndexError::Redis(e) => crate::redis_link::is_transient(e),
            IndexError::Corrupt(_) => false,
        }
    }
}

/// How much the index keeps of one person, within the retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexBounds {
    /// Accesses kept on their own (allowed ones); beyond, the oldest are dropped.
    pub accesses: usize,
    /// Groups of collapsed refusals; beyond, those refused longest ago are dropped.
    pub refusal_groups: usize,
}

impl Default for IndexBounds {
    /// 10,000 accesses and 1,000 kinds of refusal per person: years of a busy citizen's
    /// lookups, in a few MB of Redis at most.
    fn default() -> IndexBounds {
        IndexBounds {
            accesses: 10_000,
            refusal_groups: 1_000,
        }
    }
}

/// One page of a person's list.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessPage {
    /// Newest first; a single access has `count` 1 and `last_at` = `at`.
    pub accesses: Vec<PersonAccess>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// The list is complete for accesses after this instant: the retention's start, or
    /// the newest access the bounds dropped if that is later.
    pub complete_since: SystemTime,
    /// Whether the bounds dropped accesses within the retention.
    pub dropped: bool,
}

/// What a backend read for a page: up to the asked number of entries of each kind after
/// the cursor, newest first, with their keys.
#[derive(Debug, Default)]
struct Fetched {
    singles: Vec<(Vec<u8>, PersonAccess)>,
    groups: Vec<(Vec<u8>, PersonAccess)>,
    /// The newest access the bounds dropped, ms since the epoch (0: none).
    cut_ms: i64,
}

/// An entry of a person's arrival log as a backend read it: its id, and the access's key
/// and access unless it left the index.
type Logged = (ArrivalId, Option<(Vec<u8>, PersonAccess)>);

/// One person's access to add.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum IndexWrite {
    /// An access kept on its own, with its key.
    Single {
        person: String,
        key: Vec<u8>,
        access: PersonAccess,
    },
    /// A refusal, counted into its group.
    Refusal {
        person: String,
        group: GroupId,
        refusal: PersonAccess,
    },
}

impl IndexWrite {
    /// Whose access it is.
    fn person(&self) -> &String {
        match self {
            IndexWrite::Single { person, .. } | IndexWrite::Refusal { person, .. } => person,
        }
    }
}

/// A chain's verified head as the indexer saves it: the last entry indexed (or its start)
/// and its hash; the chain's next entry must link to it.
pub(crate) type ChainHead = (u64, crate::audit::Hash);

/// The access index.
#[derive(Clone)]
pub enum AccessIndex {
    /// Redis (production, tests), next to the record store.
    Redis(RedisIndex),
    /// In-process memory (`dev`, `demo`).
    Memory(MemoryIndex, IndexBounds),
}

impl AccessIndex {
    /// The index in the Redis of `link`, under `prefix` (the record store's prefix, so a
    /// flush of the store flushes the index with it).
    pub async fn redis(
        link: &crate::redis_link::RedisLink,
        prefix: &str,
    ) -> Result<AccessIndex, crate::reach::ReachError> {
        Ok(AccessIndex::Redis(
            RedisIndex::connect(link, prefix, IndexBounds::default()).await?,
        ))
    }

    /// An empty index in memory.
    pub fn memory() -> AccessIndex {
        AccessIndex::Memory(MemoryIndex::default(), IndexBounds::default())
    }

    /// The same index, keeping `bounds` of each person from its next write on.
    pub fn with_bounds(self, bounds: IndexBounds) -> AccessIndex {
        match self {
            AccessIndex::Redis(index) => AccessIndex::Redis(index.with_bounds(bounds)),
            AccessIndex::Memory(index, _) => AccessIndex::Memory(index, bounds),
        }
    }

    /// The page of at most `limit` (at least one) entries after `after` (from the newest
    /// without one), newest first, only entries within `retention`.
    pub async fn page(
        &self,
        person: &ResidentId,
        after: Option<&Cursor>,
        limit: usize,
        retention: Duration,
    ) -> Result<AccessPage, IndexError> {
        let limit = limit.max(1);
        let cutoff = cutoff_ms(retention);
        // One more than asked of each kind tells whether another page follows.
        let fetched = match self {
            AccessIndex::Redis(index) => {
                index
                    .fetch(person.as_str(), after, limit + 1, cutoff)
                    .await?
            }
            AccessIndex::Memory(index, _) => {
                index.fetch(person.as_str(), after, limit + 1, cutoff)?
            }
        };
        Ok(assemble(fetched, limit, cutoff))
    }

    /// The id of the last access `person`'s arrival log holds: a watch "from now" starts
    /// after it.
    pub async fn last_arrival(&self, person: &ResidentId) -> Result<ArrivalId, IndexError> {
        match self {
            AccessIndex::Redis(index) => index.last_arrival(person.as_str()).await,
            AccessIndex::Memory(index, _) => Ok(index.last_arrival(person.as_str())),
        }
    }

    /// Up to `n` (at most [`MAX_ARRIVALS_PER_READ`]) accesses of `person` that were
    /// indexed after `after`, in the order they were indexed. An access out of
    /// `retention`, or dropped since, is there without its access, so a watch moves past
    /// it.
    pub async fn arrivals(
        &self,
        person: &ResidentId,
        after: ArrivalId,
        n: usize,
        retention: Duration,
    ) -> Result<Vec<Arrival>, IndexError> {
        let n = n.clamp(1, MAX_ARRIVALS_PER_READ);
        let logged = match self {
            AccessIndex::Redis(index) => index.arrivals(person.as_str(), after, n).await?,
            AccessIndex::Memory(index, _) => index.arrivals(person.as_str(), after, n)?,
        };
        let cutoff = cutoff_ms(retention);
        Ok(logged
            .into_iter()
            .map(|(id, found)| Arrival {
                id,
                access: found
                    .filter(|(key, _)| order::time_of(key).is_some_and(|at| at > cutoff))
                    .map(|(_, mut access)| {
                        access.count = 1;
                        access.last_at = access.at;
                        access
                    }),
            })
            .collect())
    }

    /// Indexes audit entries, as the indexer does with each batch it reads: an access
    /// fans out to the persons it names, a refusal is counted into its group, and each
    /// written person's part is trimmed to `retention` and the bounds. Idempotent: a
    /// replay of entries already indexed changes nothing.
    pub async fn index_entries(
        &self,
        entries: &[(AuditEntry, AuditBody)],
        retention: Duration,
    ) -> Result<(), IndexError> {
        let writes: Vec<IndexWrite> = entries
            .iter()
            .flat_map(|(entry, body)| index_writes(person_accesses(entry, body, retention)))
            .collect();
        self.add(&writes, retention).await
    }

    /// The saved verified heads of `chains`, in their order (`None`: none saved).
    pub(crate) async fn chain_heads(
        &self,
        chains: &[&str],
    ) -> Result<Vec<Option<ChainHead>>, IndexError> {
        match self {
            AccessIndex::Redis(index) => index.heads(chains).await,
            AccessIndex::Memory(index, _) => Ok(index.heads(chains)),
        }
    }

    /// Saves verified heads after the entries up to them were indexed; a head never moves
    /// back.
    pub(crate) async fn save_chain_heads(
        &self,
        heads: &[(String, ChainHead)],
    ) -> Result<(), IndexError> {
        match self {
            AccessIndex::Redis(index) => index.save_heads(heads).await,
            AccessIndex::Memory(index, _) => {
                index.save_heads(heads);
                Ok(())
            }
        }
    }

    /// Adds accesses; trims each written person's part to `retention` and the bounds.
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
            AccessIndex::Memory(index, bounds) => {
                index.add(writes, cutoff, *bounds);
                Ok(())
            }
        }
    }
}

/// The page of the `limit` newest of `fetched`'s entries.
fn assemble(fetched: Fetched, limit: usize, cutoff: i64) -> AccessPage {
    let Fetched {
        singles,
        groups,
        cut_ms,
    } = fetched;
    let singles = singles.into_iter().map(|(key, mut access)| {
        access.count = 1;
        access.last_at = access.at;
        (key, access)
    });
    let mut merged: Vec<(Vec<u8>, PersonAccess)> = singles.chain(groups).collect();
    // Keys are unique across both kinds (the kind is part of the key): newest first.
    merged.sort_by(|a, b| b.0.cmp(&a.0));
    let next = if merged.len() > limit {
        merged.truncate(limit);
        merged.last().and_then(|(key, _)| Cursor::of_member(key))
    } else {
        None
    };
    let dropped = cut_ms > cutoff;
    AccessPage {
        accesses: merged.into_iter().map(|(_, access)| access).collect(),
        next,
        complete_since: UNIX_EPOCH
            + Duration::from_millis(u64::try_from(cutoff.max(cut_ms)).unwrap_or(0)),
        dropped,
    }
}

/// An encoded access, or what is wrong with it.
fn decode_access(bytes: &[u8]) -> Result<PersonAccess, IndexError> {
    PersonAccess::decode(bytes).map_err(|e| IndexError::Corrupt(format!("not a PersonAccess: {e}")))
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
                reason: access.reason.clone(),
                ..Default::default()
            };
            (person, seen)
        })
        .collect()
}

/// The index writes of `accesses`: a refusal is counted into its group, anything else is
/// kept on its own.
pub(super) fn index_writes(accesses: Vec<(ResidentId, PersonAccess)>) -> Vec<IndexWrite> {
    accesses
        .into_iter()
        .map(|(person, access)| {
            let person = person.as_str().to_owned();
            if access.decision == AccessDecision::Denied as i32 {
                IndexWrite::Refusal {
                    person,
                    group: GroupId::of(&access),
                    refusal: access,
                }
            } else {
                let at_ms = access.at.as_ref().map_or(0, timestamp_ms);
                IndexWrite::Single {
                    person,
                    key: order::single_key(at_ms, &access.chain_id, access.sequence),
                    access,
                }
            }
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
