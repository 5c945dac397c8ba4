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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;

use super::chain::hash_matches;
use super::index::AccessIndex;
use crate::kafka::Topics;
use crate::proto::{AuditBody, AuditEntry};
use crate::resolver::store::{Store, StoreState};

/// How often the store's generation is checked.
const GENERATION_CHECK: Duration = Duration::from_secs(1);
/// The most audit entries per Redis round trip.
const BATCH: usize = 500;
/// How long a batch waits to fill once its first entry arrived.
const LINGER: Duration = Duration::from_millis(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A consumer of the audit topic that maintains the access index.
pub struct AccessIndexer {
    brokers: crate::kafka::Brokers,
    group_prefix: String,
    topic: String,
    index: AccessIndex,
    store: Store,
    retention: Duration,
    /// Messages that could not be indexed (undecodable, or not matching their hash).
    skipped: u64,
}

/// How consuming one generation ended.
enum Ended {
    Shutdown,
    GenerationChanged,
}

impl AccessIndexer {
    /// An indexer of `topics`' audit trail into `index`, following `store`'s generation,
    /// keeping accesses for `retention`.
    pub fn new(
        brokers: &crate::kafka::Brokers,
        group_prefix: &str,
        topics: &Topics,
        index: AccessIndex,
        store: Store,
        retention: Duration,
    ) -> AccessIndexer {
        AccessIndexer {
            brokers: brokers.clone(),
            group_prefix: group_prefix.to_owned(),
            topic: topics.audit(),
            index,
            store,
            retention,
            skipped: 0,
        }
    }

    /// Indexes until `shutdown`, then commits what was indexed.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), String> {
        while let Some(generation) = self.wait_for_generation(&shutdown).await {
            let group = format!("{}.access.{generation}", self.group_prefix);
            let consumer = self
                .consumer(&group)
                .map_err(|e| format!("access indexer: {e}"))?;
            tracing::info!(group, "access indexer started");
            match self.consume(&consumer, &generation, &shutdown).await {
                Ended::Shutdown => {
                    commit_final(Arc::new(consumer)).await;
                    break;
                }
                Ended::GenerationChanged => {
                    tracing::info!(
                        group,
                        "the store's generation changed; indexing the audit trail again"
                    );
                }
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

    fn consumer(&self, group: &str) -> Result<StreamConsumer, KafkaError> {
        let consumer: StreamConsumer =
            crate::kafka::at_least_once_consumer(&self.brokers, "govlink-access-indexer", group)
                .create()?;
        consumer.subscribe(&[&self.topic])?;
        Ok(consumer)
    }

    async fn consume(
        &mut self,
        consumer: &StreamConsumer,
        generation: &str,
        shutdown: &CancellationToken,
    ) -> Ended {
        let mut last_check = Instant::now();
        loop {
            if last_check.elapsed() >= GENERATION_CHECK {
                last_check = Instant::now();
                match self.store.meta().await {
                    Ok(Some(meta)) if meta.generation == generation => {}
                    Ok(_) => return Ended::GenerationChanged,
                    Err(e) => tracing::debug!(error = %e, "generation check failed"),
                }
            }
            let first = tokio::select! {
                () = shutdown.cancelled() => return Ended::Shutdown,
                received = consumer.recv() => received,
                () = sleep(GENERATION_CHECK) => continue,
            };
            let first = match first {
                Ok(message) => message.detach(),
                Err(e) => {
                    tracing::warn!(error = %e, "consume error");
                    sleep(FIRST_BACKOFF).await;
                    continue;
                }
            };
            let batch = fill_batch(consumer, first).await;
            if !self.index_batch(&batch, shutdown).await {
                return Ended::Shutdown;
            }
            store_offsets(consumer, &batch);
        }
    }

    /// Indexes one batch, retrying while Redis is unreachable. False on shutdown.
    async fn index_batch(&mut self, batch: &[OwnedMessage], shutdown: &CancellationToken) -> bool {
        let mut entries = Vec::with_capacity(batch.len());
        for message in batch {
            match decode(message) {
                Ok(decoded) => entries.push(decoded),
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
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.index.index_entries(&entries, self.retention).await {
                Ok(()) => return true,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "access index write failed");
                }
                Err(e) => {
                    // Redis refuses it for good (say, a key of another type): one batch
                    // goes unindexed rather than the index stopping for every person.
                    self.skipped += batch.len() as u64;
                    tracing::error!(error = %e, skipped_total = self.skipped, "access index refused a batch; skipped");
                    return true;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
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

/// Gathers more messages after `first` until the batch is full or lingered enough.
async fn fill_batch(consumer: &StreamConsumer, first: OwnedMessage) -> Vec<OwnedMessage> {
    let mut batch = vec![first];
    let until = Instant::now() + LINGER;
    while batch.len() < BATCH {
        match timeout_at(until, consumer.recv()).await {
            Ok(Ok(m)) => batch.push(m.detach()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "consume error");
                break;
            }
            Err(_) => break,
        }
    }
    batch
}

/// Stores the offsets after `batch` for the next commit.
fn store_offsets(consumer: &StreamConsumer, batch: &[OwnedMessage]) {
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let offset = last.entry((m.topic(), m.partition())).or_insert(m.offset());
        *offset = (*offset).max(m.offset());
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in last {
        if let Err(e) = offsets.add_partition_offset(topic, partition, Offset::Offset(offset + 1)) {
            tracing::error!(error = %e, "cannot build offset list");
        }
    }
    // Fails for partitions revoked meanwhile; their new owner replays from the last
    // commit, which writes the same members again.
    if let Err(e) = consumer.store_offsets(&offsets) {
        tracing::info!(error = %e, "offsets not stored (partitions revoked?)");
    }
}

/// Commits the stored offsets before the consumer leaves its group.
async fn commit_final(consumer: Arc<StreamConsumer>) {
    // A synchronous commit blocks on the broker: keep it off the async workers.
    let committed =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await;
    match committed {
        Ok(Ok(())) | Ok(Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed"),
        Err(e) => tracing::warn!(error = %e, "final offset commit panicked"),
    }
}
