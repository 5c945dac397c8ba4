//! Joining the store's generation, and starting a new one (a rebuild) when the store has
//! none, a foreign one, or one written in another key layout.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

use super::{Materializer, MaterializerError};
use crate::kafka::consume::{FIRST_BACKOFF, next_backoff, pause};
use crate::proto::Position;
use crate::resolver::store::{Store, StoreError, StoreState};

/// How long one metadata or watermark request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

impl Materializer {
    /// The generation to materialize into, once it is past clearing: the store's own if
    /// it has one of this deployment and key layout, else a new one (cleared, with targets
    /// set). `None` on shutdown.
    pub(super) async fn enter_generation(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<String>, MaterializerError> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.step_towards_generation().await {
                Ok(Some(generation)) => return Ok(Some(generation)),
                Ok(None) => backoff = FIRST_BACKOFF,
                Err(MaterializerError::Store(e)) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reach the store");
                    backoff = next_backoff(backoff);
                }
                Err(MaterializerError::Kafka(e)) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot read the topics' offsets");
                    backoff = next_backoff(backoff);
                }
                Err(e) => return Err(e),
            }
            if shutdown.is_cancelled()
                || (backoff > FIRST_BACKOFF && !pause(backoff, shutdown).await)
            {
                return Ok(None);
            }
        }
    }

    /// One step: returns the generation when it can be joined, else moves the store one
    /// state further (start a generation, clear it, set its targets).
    async fn step_towards_generation(&self) -> Result<Option<String>, MaterializerError> {
        let meta = self.store.meta().await?;
        match meta {
            Some(meta) if meta.source == self.config.source && meta.has_current_layout() => {
                if meta.state != StoreState::Clearing {
                    return Ok(Some(meta.generation));
                }
                // The targets are read while the store is cleared: any offsets read before
                // the rebuild starts are a floor for it, whatever the order.
                let (deleted, targets) =
                    tokio::join!(self.store.clear(&meta.generation), self.end_offsets());
                let (deleted, targets) = (deleted?, targets?);
                if self.store.start_rebuild(&meta.generation, &targets).await? {
                    let events: i64 = targets.iter().map(|t| t.offset + 1).sum();
                    tracing::info!(
                        generation = meta.generation,
                        deleted_keys = deleted,
                        partitions = targets.len(),
                        events,
                        "store cleared; rebuilding from the topics"
                    );
                }
                Ok(None)
            }
            other => {
                let seen = other.as_ref().map(|m| m.generation.clone());
                let reason = match &other {
                    None => "the store has no generation marker (new, flushed or evicted)",
                    Some(meta) if meta.source != self.config.source => {
                        "the store was written by another deployment"
                    }
                    Some(_) => "the store was written in another key layout",
                };
                let generation = new_generation();
                if self
                    .store
                    .replace_generation(seen.as_deref(), &generation, &self.config.source)
                    .await?
                {
                    // An in-memory store (dev, demo) starts empty every time: that is no news.
                    if matches!(self.store, Store::Memory(_)) {
                        tracing::info!(generation, reason, "building the in-memory record store");
                    } else {
                        tracing::warn!(
                            generation,
                            reason,
                            "starting a rebuild of the record store"
                        );
                    }
                }
                Ok(None)
            }
        }
    }

    /// The last offset of every non-empty record partition: what a rebuild must reach.
    /// Each topic is asked on a thread of its own, so the requests (a metadata request,
    /// then two offset requests per partition) overlap instead of queueing one behind
    /// the other.
    async fn end_offsets(&self) -> Result<Vec<Position>, MaterializerError> {
        let consumer: BaseConsumer =
            crate::kafka::client_config(&self.config.brokers, "govlink-materializer").create()?;
        let topics = self.topics.all_records();
        tokio::task::spawn_blocking(move || {
            std::thread::scope(|scope| {
                let asked: Vec<_> = topics
                    .iter()
                    .map(|topic| scope.spawn(|| topic_ends(&consumer, topic)))
                    .collect();
                let mut ends = Vec::new();
                for topic in asked {
                    let read = topic
                        .join()
                        .map_err(|_| StoreError::Corrupt("an offset reader panicked".into()))?;
                    ends.extend(read?);
                }
                Ok(ends)
            })
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("offset reader panicked: {e}")))?
    }
}

/// The last offset of every non-empty partition of `topic`.
fn topic_ends(
    consumer: &BaseConsumer,
    topic: &str,
) -> Result<Vec<Position>, rdkafka::error::KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    let mut ends = Vec::new();
    for partition in 0..partitions {
        let partition = i32::try_from(partition).unwrap_or(i32::MAX);
        let (low, high) = consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT)?;
        if high > low {
            ends.push(Position {
                topic: topic.to_owned(),
                partition,
                offset: high - 1,
            });
        }
    }
    Ok(ends)
}

/// A fresh generation id: time-ordered, unique across replicas.
pub fn new_generation() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
