//! The dead-letter topic: events the materializer cannot use, kept with their reason and
//! origin so an operator can look at them, without ever stopping consumption.

use rdkafka::message::{Message, OwnedMessage};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{FIRST_BACKOFF, MAX_BACKOFF, Materializer, pause};
use crate::kafka::PublishError;
use crate::ops::events::DeadLettered;

/// How long one dead-letter publish may wait for the broker before it is retried.
const DLQ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest reason kept in a header.
const MAX_REASON: usize = 1024;
/// What is kept of a payload the broker refused as too large: a prefix, then nothing.
const TRUNCATED_SIZES: [usize; 2] = [64 * 1024, 0];

impl Materializer {
    /// Publishes a message to the dead-letter topic, retrying while the broker is
    /// unavailable. A message the broker refuses as too large is sent again truncated
    /// (its origin headers say where the whole one is). False on shutdown.
    pub(super) async fn dead_letter(
        &self,
        message: &OwnedMessage,
        kind: &'static str,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        self.telemetry.emit(DeadLettered {
            kind,
            reason,
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        });
        let reason = truncate(reason, MAX_REASON);
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let payload = message.payload().unwrap_or_default();
        let length = payload.len().to_string();
        let topic = self.topics.dlq();
        let mut keep = payload.len();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut headers = vec![
                ("govlink-dlq-kind", kind.as_bytes()),
                ("govlink-dlq-reason", reason.as_bytes()),
                ("govlink-dlq-topic", message.topic().as_bytes()),
                ("govlink-dlq-partition", partition.as_bytes()),
                ("govlink-dlq-offset", offset.as_bytes()),
            ];
            if keep < payload.len() {
                headers.push(("govlink-dlq-truncated-from", length.as_bytes()));
            }
            let published = self
                .dlq
                .publish(
                    &topic,
                    message.key().unwrap_or_default(),
                    &payload[..keep],
                    &headers,
                    Instant::now() + DLQ_TIMEOUT,
                )
                .await;
            match published {
                Ok(_) => return true,
                Err(PublishError::TooLarge) => {
                    let Some(smaller) = TRUNCATED_SIZES.into_iter().find(|s| *s < keep) else {
                        tracing::error!(
                            topic = message.topic(),
                            partition = message.partition(),
                            offset = message.offset(),
                            "the dead-letter topic refuses even an empty event; skipping it"
                        );
                        return true;
                    };
                    keep = smaller;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "dead-letter publish failed");
                    if !pause(backoff, shutdown).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
