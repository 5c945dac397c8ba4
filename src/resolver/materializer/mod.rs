//! The materializer: a consumer group member that reads the record topics in batches,
//! writes each batch to the store (highest version wins), records the materialized
//! positions, and only then stores the offsets for commit. Events it cannot use go to the
//! dead-letter topic with the reason in headers; consumption never stops on one message.
//!
//! It materializes into one *generation* of the store at a time (see `store::Meta`): the
//! consumer group is named after the generation, so a new generation (the store was
//! flushed, is foreign, or an operator asked for a rebuild) is read from the beginning of
//! every topic by a group with no committed offsets.

mod dead_letter;
mod generation;
mod timings;

pub use dead_letter::{
    DeadLetterKind, OFFSET_HEADER, PARTITION_HEADER, REASON_HEADER, REPLAY_COUNT_HEADER,
    REPLAY_ORIGINAL_HEADER, TOPIC_HEADER, TRUNCATED_FROM_HEADER,
};
pub use generation::new_generation;
pub use timings::{Timings, TimingsSnapshot};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;

use super::positions::Positions;
use super::store::{Change, RecordWrite, Store, StoreError, StoreState};
use crate::kafka::{Publisher, Topics};
use crate::proto::{Op, Position, RecordEvent};
use crate::records::{RecordKey, RecordType, SubjectKey, stored, subjects_of, validate_event};
use dead_letter::{
    EMPTY_MESSAGE, INVALID_EVENT, NOT_A_RECORD_EVENT, NOT_A_RECORD_TOPIC, STORE_REFUSED, WRONG_KEY,
};
use timings::Stage;

use crate::telemetry::events::{BatchMaterialized, RedisFailed};
use crate::telemetry::metrics::{Metrics, Telemetry};

/// The first wait before retrying a failed store or dead-letter write; doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle materializer checks that its generation is still the store's, so a
/// flush is noticed (and rebuilt) without waiting for the next record.
const GENERATION_CHECK: Duration = Duration::from_secs(1);
/// Applied changes kept for slow subscribers before they are told they lagged.
const CHANGES_BUFFER: usize = 4096;

/// How the materializer consumes.
#[derive(Debug, Clone)]
pub struct MaterializerConfig {
    /// The brokers and how to reach them.
    pub brokers: crate::kafka::Brokers,
    /// Consumer group prefix; each generation's group is `<group_id>.<generation>`.
    /// Resolver replicas share it and split the partitions.
    pub group_id: String,
    /// Which deployment this is (topic prefix and group): a store marked by another one
    /// is foreign.
    pub source: String,
    /// The most events per store round trip.
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first event arrived.
    pub linger: Duration,
}

/// A record version the materializer applied (stale versions are not reported): what
/// other parts (the case engine) subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedChange {
    /// The record's key.
    pub key: RecordKey,
    /// The version now stored (or replayed).
    pub version: u64,
    /// Its subjects (none for a deletion).
    pub subjects: Vec<SubjectKey>,
    /// Upsert or delete.
    pub op: Op,
    /// Where the event was read.
    pub position: Position,
}

/// A member of the materializer group, not yet running.
pub struct Materializer {
    store: Store,
    topics: Topics,
    dlq: Publisher,
    config: MaterializerConfig,
    positions: Positions,
    changes: broadcast::Sender<AppliedChange>,
    /// Whether the store's generation is ready (caught up), as last seen.
    ready: watch::Sender<bool>,
    /// Time spent per stage.
    timings: Arc<Timings>,
    /// Where batches, dead letters and store failures are counted.
    telemetry: Telemetry,
}

/// Why the materializer stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum MaterializerError {
    /// The consumer could not be created or subscribed.
    #[error("materializer: {0}")]
    Kafka(#[from] KafkaError),
    /// The store refused something it will keep refusing.
    #[error("materializer: {0}")]
    Store(#[from] StoreError),
}

/// How consuming one generation ended.
enum Ended {
    /// Shutdown was asked for.
    Shutdown,
    /// The store's generation changed: join the new one.
    GenerationChanged,
}

impl Materializer {
    /// A materializer writing into `store`, reporting its progress to `positions`,
    /// counting in `telemetry`.
    pub fn new(
        config: MaterializerConfig,
        store: Store,
        topics: Topics,
        dlq: Publisher,
        positions: Positions,
        telemetry: Telemetry,
    ) -> Materializer {
        Materializer {
            store,
            topics,
            dlq,
            config,
            positions,
            changes: broadcast::channel(CHANGES_BUFFER).0,
            ready: watch::Sender::new(false),
            timings: Arc::default(),
            telemetry,
        }
    }

    /// Where this materializer's time goes, stage by stage, from now until it stops.
    pub fn timings(&self) -> Arc<Timings> {
        Arc::clone(&self.timings)
    }

    /// Whether the store has caught up with the topics (false while it is lost, cleared
    /// or rebuilt), as this materializer last saw it (at least once a second).
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Every change applied from now on. A subscriber that falls more than a few thousand
    /// changes behind gets `Lagged` and must re-read what it needs from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<AppliedChange> {
        self.changes.subscribe()
    }

    /// Consumes until `shutdown` is cancelled, then commits what was materialized.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), MaterializerError> {
        loop {
            let Some(generation) = self.enter_generation(&shutdown).await? else {
                break;
            };
            let group = format!("{}.{generation}", self.config.group_id);
            tracing::info!(group, "materializer started");
            let consumer = Arc::new(self.consumer(&group)?);
            let ended = self.consume(&consumer, &generation, &shutdown).await?;
            match ended {
                Ended::Shutdown => {
                    commit_final(consumer).await;
                    break;
                }
                Ended::GenerationChanged => {
                    self.ready.send_replace(false);
                    tracing::warn!(group, "the store's generation changed; leaving the group");
                    self.positions.reset();
                }
            }
        }
        tracing::info!("materializer stopped");
        Ok(())
    }

    fn consumer(&self, group: &str) -> Result<StreamConsumer, KafkaError> {
        let consumer: StreamConsumer = crate::kafka::at_least_once_consumer(
            &self.config.brokers,
            "govlink-materializer",
            group,
        )
        .create()?;
        let names = self.topics.all_records();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        Ok(consumer)
    }

    async fn consume(
        &self,
        consumer: &StreamConsumer,
        generation: &str,
        shutdown: &CancellationToken,
    ) -> Result<Ended, MaterializerError> {
        let mut last_check: Option<Instant> = None;
        // Until the first event of the generation, waiting is joining the group (and the
        // first fetch); after it, waiting is for the topics to bring more.
        let mut idle = Stage::Join;
        loop {
            if last_check.is_none_or(|at| at.elapsed() >= GENERATION_CHECK) {
                last_check = Some(Instant::now());
                match self.store.meta().await {
                    Ok(Some(meta)) if meta.generation == generation => {
                        self.ready.send_if_modified(|ready| {
                            let now = meta.state == StoreState::Ready;
                            std::mem::replace(ready, now) != now
                        });
                    }
                    Ok(_) => return Ok(Ended::GenerationChanged),
                    // An unreachable store is noticed by the next write; keep consuming.
                    Err(e) => tracing::debug!(error = %e, "generation check failed"),
                }
            }
            // Only the wait for a first event is cancelled: once a batch is being filled,
            // every event taken from the consumer is processed (a dropped one would be
            // skipped by the next stored offset).
            let waiting = Instant::now();
            let first = tokio::select! {
                () = shutdown.cancelled() => return Ok(Ended::Shutdown),
                received = consumer.recv() => Some(received),
                () = sleep(GENERATION_CHECK) => None,
            };
            self.timings.add(idle, waiting.elapsed());
            if matches!(first, Some(Ok(_))) {
                idle = Stage::Idle;
            }
            match first {
                Some(Ok(message)) => {
                    let filling = Instant::now();
                    let batch = self.fill_batch(consumer, message.detach()).await;
                    self.timings.add(Stage::Fill, filling.elapsed());
                    if let Some(ended) = self.process(consumer, batch, generation, shutdown).await?
                    {
                        return Ok(ended);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consume error");
                    sleep(FIRST_BACKOFF).await;
                }
                None => {}
            }
        }
    }

    /// Gathers more events after `first` until the batch is full or lingered enough.
    async fn fill_batch(
        &self,
        consumer: &StreamConsumer,
        first: OwnedMessage,
    ) -> Vec<OwnedMessage> {
        let mut batch = vec![first];
        let linger_until = Instant::now() + self.config.linger;
        while batch.len() < self.config.batch_size {
            match timeout_at(linger_until, consumer.recv()).await {
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

    /// Materializes one batch, records its positions in `generation` and stores its
    /// offsets. `Some` when it ended the generation or shutdown interrupted it; nothing
    /// of the batch is committed then, so it will be read again.
    async fn process(
        &self,
        consumer: &StreamConsumer,
        batch: Vec<OwnedMessage>,
        generation: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<Ended>, MaterializerError> {
        let mut writes = Vec::with_capacity(batch.len());
        let mut origins = Vec::with_capacity(batch.len());
        let mut rejected = 0usize;
        let decoding = Instant::now();
        for message in &batch {
            match self.decode(message) {
                Ok(write) => {
                    writes.push(write);
                    origins.push(message);
                }
                Err(reason) => {
                    rejected += 1;
                    if !self.dead_letter(message, &reason, shutdown).await {
                        return Ok(Some(Ended::Shutdown));
                    }
                }
            }
        }
        let storing = Instant::now();
        self.timings.add(Stage::Decode, storing - decoding);
        let Some(applied) = self.apply(&writes, &origins, shutdown).await else {
            return Ok(Some(Ended::Shutdown));
        };
        let recording = Instant::now();
        self.timings.add(Stage::Store, recording - storing);

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
        let recorded = retry("recording positions", &self.telemetry, shutdown, || {
            self.store.advance_positions(generation, &positions)
        })
        .await;
        match recorded {
            Ok(Some(())) => {}
            Ok(None) => return Ok(Some(Ended::Shutdown)),
            Err(StoreError::GenerationChanged) => return Ok(Some(Ended::GenerationChanged)),
            Err(e) => return Err(e.into()),
        }
        self.timings.add(Stage::Positions, recording.elapsed());

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
        if let Err(e) = consumer.store_offsets(&offsets) {
            tracing::info!(error = %e, "offsets not stored (partitions revoked?)");
        }
        self.positions.record(generation, &positions);
        self.announce(&writes, &origins, &applied);
        self.timings.batch_done(batch.len());
        let applied = applied.iter().filter(|a| **a).count();
        self.telemetry.emit(BatchMaterialized {
            events: batch.len(),
            applied,
            stale: writes.len() - applied,
            rejected,
        });
        Ok(None)
    }

    /// Writes a batch to the store, retrying while the store is unreachable. If the store
    /// refuses the batch for good, each write is tried alone and the ones it refuses are
    /// dead-lettered, so one poisoned record cannot stop every partition. Returns, per
    /// write, whether it was applied (not stale, not refused); `None` on shutdown.
    async fn apply(
        &self,
        writes: &[RecordWrite<'_>],
        origins: &[&OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Option<Vec<bool>> {
        // Both steps in one attempt: after a failure in step two, redoing step one is a
        // replay the store recognises.
        let whole = retry("store write", &self.telemetry, shutdown, || async {
            let written = self.store.write_entries(writes).await?;
            self.store.write_subject_copies(writes, &written).await?;
            Ok(written)
        });
        match whole.await {
            Ok(written) => return written.map(|w| w.applied_flags()),
            Err(e) => tracing::error!(error = %e, "store refused a batch; writing one by one"),
        }
        let mut flags = Vec::with_capacity(writes.len());
        for (write, origin) in writes.iter().zip(origins) {
            let one = std::slice::from_ref(write);
            match retry("store write", &self.telemetry, shutdown, || {
                self.store.apply(one)
            })
            .await
            {
                Ok(outcome) => flags.push(outcome?.applied == 1),
                Err(e) => {
                    let reason = format!("{STORE_REFUSED}: {e}");
                    if !self.dead_letter(origin, &reason, shutdown).await {
                        return None;
                    }
                    flags.push(false);
                }
            }
        }
        Some(flags)
    }

    /// Reports the applied writes to subscribers; builds nothing when there are none.
    fn announce(&self, writes: &[RecordWrite<'_>], origins: &[&OwnedMessage], applied: &[bool]) {
        if self.changes.receiver_count() == 0 {
            return;
        }
        let changes = writes.iter().zip(origins).zip(applied);
        for ((w, m), _) in changes.filter(|(_, applied)| **applied) {
            let (subjects, op) = match &w.change {
                Change::Upsert { subjects, .. } => (subjects.clone(), Op::Upsert),
                Change::Delete => (Vec::new(), Op::Delete),
            };
            // A subscriber that went away meanwhile is fine: nobody needs the change.
            let _ = self.changes.send(AppliedChange {
                key: w.key.clone(),
                version: w.version,
                subjects,
                op,
                position: Position {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                },
            });
        }
    }

    /// Turns a message into a store write (its event in stored form), or says why it
    /// cannot be one: the kind of problem (a dead-letter reason kind) and in words.
    fn decode<'m>(&self, message: &'m OwnedMessage) -> Result<RecordWrite<'m>, String> {
        let agency = self
            .topics
            .agency_of(message.topic())
            .ok_or(NOT_A_RECORD_TOPIC)?;
        let payload = message.payload().ok_or(EMPTY_MESSAGE)?;
        let mut event =
            RecordEvent::decode(payload).map_err(|e| format!("{NOT_A_RECORD_EVENT}: {e}"))?;
        // The store keeps the bytes as published (`payload`), not the respelled event.
        let record_type: RecordType =
            validate_event(&mut event, agency).map_err(|v| format!("{INVALID_EVENT}: {v}"))?;
        let key = RecordKey::new(record_type, &event.record_id);
        if message.key() != Some(key.as_str().as_bytes()) {
            return Err(WRONG_KEY.into());
        }
        // validate_event guarantees a payload for an upsert and none for a deletion.
        let change = match &event.payload {
            Some(p) => Change::Upsert {
                subjects: subjects_of(p),
                event: stored::compact(payload)
                    .map_err(|e| format!("{NOT_A_RECORD_EVENT}: {e}"))?
                    .into(),
            },
            None => Change::Delete,
        };
        Ok(RecordWrite {
            key,
            version: event.version,
            change,
        })
    }
}

/// Commits the stored offsets before the consumer leaves its group.
async fn commit_final(consumer: Arc<StreamConsumer>) {
    // A synchronous commit blocks on the broker: keep it off the async workers.
    let committed =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await;
    match committed {
        // Nothing stored since the last commit: nothing to do.
        Ok(Ok(())) | Ok(Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed"),
        Err(e) => tracing::warn!(error = %e, "final offset commit panicked"),
    }
}

/// Runs `attempt` until it succeeds or fails for good, backing off while its failures
/// are transient. `Ok(None)` if shutdown came first.
async fn retry<T, F>(
    what: &str,
    telemetry: &Metrics,
    shutdown: &CancellationToken,
    mut attempt: impl FnMut() -> F,
) -> Result<Option<T>, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        match attempt().await {
            Ok(value) => return Ok(Some(value)),
            Err(e) if e.is_transient() && !matches!(e, StoreError::GenerationChanged) => {
                tracing::warn!(retry_in_ms = backoff.as_millis() as u64, "{what} failed");
                telemetry.emit(RedisFailed {
                    component: "materializer",
                    error: &e,
                });
                if !pause(backoff, shutdown).await {
                    return Ok(None);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
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
