//! The publish path's producer: one idempotent producer (`acks=all`) shared by every
//! adapter, with a bounded in-flight window. A publish returns a position only after the
//! broker acknowledged the record; anything else is an error, never a false ack.
//!
//! The window counts records from the moment they are handed to librdkafka until
//! librdkafka resolves them (acknowledged, failed or timed out), whether or not the caller
//! is still waiting: the permit travels with the record and is released by the delivery
//! callback, which also wakes the next waiter. The producer's context watches the broker
//! (reachable or not, to tell a short deadline from a broker outage) and librdkafka's fatal
//! errors (after which the producer can never publish again).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::{Instant, timeout_at};

use crate::proto::Position;

/// How often librdkafka reports broker states to the context. It is the delay after which
/// a broker that came back is seen as reachable when nothing is being published.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Why a publish was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker cannot be reached or refuses to store the record right now, or the
    /// publish window stayed full. The record may still land later; retrying with the
    /// same version is safe.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The caller's deadline ran out while the broker was reachable: the deadline was too
    /// short for this broker. The record may still land later; retrying with the same
    /// version (and a longer deadline) is safe.
    #[error("the deadline ran out before the broker acknowledged the record")]
    DeadlineExceeded,
    /// The broker refused the record for its size.
    #[error("record too large for the broker")]
    TooLarge,
    /// The producer hit a fatal error (e.g. the idempotent producer lost its sequence) and
    /// will never publish again; only a new process (a new producer) can.
    #[error("producer failed permanently: {0}")]
    Fatal(String),
}

/// A Kafka message header.
pub type Header<'a> = (&'a str, &'a [u8]);

/// The shared producer and its in-flight window.
#[derive(Clone)]
pub struct Publisher {
    producer: ThreadedProducer<PublisherContext>,
    /// Bounds the records librdkafka holds (queued or awaiting an ack), so a slow broker
    /// pushes back on callers instead of growing librdkafka's queue without limit.
    window: Arc<Semaphore>,
    /// The window's size, to report how much of it is in use.
    window_size: usize,
}

/// A record librdkafka accepted: await its acknowledgement with [`Enqueued::ack`].
#[must_use = "a record's outcome is only known by awaiting its ack"]
pub struct Enqueued {
    topic: String,
    outcome: oneshot::Receiver<Outcome>,
    /// To classify a failure: whether the producer failed for good is its client's to say.
    publisher: Publisher,
}

/// What librdkafka reported for one record: its partition and offset, or why not.
type Outcome = Result<(i32, i64), KafkaError>;

/// What travels with a record through librdkafka, back to the delivery callback.
struct InFlight {
    /// Where the outcome goes; the caller may have stopped listening.
    reply: oneshot::Sender<Outcome>,
    /// The record's place in the window, released when librdkafka resolves the record
    /// (this struct is dropped in the delivery callback), not when the caller gives up.
    _permit: OwnedSemaphorePermit,
}

impl Publisher {
    /// An idempotent producer on `brokers`. `message_timeout` bounds how long librdkafka
    /// keeps retrying one record; `max_in_flight` bounds the records librdkafka holds.
    pub fn new(
        brokers: &super::Brokers,
        message_timeout: Duration,
        max_in_flight: usize,
    ) -> Result<Publisher, KafkaError> {
        let window_size = max_in_flight.max(1);
        let (fatal, _) = watch::channel(None);
        let state = Arc::new(State {
            broker: AtomicU8::new(BROKER_UNKNOWN),
            fatal,
        });
        // Why librdkafka's queue can never be full, so a record is never refused with
        // QueueFull and retried behind a later record of its key: every record holds a
        // window permit from before it is queued until its delivery callback has run, so
        // at most `window_size` records with a permit are in librdkafka. A record whose
        // callback ran still counts in librdkafka until the delivery-report event that
        // carried it is destroyed, after the callbacks of that event; every record of
        // that event held a permit when the event was made, so those are at most
        // `window_size` more. Hence at most 2 × window records are counted, and the limit
        // is set just above that. The byte limit is set to librdkafka's maximum: the
        // window bounds the count, the broker's message size bounds each record. Should
        // QueueFull happen all the same, the publish fails (it is not retried), which
        // cannot reorder anything.
        let max_messages = window_size.saturating_mul(2).saturating_add(1);
        let producer: ThreadedProducer<PublisherContext> =
            super::client_config(brokers, "govlink-publisher")
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "2")
                .set(
                    "message.timeout.ms",
                    message_timeout.as_millis().max(1).to_string(),
                )
                .set(
                    "queue.buffering.max.messages",
                    max_messages.min(i32::MAX as usize).to_string(),
                )
                .set("queue.buffering.max.kbytes", i32::MAX.to_string())
                .set(
                    "statistics.interval.ms",
                    STATS_INTERVAL.as_millis().to_string(),
                )
                .create_with_context(PublisherContext {
                    state: Arc::clone(&state),
                })?;
        Ok(Publisher {
            producer,
            window: Arc::new(Semaphore::new(window_size)),
            window_size,
        })
    }

    /// Publishes one record and waits for the broker's ack until `deadline`.
    pub async fn publish(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[Header<'_>],
        deadline: Instant,
    ) -> Result<Position, PublishError> {
        self.enqueue(topic, key, payload, headers, deadline)
            .await?
            .ack(deadline)
            .await
    }

    /// Hands one record to librdkafka once the window has room (waiting until `deadline`
    /// at most) and returns without waiting for the broker. Records of one key enqueued
    /// one after the other land on their partition in that order.
    pub async fn enqueue(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[Header<'_>],
        deadline: Instant,
    ) -> Result<Enqueued, PublishError> {
        if let Some(reason) = self.state().fatal_reason() {
            return Err(PublishError::Fatal(reason));
        }
        let permit = match timeout_at(deadline, Arc::clone(&self.window).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => {
                return Err(PublishError::Unavailable(
                    "publisher is shutting down".into(),
                ));
            }
            Err(_) => {
                return Err(PublishError::Unavailable(
                    "publish window stayed full until the deadline".into(),
                ));
            }
        };
        let mut kafka_headers = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            kafka_headers = kafka_headers.insert(KafkaHeader {
                key: name,
                value: Some(*value),
            });
        }
        let (reply, outcome) = oneshot::channel();
        let record = BaseRecord::with_opaque_to(
            topic,
            Box::new(InFlight {
                reply,
                _permit: permit,
            }),
        )
        .key(key)
        .payload(payload)
        .headers(kafka_headers);
        // On refusal the record comes back with its permit, which is dropped here.
        if let Err((e, _record)) = self.producer.send(record) {
            return Err(self.classify(e));
        }
        Ok(Enqueued {
            topic: topic.to_owned(),
            outcome,
            publisher: self.clone(),
        })
    }

    /// Resolves with the reason once the producer hit a fatal error; it never publishes
    /// again after that. Pending forever while the producer is healthy.
    pub fn fatal(&self) -> impl Future<Output = String> + Send + 'static {
        let mut fatal = self.producer.context().state.fatal.subscribe();
        async move {
            let reason = match fatal.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone(),
                Err(_) => None,
            };
            match reason {
                Some(reason) => reason,
                // The producer is gone without a fatal error: there is none to report.
                None => std::future::pending().await,
            }
        }
    }

    /// How many records librdkafka holds (queued or awaiting the broker), including those
    /// whose callers gave up waiting.
    pub fn in_flight(&self) -> usize {
        self.window_size - self.window.available_permits()
    }

    /// How many messages librdkafka has queued or awaiting the broker's answer (every
    /// publish of the process, dead letters and audit entries too).
    pub fn queued(&self) -> usize {
        usize::try_from(self.producer.in_flight_count()).unwrap_or(0)
    }

    /// Waits up to `timeout` for every queued record to be acknowledged (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.window.close();
        self.producer.flush(timeout)
    }

    /// The error for a record librdkafka refused or failed.
    fn classify(&self, e: KafkaError) -> PublishError {
        // A fatal error fails records with their own broker error (say
        // OUT_OF_ORDER_SEQUENCE_NUMBER), and the error event with the fatal reason may not
        // have been polled yet: librdkafka's own flag is the authority.
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            let reason = format!("{code:?}: {reason}");
            self.state().set_fatal(reason.clone());
            return PublishError::Fatal(reason);
        }
        self.state().classify(e)
    }

    fn state(&self) -> &State {
        &self.producer.context().state
    }
}

impl Enqueued {
    /// Waits until `deadline` for the broker's ack of this record.
    pub async fn ack(self, deadline: Instant) -> Result<Position, PublishError> {
        match timeout_at(deadline, self.outcome).await {
            Ok(Ok(Ok((partition, offset)))) => Ok(Position {
                topic: self.topic,
                partition,
                offset,
            }),
            Ok(Ok(Err(e))) => Err(self.publisher.classify(e)),
            Ok(Err(_dropped)) => Err(PublishError::Unavailable("producer was closed".into())),
            Err(_) => Err(self.publisher.state().timed_out()),
        }
    }
}

/// Nothing is known about the broker yet.
const BROKER_UNKNOWN: u8 = 0;
/// The producer is connected to a broker (or a record was just acknowledged).
const BROKER_REACHABLE: u8 = 1;
/// librdkafka reports every broker down.
const BROKER_UNREACHABLE: u8 = 2;

/// What the producer's context learns from librdkafka, shared with the publishers.
struct State {
    /// `BROKER_*`: whether the broker answers, to tell a caller's short deadline
    /// (`DEADLINE_EXCEEDED`) from a broker outage (`UNAVAILABLE`).
    broker: AtomicU8,
    /// The first fatal error's reason, once there is one.
    fatal: watch::Sender<Option<String>>,
}

impl State {
    fn fatal_reason(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }

    /// Records the first fatal error and logs it once.
    fn set_fatal(&self, reason: String) {
        self.fatal.send_if_modified(|fatal| {
            if fatal.is_some() {
                return false;
            }
            tracing::error!(reason, "kafka producer failed permanently");
            *fatal = Some(reason);
            true
        });
    }

    /// Records whether the broker is reachable; logs only a change.
    fn set_broker(&self, reachable: bool, reason: &str) {
        let new = if reachable {
            BROKER_REACHABLE
        } else {
            BROKER_UNREACHABLE
        };
        let old = self.broker.swap(new, Ordering::Relaxed);
        if old == new {
            return;
        }
        if reachable {
            tracing::info!("kafka broker reachable");
        } else {
            tracing::warn!(reason, "kafka broker unreachable");
        }
    }

    /// The error for a record whose caller's deadline ran out before its ack.
    fn timed_out(&self) -> PublishError {
        if let Some(reason) = self.fatal_reason() {
            return PublishError::Fatal(reason);
        }
        match self.broker.load(Ordering::Relaxed) {
            BROKER_REACHABLE => PublishError::DeadlineExceeded,
            BROKER_UNREACHABLE => PublishError::Unavailable(
                "the broker is unreachable and did not acknowledge before the deadline".into(),
            ),
            _ => PublishError::Unavailable(
                "no broker was reached yet and none acknowledged before the deadline".into(),
            ),
        }
    }

    /// The error for a record librdkafka failed (after its own retries) or refused.
    fn classify(&self, e: KafkaError) -> PublishError {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
                PublishError::TooLarge
            }
            Some(RDKafkaErrorCode::Fatal) => PublishError::Fatal(
                self.fatal_reason()
                    .unwrap_or_else(|| "fatal producer error".into()),
            ),
            _ => PublishError::Unavailable(e.to_string()),
        }
    }
}

/// The part of librdkafka's statistics the context reads.
#[derive(serde::Deserialize)]
struct BrokerStates {
    #[serde(default)]
    brokers: std::collections::HashMap<String, BrokerState>,
}

/// One broker connection in librdkafka's statistics.
#[derive(serde::Deserialize)]
struct BrokerState {
    /// learned, configured, internal or logical.
    source: String,
    /// INIT, DOWN, CONNECT, ..., UP.
    state: String,
}

/// The producer's librdkafka context: error and statistics callbacks feed [`State`];
/// the delivery callback answers the publisher and releases the record's window permit.
struct PublisherContext {
    state: Arc<State>,
}

impl ClientContext for PublisherContext {
    fn stats_raw(&self, statistics: &[u8]) {
        // Only the broker states are read: a small view instead of rdkafka's full
        // `Statistics`, so a field librdkafka adds or drops cannot make parsing fail.
        let Ok(statistics) = serde_json::from_slice::<BrokerStates>(statistics) else {
            tracing::debug!("unreadable librdkafka statistics");
            return;
        };
        // Bootstrap entries are "configured", brokers from metadata "learned"; the
        // "internal" and "logical" ones are librdkafka's own and never connect.
        let mut brokers = statistics
            .brokers
            .values()
            .filter(|b| b.source == "learned" || b.source == "configured")
            .peekable();
        if brokers.peek().is_none() {
            return;
        }
        if brokers.any(|b| b.state == "UP") {
            self.state.set_broker(true, "");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Fatal) => self.state.set_fatal(reason.to_owned()),
            Some(RDKafkaErrorCode::AllBrokersDown) => self.state.set_broker(false, reason),
            // One connection dropping is routine (the broker closes idle ones); what
            // matters to publishers is when all are down, reported just above.
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::Resolve) => {
                tracing::debug!(error = %error, reason, "kafka connection error");
            }
            _ => tracing::warn!(error = %error, reason, "kafka producer error"),
        }
    }
}

impl ProducerContext for PublisherContext {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, in_flight: Box<InFlight>) {
        let outcome = match result {
            Ok(message) => {
                self.state.set_broker(true, "");
                Ok((message.partition(), message.offset()))
            }
            Err((e, _)) => Err(e.clone()),
        };
        // The caller may have given up: then nobody listens, and that is fine.
        let _ = in_flight.reply.send(outcome);
        // `in_flight` drops here: its permit returns to the window and wakes a waiter.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> PublisherContext {
        PublisherContext {
            state: Arc::new(State {
                broker: AtomicU8::new(BROKER_UNKNOWN),
                fatal: watch::channel(None).0,
            }),
        }
    }

    fn stats(state: &str) -> String {
        format!(
            r#"{{"name":"p","brokers":{{
                "127.0.0.1:9092/1":{{"name":"127.0.0.1:9092/1","nodeid":1,"source":"learned","state":"{state}","stateage":5}},
                ":0/internal":{{"name":":0/internal","nodeid":-1,"source":"internal","state":"UP"}}
            }},"topics":{{}}}}"#
        )
    }

    #[test]
    fn a_timeout_is_the_deadline_only_while_the_broker_is_reachable() {
        let context = context();
        // Nothing known yet: a timeout cannot be blamed on the caller's deadline.
        assert!(matches!(
            context.state.timed_out(),
            PublishError::Unavailable(_)
        ));
        // librdkafka's own internal broker being "UP" says nothing about the real one.
        context.stats_raw(stats("CONNECT").as_bytes());
        assert!(matches!(
            context.state.timed_out(),
            PublishError::Unavailable(_)
        ));
        context.stats_raw(stats("UP").as_bytes());
        assert!(matches!(
            context.state.timed_out(),
            PublishError::DeadlineExceeded
        ));
        context.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert!(matches!(
            context.state.timed_out(),
            PublishError::Unavailable(_)
        ));
        // Unreadable statistics change nothing.
        context.stats_raw(b"{not json");
        assert!(matches!(
            context.state.timed_out(),
            PublishError::Unavailable(_)
        ));
    }

    #[test]
    fn the_first_fatal_error_is_kept_and_outranks_everything() {
        let context = context();
        context.stats_raw(stats("UP").as_bytes());
        context.error(KafkaError::Global(RDKafkaErrorCode::Fatal), "first");
        context.error(KafkaError::Global(RDKafkaErrorCode::Fatal), "second");
        assert_eq!(context.state.fatal_reason().as_deref(), Some("first"));
        assert!(matches!(context.state.timed_out(), PublishError::Fatal(r) if r == "first"));
        assert!(matches!(
            context.state.classify(KafkaError::Global(RDKafkaErrorCode::Fatal)),
            PublishError::Fatal(r) if r == "first"
        ));
    }
}
