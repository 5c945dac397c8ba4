//! The access indexer: a consumer of the audit topic that keeps the [`AccessIndex`] in
//! step with the record store.
//!
//! The index lives next to the records, and a flush or rebuild of the store
//! (`Store::clear`) deletes it too. So the indexer follows the store's generation, as the
//! materializer does: its consumer group is `<group_prefix>.access.<generation>`, reading
//! from the earliest offset, and when the generation changes it starts over under the new
//! group, replaying the whole trail into the cleared store. It waits while the store has
//! no marker or is being cleared (what it wrote then would be deleted); once the clearing
//! is over it indexes alongside the records' rebuild. Offsets are stored for commit only
//! after Redis acknowledged the batch; a replay writes the same members again.
//!
//! Only entries of chains whose start verified, linking to their chain's verified head,
//! are indexed ([`admit`]); the others are counted by reason and logged once per chain.
//! Per batch: the heads of its chains are read, its entries admitted in order, the
//! accesses written, then the moved heads saved, then the offsets stored.

mod admit;

pub use admit::ChainTrust;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use prost::Message as _;
use rdkafka::message::{Message, OwnedMessage};
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::index::{AccessIndex, ChainHead, IndexError};
use crate::audit::hash_matches;
use crate::kafka::Topics;
use crate::kafka::consume::{
    self, BatchConsumer, BatchHandler, BatchSize, Ended, GENERATION_CHECK,
};
use crate::proto::{AuditBody, AuditEntry};
use crate::resolver::store::{Store, StoreError, StoreState};
use crate::telemetry::events::AuditUnindexed;
use crate::telemetry::metrics::Telemetry;
use admit::{Heads, Verdict};

/// How large a batch grows: the most audit entries per Redis round trip, and how long a
/// batch waits to fill once its first entry arrived.
const BATCH: BatchSize = BatchSize {
    max: 500,
    linger: Duration::from_millis(5),
};
/// The most chains remembered as logged; beyond, the memory starts over (a chain may then
/// be logged once more).
const MAX_LOGGED: usize = 10_000;

/// A consumer of the audit topic that maintains the access index.
pub struct AccessIndexer {
    brokers: crate::kafka::Brokers,
    group_prefix: String,
    topic: String,
    index: AccessIndex,
    store: Store,
    retention: Duration,
    /// Which chains' entries are indexed.
    trust: ChainTrust,
    /// Messages that could not be indexed (undecodable, or not matching their hash).
    skipped: u64,
    /// Chains whose left-out entries were logged already.
    logged: HashSet<String>,
    /// Where left-out entries are counted.
    telemetry: Telemetry,
}

/// An audit message decoded: the entry and its body.
type Decoded = (AuditEntry, AuditBody);

/// How an [`AccessIndexer`] reads the trail and what it keeps.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// The brokers and how to reach them.
    pub brokers: crate::kafka::Brokers,
    /// Consumer group prefix; each generation's group is
    /// `<group_prefix>.access.<generation>`.
    pub group_prefix: String,
    /// How long accesses are kept.
    pub retention: Duration,
    /// The chains whose entries are indexed.
    pub trust: ChainTrust,
}

impl AccessIndexer {
    /// An indexer of `topics`' audit trail into `index`, following `store`'s generation,
    /// counting left-out entries in `telemetry`.
    pub fn new(
        config: IndexerConfig,
        topics: &Topics,
        index: AccessIndex,
        store: Store,
        telemetry: Telemetry,
    ) -> AccessIndexer {
        let IndexerConfig {
            brokers,
            group_prefix,
            retention,
            trust,
        } = config;
        AccessIndexer {
            brokers,
            group_prefix,
            topic: topics.audit(),
            index,
            store,
            retention,
            trust,
            skipped: 0,
            logged: HashSet::new(),
            telemetry,
        }
    }

    /// Indexes until `shutdown`, then commits what was indexed.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), String> {
        while let Some(generation) = self.wait_for_generation(&shutdown).await {
            let group =
                crate::kafka::Groups::new(self.group_prefix.as_str()).access_indexer(&generation);
            let topics = [self.topic.as_str()];
            let consumer = BatchConsumer::join(
                &self.brokers,
                "govlink-access-indexer",
                &group,
                &topics,
                BATCH,
            )
            .map_err(|e| format!("access indexer: {e}"))?;
            tracing::info!(group, "access indexer started");
            let mut indexing = Indexing {
                indexer: &mut self,
                generation: &generation,
                group: &group,
            };
            let Ok(ended) = consumer.run(&mut indexing, &shutdown).await;
            if ended == Ended::Shutdown {
                break;
            }
        }
        tracing::info!("access indexer stopped");
        Ok(())
    }

    /// The store's generation once it is past clearing; `None` on shutdown.
    async fn wait_for_generation(&self, shutdown: &CancellationToken) -> Option<String> {
        loop {
            match self.store.meta().await {
                Ok(Some(meta)) if meta.state != StoreState::Clearing => {
                    return Some(meta.generation);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "cannot read the store's generation"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = sleep(GENERATION_CHECK) => {}
            }
        }
    }

    /// Indexes one batch, retrying while Redis is unreachable. False on shutdown.
    async fn index_batch(&mut self, batch: &[OwnedMessage], shutdown: &CancellationToken) -> bool {
        let mut decoded = Vec::with_capacity(batch.len());
        for message in batch {
            match decode(message) {
                Ok(entry) => decoded.push(entry),
                Err(reason) => {
                    self.skipped += 1;
                    tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        reason,
                        skipped_total = self.skipped,
                        "audit message not indexed"
                    );
                }
            }
        }
        let index = self.index.clone();
        let mut chains: Vec<&str> = decoded.iter().map(|(e, _)| e.chain_id.as_str()).collect();
        chains.sort_unstable();
        chains.dedup();
        let Some(saved) = retrying(shutdown, || index.chain_heads(&chains)).await else {
            return false;
        };
        let saved = saved.unwrap_or_else(|e| {
            // Without its head no entry of these chains links: they wait for a replay.
            tracing::error!(error = %e, "chain heads unreadable; the batch's entries are left out");
            vec![None; chains.len()]
        });
        let saved: HashMap<String, _> = chains.iter().map(|c| (*c).to_owned()).zip(saved).collect();
        let (entries, heads) = self.admit(decoded, Heads::new(saved));
        let retention = self.retention;
        match retrying(shutdown, || index.index_entries(&entries, retention)).await {
            None => return false,
            Some(Ok(())) => {}
            // Redis refuses it for good (say, a key of another type): one batch goes
            // unindexed rather than the index stopping for every person.
            Some(Err(e)) => {
                self.skipped += batch.len() as u64;
                tracing::error!(error = %e, skipped_total = self.skipped, "access index refused a batch; skipped");
            }
        }
        match retrying(shutdown, || index.save_chain_heads(&heads)).await {
            None => false,
            Some(Ok(())) => true,
            Some(Err(e)) => {
                // The heads stay where they were: the next entries of these chains do not
                // link until a replay moves them; logged, as each such chain is.
                tracing::error!(error = %e, "chain heads not saved");
                true
            }
        }
    }

    /// The entries of a batch the index takes, in order, and the chain heads they moved;
    /// the others counted and logged once per chain.
    fn admit(
        &mut self,
        decoded: Vec<Decoded>,
        mut heads: Heads,
    ) -> (Vec<Decoded>, Vec<(String, ChainHead)>) {
        let mut admitted = Vec::with_capacity(decoded.len());
        let mut left: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (entry, body) in decoded {
            match heads.admit(&entry, &body, &self.trust) {
                Verdict::Index => admitted.push((entry, body)),
                Verdict::Replayed => {}
                Verdict::Left { reason, why } => {
                    *left.entry(reason).or_default() += 1;
                    if self.logged.len() >= MAX_LOGGED {
                        self.logged.clear();
                    }
                    if self.logged.insert(entry.chain_id.clone()) {
                        tracing::warn!(
                            chain = %entry.chain_id,
                            sequence = entry.sequence,
                            reason,
                            why,
                            "audit chain's entries not indexed"
                        );
                    }
                }
            }
        }
        for (reason, entries) in left {
            self.telemetry.emit(AuditUnindexed { reason, entries });
        }
        (admitted, heads.moved())
    }
}

/// A generation being indexed: what the consume loop hands its batches to.
struct Indexing<'a> {
    indexer: &'a mut AccessIndexer,
    generation: &'a str,
    /// The generation's consumer group.
    group: &'a str,
}

impl BatchHandler for Indexing<'_> {
    type Error = std::convert::Infallible;
    type CheckError = StoreError;

    async fn generation_current(&mut self) -> Result<bool, StoreError> {
        let meta = self.indexer.store.meta().await?;
        Ok(meta.is_some_and(|meta| meta.generation == self.generation))
    }

    async fn handle(
        &mut self,
        batch: &[OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Result<Option<Ended>, Self::Error> {
        let indexed = self.indexer.index_batch(batch, shutdown).await;
        Ok((!indexed).then_some(Ended::Shutdown))
    }

    fn generation_over(&mut self) {
        tracing::info!(
            group = self.group,
            "the store's generation changed; indexing the audit trail again"
        );
    }
}

/// Runs `op` until it succeeds or fails for good, backing off while Redis is unreachable;
/// `None` on shutdown.
async fn retrying<T, F, Fut>(shutdown: &CancellationToken, op: F) -> Option<Result<T, IndexError>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, IndexError>>,
{
    consume::retry(shutdown, op, |e: &IndexError, wait| {
        if !e.is_transient() {
            return false;
        }
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "access index call failed");
        true
    })
    .await
}

/// An audit message as an entry and its body, if it is one that matches its hash.
fn decode(message: &OwnedMessage) -> Result<(AuditEntry, AuditBody), &'static str> {
    let payload = message.payload().ok_or("empty message")?;
    let entry = AuditEntry::decode(payload).map_err(|_| "not an audit entry")?;
    if !hash_matches(&entry) {
        return Err("the entry does not match its hash");
    }
    let body = AuditBody::decode(entry.body.as_slice()).map_err(|_| "not an audit body")?;
    Ok((entry, body))
}
