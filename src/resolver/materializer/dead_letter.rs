//! The dead-letter topic: events the materializer cannot use, kept with their reason and
//! origin so an operator can look at them, without ever stopping consumption.
//!
//! A dead letter is the original key and bytes with these headers: the reason (free
//! text, starting with one of the phrases of [`DeadLetterKind`]), the topic, partition
//! and offset of the original, and, when the broker refused the whole event, the length
//! it had. An event `govlink dlq replay` sent back carries its lineage (where the first
//! letter's event was read, and how many replays it went through); a letter made of it
//! carries the lineage on, so a replay can tell a letter that failed again from a new one.

use rdkafka::message::{Message, OwnedMessage};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Materializer;
use crate::kafka::PublishError;
use crate::kafka::consume::{FIRST_BACKOFF, next_backoff, pause};
use crate::telemetry::events::DeadLettered;

/// How long one dead-letter publish may wait for the broker before it is retried.
const DLQ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest reason kept in a header.
const MAX_REASON: usize = 1024;
/// What is kept of a payload the broker refused as too large: a prefix, then nothing.
const TRUNCATED_SIZES: [usize; 2] = [64 * 1024, 0];

/// Header: why the event could not be used (free text, see [`DeadLetterKind`]).
pub const REASON_HEADER: &str = "govlink-dlq-reason";
/// Header: the record topic the event was read from.
pub const TOPIC_HEADER: &str = "govlink-dlq-topic";
/// Header: its partition there.
pub const PARTITION_HEADER: &str = "govlink-dlq-partition";
/// Header: its offset there.
pub const OFFSET_HEADER: &str = "govlink-dlq-offset";
/// Header, only on a dead letter that holds a prefix of the event: the event's length.
pub const TRUNCATED_FROM_HEADER: &str = "govlink-dlq-truncated-from";
/// Lineage header, on a replayed event and on a letter made of one: where the event the
/// first letter was made of was read (`topic/partition/offset`).
pub const REPLAY_ORIGINAL_HEADER: &str = "govlink-replay-original";
/// Lineage header, with [`REPLAY_ORIGINAL_HEADER`]: how many replays the event went
/// through.
pub const REPLAY_COUNT_HEADER: &str = "govlink-replay-count";
/// The lineage headers a dead letter carries on from the event it is made of.
const LINEAGE_HEADERS: [&str; 2] = [REPLAY_ORIGINAL_HEADER, REPLAY_COUNT_HEADER];

/// The opening phrases of the reasons the materializer writes, one kind each; the rest of
/// a reason is the detail (a decode error, the violated rules, the store's error).
pub(super) const NOT_A_RECORD_TOPIC: &str = "not a record topic";
pub(super) const EMPTY_MESSAGE: &str = "empty message";
pub(super) const NOT_A_RECORD_EVENT: &str = "not a RecordEvent";
pub(super) const INVALID_EVENT: &str = "invalid event";
pub(super) const WRONG_KEY: &str = "message key is not the record key";
pub(super) const STORE_REFUSED: &str = "the store refused the record";

/// What kind of problem sent an event to the dead-letter topic, read from its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeadLetterKind {
    /// Empty, or not a `RecordEvent` at all: the bytes themselves are the problem.
    Undecodable,
    /// A `RecordEvent` that breaks a rule of the contract (the violations follow).
    Invalid,
    /// The message key is not the event's record key.
    WrongKey,
    /// Read from a topic that is not one of the record topics.
    NotARecordTopic,
    /// The store refused the write for good (e.g. a key of the wrong type in Redis).
    StoreRefused,
    /// A reason none of the above begins (written by another version of govlink).
    Other,
}

impl DeadLetterKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [DeadLetterKind; 6] = [
        DeadLetterKind::Undecodable,
        DeadLetterKind::Invalid,
        DeadLetterKind::WrongKey,
        DeadLetterKind::NotARecordTopic,
        DeadLetterKind::StoreRefused,
        DeadLetterKind::Other,
    ];

    /// The kind's name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Undecodable => "undecodable",
            DeadLetterKind::Invalid => "invalid",
            DeadLetterKind::WrongKey => "wrong-key",
            DeadLetterKind::NotARecordTopic => "not-a-record-topic",
            DeadLetterKind::StoreRefused => "store-refused",
            DeadLetterKind::Other => "other",
        }
    }

    /// The phrases a reason of this kind begins with.
    fn phrases(self) -> &'static [&'static str] {
        match self {
            DeadLetterKind::Undecodable => &[EMPTY_MESSAGE, NOT_A_RECORD_EVENT],
            DeadLetterKind::Invalid => &[INVALID_EVENT],
            DeadLetterKind::WrongKey => &[WRONG_KEY],
            DeadLetterKind::NotARecordTopic => &[NOT_A_RECORD_TOPIC],
            DeadLetterKind::StoreRefused => &[STORE_REFUSED],
            DeadLetterKind::Other => &[],
        }
    }

    /// The kind of a reason header.
    pub fn of_reason(reason: &str) -> DeadLetterKind {
        DeadLetterKind::ALL
            .into_iter()
            .find(|kind| kind.phrases().iter().any(|p| reason.starts_with(p)))
            .unwrap_or(DeadLetterKind::Other)
    }
}

impl std::fmt::Display for DeadLetterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeadLetterKind {
    type Err = String;

    fn from_str(name: &str) -> Result<DeadLetterKind, String> {
        DeadLetterKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = DeadLetterKind::ALL.map(DeadLetterKind::as_str).to_vec();
                format!(
                    "no dead-letter reason {name:?}; the reasons are {}",
                    names.join(", ")
                )
            })
    }
}

impl Materializer {
    /// Publishes a message to the dead-letter topic, retrying while the broker is
    /// unavailable. A message the broker refuses as too large is sent again truncated
    /// (its origin headers say where the whole one is). False on shutdown.
    pub(super) async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        self.telemetry.emit(DeadLettered {
            kind: DeadLetterKind::of_reason(reason).as_str(),
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
        let lineage = lineage(message);
        let mut keep = payload.len();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut headers = vec![
                (REASON_HEADER, reason.as_bytes()),
                (TOPIC_HEADER, message.topic().as_bytes()),
                (PARTITION_HEADER, partition.as_bytes()),
                (OFFSET_HEADER, offset.as_bytes()),
            ];
            headers.extend(lineage.iter().copied());
            if keep < payload.len() {
                headers.push((TRUNCATED_FROM_HEADER, length.as_bytes()));
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
                    backoff = next_backoff(backoff);
                }
            }
        }
    }
}

/// The lineage headers of a replayed event (none on an event no replay sent).
fn lineage(message: &OwnedMessage) -> Vec<(&'static str, &[u8])> {
    use rdkafka::message::Headers;
    let Some(headers) = message.headers() else {
        return Vec::new();
    };
    LINEAGE_HEADERS
        .into_iter()
        .filter_map(|name| {
            let value = headers.iter().find(|h| h.key == name)?.value?;
            Some((name, value))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_classified_by_their_opening_phrase() {
        let cases = [
            ("empty message", DeadLetterKind::Undecodable),
            (
                "not a RecordEvent: failed to decode Protobuf message",
                DeadLetterKind::Undecodable,
            ),
            (
                "invalid event: payload.person_id: must be 18 characters",
                DeadLetterKind::Invalid,
            ),
            (
                "message key is not the record key",
                DeadLetterKind::WrongKey,
            ),
            ("not a record topic", DeadLetterKind::NotARecordTopic),
            (
                "the store refused the record: WRONGTYPE",
                DeadLetterKind::StoreRefused,
            ),
            ("something else", DeadLetterKind::Other),
            ("", DeadLetterKind::Other),
        ];
        for (reason, kind) in cases {
            assert_eq!(DeadLetterKind::of_reason(reason), kind, "{reason:?}");
        }
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in DeadLetterKind::ALL {
            assert_eq!(kind.as_str().parse::<DeadLetterKind>(), Ok(kind));
        }
        let err = "bogus".parse::<DeadLetterKind>().unwrap_err();
        assert!(err.contains("store-refused"), "{err}");
    }
}
