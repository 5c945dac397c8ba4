//! The access index in Redis, next to the record store. Every key of a person carries
//! the person's hash tag, so each script works within one Redis Cluster slot.
//!
//! A batch is one round trip: the accesses kept on their own are added (an idempotent
//! `ZADD` each, in a script that logs the access in the person's arrival log only when it
//! was new), each touched group counts its refusals in one script (atomic, so indexer
//! replicas counting into the same group at once cannot lose a count), and one script
//! per person trims to the retention and the bounds and moves the expiry. A page is one
//! script, and so is a watch's read of the arrival log. See [`super::scripts`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::redis_link::RedisConn;
use prost::Message as _;
use redis::{Pipeline, Script, ServerErrorKind};

use super::arrivals::ArrivalId;
use super::groups::{GroupId, MAX_CHAIN_MARKS};
use super::order::{Cursor, group_key, split_single, time_bytes};
use super::scripts::{ABSORB, ADD_SINGLE, ARRIVALS, PAGE, TIDY};
use super::{
    ChainHead, Fetched, IndexBounds, IndexError, IndexWrite, Logged, decode_access, now_ms,
    timestamp_ms,
};
use crate::proto::PersonAccess;

const SOURCES: [&str; 5] = [ABSORB, TIDY, PAGE, ADD_SINGLE, ARRIVALS];
const ABSORB_SCRIPT: usize = 0;
const TIDY_SCRIPT: usize = 1;
const PAGE_SCRIPT: usize = 2;
const ADD_SINGLE_SCRIPT: usize = 3;
const ARRIVALS_SCRIPT: usize = 4;

/// The index in Redis.
#[derive(Clone)]
pub struct RedisIndex {
    conn: RedisConn,
    prefix: String,
    bounds: IndexBounds,
    /// ABSORB, TIDY, PAGE, ADD_SINGLE, ARRIVALS; shared by clones.
    scripts: std::sync::Arc<[Script; 5]>,
}

/// What the page script returns: the accesses' members, the groups' fields (four each),
/// the newest dropped.
type PageReply = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<u8>);

/// A person's keys: accesses, groups' keys, groups' keys by latest refusal, groups,
/// newest dropped, arrival log.
type Keys = [String; 6];

impl RedisIndex {
    /// Connects to the Redis of `link`; every key starts with `prefix`.
    pub(super) async fn connect(
        link: &crate::redis_link::RedisLink,
        prefix: &str,
        bounds: IndexBounds,
    ) -> Result<RedisIndex, crate::reach::ReachError> {
        // Connected as every store is: within the connect timeout, one line if not.
        let conn = link.connect().await?;
        Ok(RedisIndex {
            conn,
            prefix: prefix.to_owned(),
            bounds,
            scripts: std::sync::Arc::new(SOURCES.map(Script::new)),
        })
    }

    pub(super) fn with_bounds(self, bounds: IndexBounds) -> RedisIndex {
        RedisIndex { bounds, ..self }
    }

    fn keys(&self, person: &str) -> Keys {
        let key = |name: &str| format!("{}{name}:{{p:{person}}}", self.prefix);
        [
            key("acc"),
            key("acg"),
            key("acl"),
            key("acd"),
            key("acx"),
            key("acn"),
        ]
    }

    /// Runs `pipe`, loading the scripts once if Redis lost them (it restarted or was
    /// flushed). Every command in it is idempotent, so running it again is safe.
    async fn run<T: redis::FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, IndexError> {
        let mut conn = self.conn.clone();
        match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) => {
                let mut load = redis::pipe();
                for source in SOURCES {
                    load.cmd("SCRIPT").arg("LOAD").arg(source);
                }
                load.query_async::<Vec<String>>(&mut conn).await?;
                Ok(pipe.query_async(&mut conn).await?)
            }
            other => Ok(other?),
        }
    }

    /// Adds an `EVALSHA` of `script` to `pipe`.
    fn evalsha<'p>(
        &self,
        pipe: &'p mut Pipeline,
        script: usize,
        keys: &[&String],
        args: &[&[u8]],
    ) -> &'p mut Pipeline {
        let cmd = pipe
            .cmd("EVALSHA")
            .arg(self.scripts[script].get_hash())
            .arg(keys.len());
        for key in keys {
            cmd.arg(key.as_str());
        }
        for arg in args {
            cmd.arg(*arg);
        }
        cmd
    }

    pub(super) async fn fetch(
        &self,
        person: &str,
        after: Option<&Cursor>,
        n: usize,
        cutoff: i64,
    ) -> Result<Fetched, IndexError> {
        let upper = match after {
            Some(cursor) => [b"(".as_slice(), cursor.as_bytes()].concat(),
            None => b"+".to_vec(),
        };
        let lower = [b"[".as_slice(), &time_bytes(cutoff.saturating_add(1))].concat();
        let (n_text, cutoff_text) = (n.to_string(), cutoff.to_string());
        let keys = self.keys(person);
        let mut pipe = redis::pipe();
        self.evalsha(
            &mut pipe,
            PAGE_SCRIPT,
            &keys.each_ref(),
            &[&upper, &lower, n_text.as_bytes(), cutoff_text.as_bytes()],
        );
        let ((singles, groups, cut),): (PageReply,) = self.run(&pipe).await?;
        let singles = singles
            .iter()
            .map(|member| {
                let (key, access) = split_single(member)
                    .ok_or_else(|| IndexError::Corrupt("not an access member".into()))?;
                Ok((key.to_vec(), decode_access(access)?))
            })
            .collect::<Result<_, IndexError>>()?;
        let groups = groups
            .chunks_exact(4)
            .map(|group| {
                let mut entry = decode_access(&group[1])?;
                entry.count = text_number(&group[2])
                    .ok_or_else(|| IndexError::Corrupt("a group's count".into()))?;
                entry.last_at = Some(
                    prost_types::Timestamp::decode(group[3].as_slice())
                        .map_err(|e| IndexError::Corrupt(format!("a group's latest time: {e}")))?,
                );
                Ok((group[0].clone(), entry))
            })
            .collect::<Result<_, IndexError>>()?;
        Ok(Fetched {
            singles,
            groups,
            cut_ms: text_number(&cut).unwrap_or(0),
        })
    }

    pub(super) async fn add(
        &self,
        writes: &[IndexWrite],
        cutoff: i64,
        retention: Duration,
    ) -> Result<(), IndexError> {
        let mut pipe = redis::pipe();
        let log_bound = self.bounds.accesses.to_string();
        let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
        let mut refusals: BTreeMap<(&str, GroupId), Vec<&PersonAccess>> = BTreeMap::new();
        for write in writes {
            let (person, access) = match write {
                IndexWrite::Single {
                    person,
                    key,
                    access,
                } => {
                    let member = [key.as_slice(), &access.encode_to_vec()].concat();
                    let keys = self.keys(person);
                    self.evalsha(
                        &mut pipe,
                        ADD_SINGLE_SCRIPT,
                        &[&keys[0], &keys[5]],
                        &[&member, key, log_bound.as_bytes()],
                    )
                    .ignore();
                    (person, access)
                }
                IndexWrite::Refusal {
                    person,
                    group,
                    refusal,
                } => {
                    refusals
                        .entry((person.as_str(), *group))
                        .or_default()
                        .push(refusal);
                    (person, refusal)
                }
            };
            let at = access.at.as_ref().map_or(0, timestamp_ms);
            let seen = newest.entry(person.as_str()).or_insert(at);
            *seen = (*seen).max(at);
        }
        for ((person, group), refusals) in &refusals {
            self.absorb(&mut pipe, person, group, refusals);
        }
        self.tidy(&mut pipe, &newest, cutoff, retention);
        self.run::<()>(&pipe).await?;
        // The indexer commits its offsets after this: on a cluster, only once a replica
        // has the batch too.
        Ok(self.conn.settle().await?)
    }

    /// Adds the counting of `refusals` (one group's, in trail order) to `pipe`.
    fn absorb(
        &self,
        pipe: &mut Pipeline,
        person: &str,
        group: &GroupId,
        refusals: &[&PersonAccess],
    ) {
        let marks = MAX_CHAIN_MARKS.to_string();
        let mut args: Vec<Vec<u8>> = vec![group.as_bytes().to_vec(), marks.into_bytes()];
        for refusal in refusals {
            let at_ms = refusal.at.as_ref().map_or(0, timestamp_ms);
            let at = refusal.at.unwrap_or_default();
            args.extend([
                // Hex keeps a chain id clear of the script's separators.
                format!("h{}", hex::encode(&refusal.chain_id)).into_bytes(),
                refusal.sequence.to_string().into_bytes(),
                at_ms.to_string().into_bytes(),
                group_key(at_ms, group),
                refusal.encode_to_vec(),
                at.encode_to_vec(),
            ]);
        }
        let keys = self.keys(person);
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        self.evalsha(pipe, ABSORB_SCRIPT, &[&keys[3], &keys[1], &keys[2]], &args)
            .ignore();
    }

    /// Adds to `pipe` the trimming of each person of `newest` (person → their newest
    /// access in the batch, ms) to the retention and the bounds, and their keys' expiry.
    fn tidy(
        &self,
        pipe: &mut Pipeline,
        newest: &BTreeMap<&str, i64>,
        cutoff: i64,
        retention: Duration,
    ) {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff_text = cutoff.to_string();
        let first_kept = time_bytes(cutoff.saturating_add(1));
        let accesses = self.bounds.accesses.to_string();
        let groups = self.bounds.refusal_groups.to_string();
        for (person, at) in newest {
            // The keys' newest entry may be older than this batch's: the expiry only
            // moves later than the batch's newest entry plus the retention, never earlier
            // than now plus the retention, so nothing within retention expires early.
            let expire_at = (*at).max(now_ms()).saturating_add(retention_ms);
            let expire = if expire_at < i64::MAX / 2 {
                expire_at.to_string()
            } else {
                "0".to_owned()
            };
            let keys = self.keys(person);
            self.evalsha(
                pipe,
                TIDY_SCRIPT,
                &keys.each_ref(),
                &[
                    cutoff_text.as_bytes(),
                    &first_kept,
                    accesses.as_bytes(),
                    groups.as_bytes(),
                    expire.as_bytes(),
                ],
            )
            .ignore();
        }
    }
}

impl RedisIndex {
    /// The last id of `person`'s arrival log ([`ArrivalId::START`] for an empty one).
    pub(super) async fn last_arrival(&self, person: &str) -> Result<ArrivalId, IndexError> {
        let keys = self.keys(person);
        let mut pipe = redis::pipe();
        self.evalsha(
            &mut pipe,
            ARRIVALS_SCRIPT,
            &[&keys[0], &keys[5]],
            &[b"-".as_slice(), b"1".as_slice()],
        );
        let ((last,),): ((String,),) = self.run(&pipe).await?;
        ArrivalId::parse(&last)
            .ok_or_else(|| IndexError::Corrupt(format!("not an arrival id: {last:?}")))
    }

    /// Up to `n` entries of `person`'s arrival log after `after`, oldest first.
    pub(super) async fn arrivals(
        &self,
        person: &str,
        after: ArrivalId,
        n: usize,
    ) -> Result<Vec<Logged>, IndexError> {
        let keys = self.keys(person);
        let (after, n) = (after.to_string(), n.to_string());
        let mut pipe = redis::pipe();
        self.evalsha(
            &mut pipe,
            ARRIVALS_SCRIPT,
            &[&keys[0], &keys[5]],
            &[after.as_bytes(), n.as_bytes()],
        );
        let (reply,): (Vec<Vec<u8>>,) = self.run(&pipe).await?;
        reply
            .chunks_exact(2)
            .map(|pair| {
                let id = std::str::from_utf8(&pair[0])
                    .ok()
                    .and_then(ArrivalId::parse)
                    .ok_or_else(|| IndexError::Corrupt("not an arrival id".into()))?;
                if pair[1].is_empty() {
                    return Ok((id, None));
                }
                let (key, access) = split_single(&pair[1])
                    .ok_or_else(|| IndexError::Corrupt("not an access member".into()))?;
                Ok((id, Some((key.to_vec(), decode_access(access)?))))
            })
            .collect()
    }
}

/// Moves chains' verified heads forward, never back (indexer replicas overlapping on a
/// rebalanced partition may write an older head after a newer one). KEYS[1]: the heads
/// hash; ARGV: pairs of chain id and head as text, `<sequence>:<hash in hex>`.
const SAVE_HEADS: &str = r"
for i = 1, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  local new = tonumber(string.match(ARGV[i + 1], '^(%d+):'))
  if not current or tonumber(string.match(current, '^(%d+):')) < new then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
";

impl RedisIndex {
    /// The hash of every chain's verified head, next to the index (a store's flush
    /// deletes it with the index, and the indexer replays the trail).
    fn heads_key(&self) -> String {
        format!("{}ach", self.prefix)
    }

    /// The verified heads of `chains` that were saved.
    pub(super) async fn heads(
        &self,
        chains: &[&str],
    ) -> Result<Vec<Option<ChainHead>>, IndexError> {
        if chains.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let saved: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.heads_key())
            .arg(chains)
            .query_async(&mut conn)
            .await?;
        saved
            .into_iter()
            .map(|head| head.map(|h| parse_head(&h)).transpose())
            .collect()
    }

    /// Saves `heads`, each only if it is past the one saved.
    pub(super) async fn save_heads(&self, heads: &[(String, ChainHead)]) -> Result<(), IndexError> {
        if heads.is_empty() {
            return Ok(());
        }
        let script = Script::new(SAVE_HEADS);
        let mut invocation = script.key(self.heads_key());
        for (chain, (sequence, hash)) in heads {
            invocation
                .arg(chain.as_str())
                .arg(format!("{sequence}:{}", hex::encode(hash)));
        }
        let mut conn = self.conn.clone();
        invocation.invoke_async::<i64>(&mut conn).await?;
        Ok(())
    }
}

/// A head as [`SAVE_HEADS`] holds it.
fn parse_head(text: &str) -> Result<ChainHead, IndexError> {
    let corrupt = || IndexError::Corrupt(format!("not a chain head: {text:?}"));
    let (sequence, hash) = text.split_once(':').ok_or_else(corrupt)?;
    let hash = hex::decode(hash).map_err(|_| corrupt())?;
    Ok((
        sequence.parse().map_err(|_| corrupt())?,
        hash.try_into().map_err(|_| corrupt())?,
    ))
}

/// A number Redis holds as text.
fn text_number<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
