//! The publish path's producer: one idempotent producer (`acks=all`) shared by every
//! adapter, with a bounded in-flight window. A publish returns a position only after the
//! broker acknowledged the record; anything else is an error, never a false ack.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout_at};

use crate::proto::Position;

/// How long to wait before retrying when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// Why a publish was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker did not acknowledge in time or cannot be reached. The record may still
    /// land later; retrying with the same version is safe.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the record for its size.
    #[error("record too large for the broker")]
    TooLarge,
}

/// A Kafka message header.
pub type Header<'a> = (&'a str, &'a [u8]);

/// The shared producer and its in-flight window.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    /// Bounds the records awaiting a broker ack, so a slow broker pushes back on callers
    /// instead of growing librdkafka's queue without limit.
    window: Arc<Semaphore>,
}

impl Publisher {
    /// An idempotent producer on `bootstrap`. `message_timeout` bounds how long librdkafka
    /// keeps retrying one record; `max_in_flight` bounds unacknowledged records.
    pub fn new(
        bootstrap: &str,
        message_timeout: Duration,
        max_in_flight: usize,
    ) -> Result<Publisher, KafkaError> {
        let producer: FutureProducer = super::client_config(bootstrap, "govlink-publisher")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set(
                "message.timeout.ms",
                message_timeout.as_millis().max(1).to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                (max_in_flight * 2).max(1).to_string(),
            )
            .create()?;
        Ok(Publisher {
            producer,
            window: Arc::new(Semaphore::new(max_in_flight.max(1))),
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
        let _permit = timeout_at(deadline, self.window.acquire())
            .await
            .map_err(|_| {
                PublishError::Unavailable("publish window stayed full until the deadline".into())
            })?
            .map_err(|_| PublishError::Unavailable("publisher is shutting down".into()))?;
        let mut kafka_headers = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            kafka_headers = kafka_headers.insert(KafkaHeader {
                key: name,
                value: Some(*value),
            });
        }
        let delivery = loop {
            let record = FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(kafka_headers.clone());
            match self.producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if Instant::now() + QUEUE_FULL_BACKOFF >= deadline {
                        return Err(PublishError::Unavailable(
                            "producer queue stayed full until the deadline".into(),
                        ));
                    }
                    sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((e, _)) => return Err(classify(e)),
            }
        };
        match timeout_at(deadline, delivery).await {
            Ok(Ok(Ok(d))) => Ok(Position {
                topic: topic.to_owned(),
                partition: d.partition,
                offset: d.offset,
            }),
            Ok(Ok(Err((e, _)))) => Err(classify(e)),
            Ok(Err(_canceled)) => Err(PublishError::Unavailable("producer was closed".into())),
            Err(_) => Err(PublishError::Unavailable(
                "broker did not acknowledge before the deadline".into(),
            )),
        }
    }

    /// Waits up to `timeout` for every queued record to be acknowledged (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.window.close();
        self.producer.flush(timeout)
    }
}

fn classify(e: KafkaError) -> PublishError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            PublishError::TooLarge
        }
        _ => PublishError::Unavailable(e.to_string()),
    }
}
