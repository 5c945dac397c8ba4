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

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::positions::Positions;
use super::store::{Change, RecordWrite, Store, StoreError, StoreState};
use crate::kafka::consume::{self, BatchConsumer, BatchHandler, BatchSize, Ended};
use crate::kafka::{Publisher, Topics};
use crate::proto::{Op, Position, RecordEvent};
use crate::records::{RecordKey, RecordType, SubjectKey, stored, subjects_of, validate_event};
use dead_letter::{
    EMPTY_MESSAGE, INVALID_EVENT, NOT_A_RECORD_EVENT, NOT_A_RECORD_TOPIC, STORE_REFUSED, WRONG_KEY,
};
use timings::Stage;

use crate::telemetry::events::{BatchMaterialized, RedisFailed};
use crate::telemetry::metrics::{Metrics, Telemetry};

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
        while let Some(generation) = self.enter_generation(&shutdown).await? {
            let group =
                crate::kafka::Groups::new(self.config.group_id.as_str()).materializer(&generation);
            tracing::info!(group, "materializer started");
            let topics = self.topics.all_records();
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            let size = BatchSize {
                max: self.config.batch_size,
                linger: self.config.linger,
            };
            let consumer = BatchConsumer::join(
                &self.config.brokers,
                "govlink-materializer",
                &group,
                &topics,
                size,
            )?;
            let mut materializing = Materializing {
                materializer: &self,
                generation: &generation,
                group: &group,
                idle: Stage::Join,
            };
            if consumer.run(&mut materializing, &shutdown).await? == Ended::Shutdown {
                break;
            }
        }
        tracing::info!("materializer stopped");
        Ok(())
    }

    /// Materializes one batch and records its positions in `generation`; the consume loop
    /// stores its offsets after. `Some` when it ended the generation or shutdown
    /// interrupted it; nothing of the batch is committed then, so it will be read again.
    async fn process(
        &self,
        batch: &[OwnedMessage],
        generation: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<Ended>, MaterializerError> {
        let decoding = Instant::now();
        let Some(decoded) = self.decode_batch(batch, shutdown).await else {
            return Ok(Some(Ended::Shutdown));
        };
        let Decoded {
            writes,
            origins,
            rejected,
        } = decoded;
        let storing = Instant::now();
        self.timings.add(Stage::Decode, storing - decoding);
        let Some(applied) = self.apply(&writes, &origins, shutdown).await else {
            return Ok(Some(Ended::Shutdown));
        };
        let recording = Instant::now();
        self.timings.add(Stage::Store, recording - storing);

        let positions = batch_positions(batch);
        if let Some(ended) = self
            .record_positions(generation, &positions, shutdown)
            .await?
        {
            return Ok(Some(ended));
        }
        self.timings.add(Stage::Positions, recording.elapsed());

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

    /// The batch's events as store writes; the ones that cannot be are dead-lettered.
    /// `None` on shutdown.
    async fn decode_batch<'m>(
        &self,
        batch: &'m [OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Option<Decoded<'m>> {
        let mut decoded = Decoded {
            writes: Vec::with_capacity(batch.len()),
            origins: Vec::with_capacity(batch.len()),
            rejected: 0,
        };
        for message in batch {
            match self.decode(message) {
                Ok(write) => {
                    decoded.writes.push(write);
                    decoded.origins.push(message);
                }
                Err(reason) => {
                    decoded.rejected += 1;
                    if !self.dead_letter(message, &reason, shutdown).await {
                        return None;
                    }
                }
            }
        }
        Some(decoded)
    }

    /// Records the positions a batch reached in `generation`, retrying while the store is
    /// unreachable. `Some` on shutdown, or when the store's generation is no longer
    /// `generation`.
    async fn record_positions(
        &self,
        generation: &str,
        positions: &[Position],
        shutdown: &CancellationToken,
    ) -> Result<Option<Ended>, MaterializerError> {
        let recorded = retry("recording positions", &self.telemetry, shutdown, || {
            self.store.advance_positions(generation, positions)
        })
        .await;
        match recorded {
            Some(Ok(())) => Ok(None),
            None => Ok(Some(Ended::Shutdown)),
            Some(Err(StoreError::GenerationChanged)) => Ok(Some(Ended::GenerationChanged)),
            Some(Err(e)) => Err(e.into()),
        }
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
        match whole.await? {
            Ok(written) => return Some(written.applied_flags()),
            Err(e) => tracing::error!(error = %e, "store refused a batch; writing one by one"),
        }
        let mut flags = Vec::with_capacity(writes.len());
        for (write, origin) in writes.iter().zip(origins) {
            let one = std::slice::from_ref(write);
            match retry("store write", &self.telemetry, shutdown, || {
                self.store.apply(one)
            })
            .await?
            {
                Ok(outcome) => flags.push(outcome.applied == 1),
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

/// A generation being materialized: what the consume loop hands its batches to.
struct Materializing<'a> {
    materializer: &'a Materializer,
    generation: &'a str,
    /// The generation's consumer group.
    group: &'a str,
    /// What waiting for a batch's first event is: until the generation's first event,
    /// joining the group (and the first fetch); after it, waiting for the topics to bring
    /// more.
    idle: Stage,
}

impl BatchHandler for Materializing<'_> {
    type Error = MaterializerError;
    type CheckError = StoreError;

    /// Also keeps the readiness up to date: how an idle materializer notices a flush (and
    /// rebuilds) without waiting for the next record.
    async fn generation_current(&mut self) -> Result<bool, StoreError> {
        match self.materializer.store.meta().await? {
            Some(meta) if meta.generation == self.generation => {
                self.materializer.ready.send_if_modified(|ready| {
                    let now = meta.state == StoreState::Ready;
                    std::mem::replace(ready, now) != now
                });
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn handle(
        &mut self,
        batch: &[OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Result<Option<Ended>, MaterializerError> {
        self.materializer
            .process(batch, self.generation, shutdown)
            .await
    }

    fn waited(&mut self, spent: Duration, received: bool) {
        self.materializer.timings.add(self.idle, spent);
        if received {
            self.idle = Stage::Idle;
        }
    }

    fn filled(&mut self, spent: Duration) {
        self.materializer.timings.add(Stage::Fill, spent);
    }

    fn generation_over(&mut self) {
        self.materializer.ready.send_replace(false);
        tracing::warn!(
            group = self.group,
            "the store's generation changed; leaving the group"
        );
        self.materializer.positions.reset();
    }
}

/// The events of a batch the store can take, as writes, and the messages they came from.
struct Decoded<'m> {
    writes: Vec<RecordWrite<'m>>,
    origins: Vec<&'m OwnedMessage>,
    /// How many of the batch's events were dead-lettered instead.
    rejected: usize,
}

/// Where a batch ends in each of its partitions.
fn batch_positions(batch: &[OwnedMessage]) -> Vec<Position> {
    consume::last_offsets(batch)
        .into_iter()
        .map(|((topic, partition), offset)| Position {
            topic: topic.to_owned(),
            partition,
            offset,
        })
        .collect()
}

/// Runs a store call until it succeeds or fails for good, backing off while its failures
/// are transient (each counted). `None` if shutdown came first.
async fn retry<T, F>(
    what: &str,
    telemetry: &Metrics,
    shutdown: &CancellationToken,
    attempt: impl FnMut() -> F,
) -> Option<Result<T, StoreError>>
where
    F: Future<Output = Result<T, StoreError>>,
{
    consume::retry(shutdown, attempt, |e: &StoreError, wait| {
        if !e.is_transient() || matches!(e, StoreError::GenerationChanged) {
            return false;
        }
        tracing::warn!(retry_in_ms = wait.as_millis() as u64, "{what} failed");
        telemetry.emit(RedisFailed {
            component: "materializer",
            error: e,
        });
        true
    })
    .await
}
