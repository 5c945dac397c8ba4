//! How a publish path publishes what it admitted: it validates the items, hands them to
//! the producer and answers once the broker acknowledged them.

use futures::future::join_all;
use prost::Message;
use tokio::time::Instant;

use super::error::AdapterError;
use super::{Item, Prepared, PublishPath, check_batch_size, check_item, check_items};
use crate::kafka::Enqueued;
use crate::proto::{Agency, PublishAck, RecordEvent};
use crate::records::{Horizon, RecordKey, agency_slug};

impl PublishPath {
    /// Validates and publishes one item of `agency`.
    pub(super) async fn publish(
        &self,
        agency: Agency,
        item: Item,
        deadline: Instant,
    ) -> Result<PublishAck, AdapterError> {
        self.admit_rate(agency, 1)?;
        let prepared = check_item(agency, item, &Horizon::now(self.max_clock_skew))
            .map_err(AdapterError::Invalid)?;
        let pending = self.enqueue(prepared, deadline).await?;
        self.acked(pending, deadline).await
    }

    /// Validates every item of a batch, then publishes them all; nothing is published if
    /// any item is invalid. The acks come back in item order.
    pub(super) async fn publish_batch(
        &self,
        agency: Agency,
        items: Vec<Item>,
        deadline: Instant,
    ) -> Result<Vec<PublishAck>, AdapterError> {
        let violations = check_batch_size(items.len(), self.max_batch);
        if !violations.is_empty() {
            return Err(AdapterError::BatchSize {
                violations,
                too_many: items.len() > self.max_batch,
            });
        }
        self.admit_rate(agency, items.len())?;
        let horizon = Horizon::now(self.max_clock_skew);
        let events = check_items(agency, items, &horizon).map_err(AdapterError::Invalid)?;
        // Enqueued one after the other, so items of one key land in item order; the acks
        // are awaited together, so the batch costs about one broker round trip.
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            match self.enqueue(event, deadline).await {
                Ok(p) => pending.push(p),
                Err(first) => return Err(not_all_acknowledged(first, None)),
            }
        }
        let results = join_all(pending.into_iter().map(|p| self.acked(p, deadline))).await;
        let mut acks = Vec::with_capacity(results.len());
        let (mut first, mut failed) = (None, 0);
        for result in results {
            match result {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    failed += 1;
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            Some(first) => Err(not_all_acknowledged(first, Some(failed))),
            None => Ok(acks),
        }
    }

    /// Hands one validated item to the producer, without waiting for the broker.
    async fn enqueue(
        &self,
        prepared: Prepared,
        deadline: Instant,
    ) -> Result<Pending, AdapterError> {
        let Prepared { agency, key, event } = prepared;
        let topic = self.topics.records(agency);
        let payload = event.encode_to_vec();
        let started = std::time::Instant::now();
        let enqueued = self
            .publisher
            .enqueue(
                &topic,
                key.as_str().as_bytes(),
                &payload,
                &[("govlink-schema", b"govlink.v1.RecordEvent")],
                deadline,
            )
            .await;
        match enqueued {
            Ok(enqueued) => Ok(Pending {
                agency,
                key,
                event,
                started,
                enqueued,
            }),
            Err(e) => Err(AdapterError::not_acknowledged(
                agency,
                &event.record_type,
                e,
            )),
        }
    }

    /// Waits for the broker's ack of an enqueued item.
    async fn acked(&self, pending: Pending, deadline: Instant) -> Result<PublishAck, AdapterError> {
        let Pending {
            agency,
            key,
            event,
            started,
            enqueued,
        } = pending;
        match enqueued.ack(deadline).await {
            Ok(position) => {
                tracing::debug!(
                    agency = agency_slug(agency),
                    record_type = event.record_type,
                    version = event.version,
                    partition = position.partition,
                    offset = position.offset,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "record published"
                );
                Ok(PublishAck {
                    event_id: event.event_id,
                    record_key: key.to_string(),
                    version: event.version,
                    position: Some(position),
                })
            }
            Err(e) => Err(AdapterError::not_acknowledged(
                agency,
                &event.record_type,
                e,
            )),
        }
    }
}

/// A batch of which `failed` items (some, when unknown) were not acknowledged, the
/// first for `first`.
fn not_all_acknowledged(first: AdapterError, failed: Option<usize>) -> AdapterError {
    AdapterError::BatchNotAcknowledged {
        first: Box::new(first),
        failed,
    }
}

/// An item handed to the producer, awaiting the broker's ack.
struct Pending {
    agency: Agency,
    key: RecordKey,
    event: RecordEvent,
    started: std::time::Instant,
    enqueued: Enqueued,
}
