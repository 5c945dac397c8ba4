//! The materializer: a consumer group member that reads the record topics in batches,
//! writes each batch to the store (highest version wins), records the materialized
//! positions, and only then stores the offsets for commit. Events it cannot use go to the
//! dead-letter topic with the reason in headers; consumption never stops on one message.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;

use super::store::{Change, RecordWrite, Store};
use crate::kafka::{Publisher, Topics};
use crate::proto::{Position, RecordEvent};
use crate::records::{RecordKey, RecordType, subjects_of, validate_event};

/// The first wait before retrying a failed store or dead-letter write; doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one dead-letter publish may wait for the broker before it is retried.
const DLQ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the materializer consumes.
#[derive(Debug, Clone)]
pub struct MaterializerConfig {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Consumer group; resolver replicas share it and split the partitions.
    pub group_id: String,
    /// The most events per store round trip.
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first event arrived.
    pub linger: Duration,
}

/// A running member of the materializer group.
pub struct Materializer {
    consumer: Arc<StreamConsumer>,
    store: Store,
    topics: Topics,
    dlq: Publisher,
    config: MaterializerConfig,
}

/// Why the materializer could not start.
#[derive(Debug, thiserror::Error)]
#[error("materializer: {0}")]
pub struct MaterializerError(#[from] KafkaError);

impl Materializer {
    /// Joins the group and subscribes to every record topic.
    pub fn new(
        config: MaterializerConfig,
        store: Store,
        topics: Topics,
        dlq: Publisher,
    ) -> Result<Materializer, MaterializerError> {
        let consumer: StreamConsumer =
            crate::kafka::client_config(&config.bootstrap, "govlink-materializer")
                .set("group.id", &config.group_id)
                .set("auto.offset.reset", "earliest")
                // librdkafka commits only offsets we stored, and we store an offset only
                // after the store acknowledged the event: at-least-once, never lost.
                .set("enable.auto.commit", "true")
                .set("enable.auto.offset.store", "false")
                .set("auto.commit.interval.ms", "1000")
                .set("enable.partition.eof", "false")
                .create()?;
        let names = topics.all_records();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        Ok(Materializer {
            consumer: Arc::new(consumer),
            store,
            topics,
            dlq,
            config,
        })
    }

    /// Consumes until `shutdown` is cancelled, then commits what was materialized.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(group = self.config.group_id, "materializer started");
        while let Some(batch) = self.next_batch(&shutdown).await {
            if !self.process(batch, &shutdown).await {
                break;
            }
        }
        let consumer = Arc::clone(&self.consumer);
        // A synchronous commit blocks on the broker: keep it off the async workers.
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
                .await;
        match committed {
            // Nothing stored since the last commit: nothing to do.
            Ok(Ok(())) | Ok(Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed"),
            Err(e) => tracing::warn!(error = %e, "final offset commit panicked"),
        }
        tracing::info!("materializer stopped");
    }

    /// Waits for one event, then gathers more until the batch is full or lingered enough.
    async fn next_batch(&self, shutdown: &CancellationToken) -> Option<Vec<OwnedMessage>> {
        let first = loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                received = self.consumer.recv() => match received {
                    Ok(m) => break m.detach(),
                    Err(e) => {
                        tracing::warn!(error = %e, "consume error");
                        sleep(FIRST_BACKOFF).await;
                    }
                },
            }
        };
        let mut batch = vec![first];
        let linger_until = Instant::now() + self.config.linger;
        while batch.len() < self.config.batch_size {
            match timeout_at(linger_until, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "consume error");
                    break;
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Materializes one batch and stores its offsets. Returns false if shutdown
    /// interrupted it (nothing of the batch is committed then; it will be read again).
    async fn process(&self, batch: Vec<OwnedMessage>, shutdown: &CancellationToken) -> bool {
        let mut writes = Vec::with_capacity(batch.len());
        let mut rejected = 0usize;
        for message in &batch {
            match self.decode(message) {
                Ok(write) => writes.push(write),
                Err(reason) => {
                    rejected += 1;
                    if !self.dead_letter(message, &reason, shutdown).await {
                        return false;
                    }
                }
            }
        }
        let Some(outcome) = retry("store write", shutdown, || self.store.apply(&writes)).await
        else {
            return false;
        };

        // The last offset of each partition in the batch.
        let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in &batch {
            let offset = last.entry((m.topic(), m.partition())).or_insert(m.offset());
            *offset = (*offset).max(m.offset());
        }
        let positions: Vec<Position> = last
            .iter()
            .map(|(&(topic, partition), &offset)| Position {
                topic: topic.to_owned(),
                partition,
                offset,
            })
            .collect();
        let recorded = retry("recording positions", shutdown, || {
            self.store.advance_positions(&positions)
        });
        if recorded.await.is_none() {
            return false;
        }

        let mut offsets = TopicPartitionList::new();
        for (&(topic, partition), &offset) in &last {
            if let Err(e) =
                offsets.add_partition_offset(topic, partition, Offset::Offset(offset + 1))
            {
                tracing::error!(error = %e, "cannot build offset list");
            }
        }
        // Fails for partitions revoked meanwhile; their new owner re-reads from the last
        // commit, and the store ignores what it already has.
        if let Err(e) = self.consumer.store_offsets(&offsets) {
            tracing::info!(error = %e, "offsets not stored (partitions revoked?)");
        }
        tracing::debug!(
            events = batch.len(),
            applied = outcome.applied,
            stale = outcome.stale,
            rejected,
            "batch materialized"
        );
        true
    }

    /// Turns a message into a store write (borrowing its payload), or says why it cannot
    /// be one.
    fn decode<'m>(&self, message: &'m OwnedMessage) -> Result<RecordWrite<'m>, String> {
        let agency = self
            .topics
            .agency_of(message.topic())
            .ok_or("not a record topic")?;
        let payload = message.payload().ok_or("empty message")?;
        let event = RecordEvent::decode(payload).map_err(|e| format!("not a RecordEvent: {e}"))?;
        let record_type: RecordType =
            validate_event(&event, agency).map_err(|v| format!("invalid event: {v}"))?;
        let key = RecordKey::new(record_type, &event.record_id);
        if message.key() != Some(key.as_str().as_bytes()) {
            return Err("message key is not the record key".into());
        }
        // validate_event guarantees a payload for an upsert and none for a deletion.
        let change = match &event.payload {
            Some(p) => Change::Upsert {
                subjects: subjects_of(p),
                event: payload,
            },
            None => Change::Delete,
        };
        Ok(RecordWrite {
            key,
            version: event.version,
            change,
        })
    }

    /// Publishes a message to the dead-letter topic, retrying until the broker has it.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        tracing::warn!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            reason,
            "event sent to the dead-letter topic"
        );
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = [
            ("govlink-dlq-reason", reason.as_bytes()),
            ("govlink-dlq-topic", message.topic().as_bytes()),
            ("govlink-dlq-partition", partition.as_bytes()),
            ("govlink-dlq-offset", offset.as_bytes()),
        ];
        let topic = self.topics.dlq();
        let published = retry("dead-letter publish", shutdown, || {
            self.dlq.publish(
                &topic,
                message.key().unwrap_or_default(),
                message.payload().unwrap_or_default(),
                &headers,
                Instant::now() + DLQ_TIMEOUT,
            )
        });
        published.await.is_some()
    }
}

/// Runs `attempt` until it succeeds, backing off between failures; `None` if shutdown
/// came first.
async fn retry<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "{what} failed");
                if !pause(backoff, shutdown).await {
                    return None;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sleeps for `backoff` unless shutdown comes first; false on shutdown.
async fn pause(backoff: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = sleep(backoff) => true,
    }
}
