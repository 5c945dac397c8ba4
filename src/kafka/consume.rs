//! The consume loop of the members of govlink's consumer groups that write what they read
//! elsewhere (the record store, the access index): read in batches, hand each batch to a
//! [`BatchHandler`], and store the batch's offsets for commit only once the handler has
//! written it. At-least-once: nothing is skipped, and what a batch wrote before a crash
//! is written again by its replay, which the handler's writes must take in their stride.
//! Reading overlaps writing: while the handler writes one batch, the next is gathered
//! from the consumer's queue; batches are still written one after the other, in order,
//! and their offsets stored in that order.
//!
//! A member writes into one *generation* of its destination, and its group is named after
//! it: when the handler finds the generation over (on a check, when the member starts and
//! then every [`GENERATION_CHECK`], or while writing a batch), the member leaves the group
//! so its owner can join the next one. On shutdown the offsets stored so far are committed
//! before the member leaves.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;

use super::{Brokers, at_least_once_consumer};

/// How often a member checks that its generation is still current, idle or not.
pub const GENERATION_CHECK: Duration = Duration::from_secs(1);
/// The first wait before retrying a write that failed for a transient reason; doubles up
/// to [`MAX_BACKOFF`]. Also the wait after an error from the consumer.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What waiting for a batch gave.
enum Gathered {
    Batch(Vec<OwnedMessage>),
    /// No message before the next generation check, or a consume error.
    Nothing,
    Shutdown,
}

/// How consuming under one group ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was asked for.
    Shutdown,
    /// The generation is over: leave the group and join the next generation's.
    GenerationChanged,
}

/// How large a batch grows.
#[derive(Debug, Clone, Copy)]
pub struct BatchSize {
    /// The most messages in one batch.
    pub max: usize,
    /// How long a batch waits to fill once its first message arrived.
    pub linger: Duration,
}

/// What a [`BatchConsumer`] hands its batches to: a writer into one generation.
pub trait BatchHandler {
    /// Why handling stopped for good (the member then leaves without a final commit).
    type Error;
    /// Why the generation could not be checked (its destination unreachable, say).
    type CheckError: std::fmt::Display;

    /// Whether the generation written into is still current.
    fn generation_current(&mut self)
    -> impl Future<Output = Result<bool, Self::CheckError>> + Send;

    /// Writes one batch, retrying what fails for a transient reason. `Ok(None)` once the
    /// batch is written (or set aside) for good: its offsets are then stored. `Ok(Some)`
    /// when shutdown interrupted it or it found the generation over: nothing of the batch
    /// is stored, so it will be read again.
    fn handle(
        &mut self,
        batch: &[OwnedMessage],
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Result<Option<Ended>, Self::Error>> + Send;

    /// Time spent waiting for a batch's first message; `received` whether one came (not
    /// an error, not the next generation check).
    fn waited(&mut self, _spent: Duration, _received: bool) {}

    /// Time spent gathering the rest of a batch after its first message.
    fn filled(&mut self, _spent: Duration) {}

    /// Told once the generation is over, before the member leaves its group.
    fn generation_over(&mut self) {}
}

/// A member of one consumer group that reads its topics in batches and stores offsets
/// only after its handler wrote them.
pub struct BatchConsumer {
    consumer: StreamConsumer,
    size: BatchSize,
}

impl BatchConsumer {
    /// Joins `group` as `client_id` and subscribes to `topics`; a group with no committed
    /// offsets reads from the earliest.
    pub fn join(
        brokers: &Brokers,
        client_id: &str,
        group: &str,
        topics: &[&str],
        size: BatchSize,
    ) -> Result<BatchConsumer, KafkaError> {
        let consumer: StreamConsumer =
            at_least_once_consumer(brokers, client_id, group).create()?;
        consumer.subscribe(topics)?;
        Ok(BatchConsumer { consumer, size })
    }

    /// Consumes until shutdown, the end of the generation, or an error of the handler,
    /// then leaves the group: on shutdown, once the stored offsets are committed.
    pub async fn run<H: BatchHandler>(
        self,
        handler: &mut H,
        shutdown: &CancellationToken,
    ) -> Result<Ended, H::Error> {
        let ended = self.consume(handler, shutdown).await?;
        match ended {
            Ended::Shutdown => self.commit_and_leave().await,
            Ended::GenerationChanged => handler.generation_over(),
        }
        Ok(ended)
    }

    async fn consume<H: BatchHandler>(
        &self,
        handler: &mut H,
        shutdown: &CancellationToken,
    ) -> Result<Ended, H::Error> {
        let mut last_check: Option<Instant> = None;
        // The batch gathered while the previous one was being written.
        let mut ready: Option<Vec<OwnedMessage>> = None;
        loop {
            if last_check.is_none_or(|at| at.elapsed() >= GENERATION_CHECK) {
                last_check = Some(Instant::now());
                match handler.generation_current().await {
                    Ok(true) => {}
                    Ok(false) => return Ok(Ended::GenerationChanged),
                    // What cannot be reached is noticed by the next write; keep consuming.
                    Err(e) => tracing::debug!(error = %e, "generation check failed"),
                }
            }
            let batch = match ready.take() {
                Some(batch) => batch,
                None => match self.next_batch(handler, shutdown).await {
                    Gathered::Batch(batch) => batch,
                    Gathered::Nothing => continue,
                    Gathered::Shutdown => return Ok(Ended::Shutdown),
                },
            };
            let (handled, next) = self.handle_and_gather(handler, &batch, shutdown).await;
            if let Some(ended) = handled? {
                // The batch gathered meanwhile is dropped unstored: it is read again.
                return Ok(ended);
            }
            self.store_offsets(&batch);
            ready = next;
        }
    }

    /// Waits for a batch's first message (until shutdown or the next generation check),
    /// then gathers the rest of it.
    async fn next_batch<H: BatchHandler>(
        &self,
        handler: &mut H,
        shutdown: &CancellationToken,
    ) -> Gathered {
        // Only the wait for a first message is cancelled: once a batch is being filled,
        // every message taken from the consumer is handled (a dropped one would be skipped
        // by the next stored offset).
        let waiting = Instant::now();
        let first = tokio::select! {
            () = shutdown.cancelled() => return Gathered::Shutdown,
            received = self.consumer.recv() => Some(received),
            () = sleep(GENERATION_CHECK) => None,
        };
        handler.waited(waiting.elapsed(), matches!(first, Some(Ok(_))));
        match first {
            Some(Ok(message)) => {
                let filling = Instant::now();
                let batch = self.fill_batch(message.detach()).await;
                handler.filled(filling.elapsed());
                Gathered::Batch(batch)
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consume error");
                sleep(FIRST_BACKOFF).await;
                Gathered::Nothing
            }
            None => Gathered::Nothing,
        }
    }

    /// Hands `batch` to the handler and, while it writes, gathers the next batch from
    /// the consumer's queue, so reading and writing overlap. The wait for the next
    /// batch's first message ends when the handler is done (the next loop waits again);
    /// once a first message was taken, its batch is filled even if the handler finished
    /// first, so nothing taken is dropped. What the handler waits for gathering to end
    /// after it finished is counted as filling; the rest of the gathering was hidden
    /// behind the write.
    async fn handle_and_gather<H: BatchHandler>(
        &self,
        handler: &mut H,
        batch: &[OwnedMessage],
        shutdown: &CancellationToken,
    ) -> (Result<Option<Ended>, H::Error>, Option<Vec<OwnedMessage>>) {
        let (handled, next, tail) = {
            let mut handling = std::pin::pin!(async {
                let handled = handler.handle(batch, shutdown).await;
                (handled, Instant::now())
            });
            let first = tokio::select! {
                biased;
                (handled, _) = &mut handling => return (handled, None),
                received = self.consumer.recv() => received,
            };
            match first {
                Ok(message) => {
                    let ((handled, done), (next, filled)) = tokio::join!(handling, async {
                        let next = self.fill_batch(message.detach()).await;
                        (next, Instant::now())
                    });
                    (handled, Some(next), filled.saturating_duration_since(done))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "consume error");
                    (handling.await.0, None, Duration::ZERO)
                }
            }
        };
        if next.is_some() {
            handler.filled(tail);
        }
        (handled, next)
    }

    /// Gathers more messages after `first` until the batch is full or lingered enough.
    async fn fill_batch(&self, first: OwnedMessage) -> Vec<OwnedMessage> {
        let mut batch = vec![first];
        let linger_until = Instant::now() + self.size.linger;
        while batch.len() < self.size.max {
            match timeout_at(linger_until, self.consumer.recv()).await {
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
    fn store_offsets(&self, batch: &[OwnedMessage]) {
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in last_offsets(batch) {
            if let Err(e) =
                offsets.add_partition_offset(topic, partition, Offset::Offset(offset + 1))
            {
                tracing::error!(error = %e, "cannot build offset list");
            }
        }
        // Fails for partitions revoked meanwhile; their new owner reads again from the
        // last commit, and writes what is already written again.
        if let Err(e) = self.consumer.store_offsets(&offsets) {
            tracing::info!(error = %e, "offsets not stored (partitions revoked?)");
        }
    }

    /// Commits the stored offsets, then leaves the group.
    async fn commit_and_leave(self) {
        let consumer = self.consumer;
        // A synchronous commit blocks on the broker, and so does leaving the group (when
        // the consumer is dropped): keep both off the async workers.
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
                .await;
        match committed {
            // Nothing stored since the last commit: nothing to do.
            Ok(Ok(())) | Ok(Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed"),
            Err(e) => tracing::warn!(error = %e, "final offset commit panicked"),
        }
    }
}

/// The last offset of each partition (by topic and partition) in `batch`.
pub fn last_offsets(batch: &[OwnedMessage]) -> BTreeMap<(&str, i32), i64> {
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let offset = last.entry((m.topic(), m.partition())).or_insert(m.offset());
        *offset = (*offset).max(m.offset());
    }
    last
}

/// Runs `attempt` until it succeeds or fails for good, backing off from [`FIRST_BACKOFF`]
/// to [`MAX_BACKOFF`] while `transient` says a failure is passing (it is told the wait
/// that follows, to log it). `None` if shutdown came first.
pub async fn retry<T, E, F>(
    shutdown: &CancellationToken,
    mut attempt: impl FnMut() -> F,
    mut transient: impl FnMut(&E, Duration) -> bool,
) -> Option<Result<T, E>>
where
    F: Future<Output = Result<T, E>>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        match attempt().await {
            Err(e) if transient(&e, backoff) => {}
            done => return Some(done),
        }
        if !pause(backoff, shutdown).await {
            return None;
        }
        backoff = next_backoff(backoff);
    }
}

/// The wait after `wait`: twice as long, up to [`MAX_BACKOFF`].
pub fn next_backoff(wait: Duration) -> Duration {
    (wait * 2).min(MAX_BACKOFF)
}

/// Sleeps for `wait` unless shutdown comes first; false on shutdown.
pub async fn pause(wait: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rdkafka::Timestamp;

    use super::*;

    fn message(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
        let at = Timestamp::NotAvailable;
        OwnedMessage::new(None, None, topic.into(), at, partition, offset, None)
    }

    #[test]
    fn the_last_offset_of_each_partition_is_kept() {
        let batch = [
            message("a", 0, 7),
            message("a", 1, 3),
            message("a", 0, 9),
            message("b", 0, 2),
            message("a", 0, 8),
        ];
        let last: Vec<_> = last_offsets(&batch).into_iter().collect();
        assert_eq!(last, [(("a", 0), 9), (("a", 1), 3), (("b", 0), 2)]);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_with_growing_waits() {
        let attempts = Cell::new(0);
        let mut waits = Vec::new();
        let outcome = retry(
            &CancellationToken::new(),
            || {
                attempts.set(attempts.get() + 1);
                let n = attempts.get();
                async move { if n < 3 { Err("down") } else { Ok(n) } }
            },
            |_: &&str, wait| {
                waits.push(wait);
                true
            },
        )
        .await;
        assert_eq!(outcome, Some(Ok(3)));
        assert_eq!(waits, [FIRST_BACKOFF, FIRST_BACKOFF * 2]);
    }

    #[tokio::test]
    async fn a_lasting_failure_is_returned_at_once() {
        let attempts = Cell::new(0);
        let outcome: Option<Result<(), &str>> = retry(
            &CancellationToken::new(),
            || {
                attempts.set(attempts.get() + 1);
                async { Err("refused") }
            },
            |_, _| false,
        )
        .await;
        assert_eq!(outcome, Some(Err("refused")));
        assert_eq!(attempts.get(), 1);
    }

    #[tokio::test]
    async fn shutdown_ends_the_retries() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let outcome: Option<Result<(), &str>> =
            retry(&shutdown, || async { Err("down") }, |_, _| true).await;
        assert_eq!(outcome, None);
    }

    #[test]
    fn waits_double_up_to_the_bound() {
        let waits: Vec<Duration> =
            std::iter::successors(Some(FIRST_BACKOFF), |w| Some(next_backoff(*w)))
                .take(8)
                .collect();
        assert_eq!(
            waits[..3],
            [FIRST_BACKOFF, FIRST_BACKOFF * 2, FIRST_BACKOFF * 4]
        );
        assert_eq!(waits[6..], [MAX_BACKOFF, MAX_BACKOFF]);
    }
}
