//! `govlink rebuild --cases`: puts the case store back from the case topic, where every
//! event of every case is kept forever. Each case's history is read in full, checked
//! (sequence numbers from 1 without gaps; an event repeated by a retried publish must be
//! identical), folded into its view and written back with its history; the case is
//! indexed again, and the tasks of its open steps are kept for their agencies again
//! (sent once more to agency systems that had acknowledged them: acknowledgements are
//! not on the topic).
//!
//! A view already as new as its history, or newer, is kept: a running engine may have
//! moved the case on. But an engine that gets a command for a case not yet put back
//! refuses it as unknown, so stop the case engines while this runs.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio::time::{Instant, timeout};

use crate::app::{AppError, Kafka, Role};
use crate::cases::case;
use crate::cases::engine::task_for;
use crate::cases::store::CaseStore;
use crate::config::Settings;
use crate::kafka::Brokers;
use crate::proto::{Case, CaseEvent, StepState};

/// Once every partition has been read to the end its broker reports, reading goes on
/// until nothing more arrives for this long (a broker may report ends short of the last
/// event).
const IDLE: Duration = Duration::from_secs(2);
/// How long metadata and watermarks may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What a case rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseRebuildReport {
    /// Events read from the case topic (repeats included).
    pub events: u64,
    /// Cases found on the topic.
    pub cases: usize,
    /// Cases whose view was put back (missing or older in the store).
    pub restored: usize,
    /// Cases the store already had as new as their history.
    pub current: usize,
    /// Tasks of open steps kept for their agencies again.
    pub tasks: usize,
    /// Cases whose history is not whole: (case id, what is wrong). Not written.
    pub broken: Vec<(String, String)>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Rebuilds the case store of `settings` from the case topic; `progress(events read)`
/// is called as it reads.
pub async fn rebuild(
    settings: &Settings,
    mut progress: impl FnMut(u64),
) -> Result<CaseRebuildReport, AppError> {
    let started = Instant::now();
    let link = settings.redis_link().ok_or_else(|| {
        AppError::Config("the case store is in Redis: set --redis or GOVLINK_REDIS".into())
    })?;
    let kafka = Kafka::connect(settings, Role::Cases).await?;
    let store = CaseStore::connect(&link, &settings.redis_prefix).await?;
    let mut report = CaseRebuildReport::default();
    let histories = read_histories(&kafka, &mut report, &mut progress).await?;
    report.cases = histories.len();
    for (case_id, events) in histories {
        let (case, history) = match fold(&case_id, events) {
            Ok(folded) => folded,
            Err(why) => {
                tracing::error!(case_id, why, "case history not whole; case not rebuilt");
                report.broken.push((case_id, why));
                continue;
            }
        };
        let failed = |e| AppError::Config(format!("case store: {e}"));
        if store.restore(&case, &history).await.map_err(failed)? {
            report.restored += 1;
            for step in case.steps.iter().filter(|s| {
                !s.task_id.is_empty() && matches!(s.state(), StepState::Open | StepState::Rejected)
            }) {
                store
                    .add_task(&task_for(&case, step))
                    .await
                    .map_err(failed)?;
                report.tasks += 1;
            }
        } else {
            report.current += 1;
        }
        store.index(&case).await.map_err(failed)?;
    }
    // Every case on the topic is listed in this code's layout now; a store an older
    // govlink wrote is marked so (after listing any case it had that the topic lacks).
    store
        .relist()
        .await
        .map_err(|e| AppError::Config(format!("case store: {e}")))?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Every event on the case topic, by case and sequence; a sequence seen twice with
/// different events marks the case broken.
async fn read_histories(
    kafka: &Kafka,
    report: &mut CaseRebuildReport,
    progress: &mut impl FnMut(u64),
) -> Result<BTreeMap<String, Vec<CaseEvent>>, AppError> {
    let topic = kafka.topics.cases();
    let ends = ends(&kafka.brokers, &topic).await?;
    let consumer: StreamConsumer = crate::kafka::client_config(&kafka.brokers, "govlink-rebuild")
        .set("group.id", "govlink-case-rebuild")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in ends.keys() {
        assignment.add_partition_offset(&topic, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut reached: BTreeMap<i32, i64> = BTreeMap::new();
    let mut histories: BTreeMap<String, Vec<CaseEvent>> = BTreeMap::new();
    loop {
        let all_reached = ends
            .iter()
            .all(|(p, end)| reached.get(p).is_some_and(|r| r + 1 >= *end) || *end == 0);
        // Until the reported ends, wait as long as a slow broker may take; after them,
        // only until the topic is quiet.
        let wait = if all_reached {
            IDLE
        } else {
            METADATA_TIMEOUT * 3
        };
        let message = match timeout(wait, consumer.recv()).await {
            Ok(message) => message?,
            Err(_) if all_reached => break,
            Err(_) => {
                return Err(AppError::Config(format!(
                    "the case topic {topic} stopped delivering before its end ({wait:?} without an event)"
                )));
            }
        };
        reached.insert(message.partition(), message.offset());
        report.events += 1;
        progress(report.events);
        let Some(Ok(event)) = message.payload().map(CaseEvent::decode) else {
            tracing::error!(
                partition = message.partition(),
                offset = message.offset(),
                "not a case event; skipped"
            );
            continue;
        };
        histories
            .entry(event.case_id.clone())
            .or_default()
            .push(event);
    }
    Ok(histories)
}

/// The end offset of every partition of `topic`, as its broker reports it.
async fn ends(brokers: &Brokers, topic: &str) -> Result<BTreeMap<i32, i64>, AppError> {
    let (brokers, topic) = (brokers.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer =
            crate::kafka::client_config(&brokers, "govlink-rebuild").create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
        let mut ends = BTreeMap::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                let (_, high) = consumer.fetch_watermarks(&topic, p.id(), METADATA_TIMEOUT)?;
                ends.insert(p.id(), high);
            }
        }
        Ok(ends)
    })
    .await
    .map_err(|e| AppError::Config(format!("reading the case topic's ends: {e}")))?
}

/// A case's events, in order and once each, folded into its view; or what is wrong with
/// them.
fn fold(case_id: &str, mut events: Vec<CaseEvent>) -> Result<(Case, Vec<CaseEvent>), String> {
    events.sort_by_key(|e| e.sequence);
    let mut history: Vec<CaseEvent> = Vec::with_capacity(events.len());
    for e in events {
        match history.last() {
            Some(last) if last.sequence == e.sequence && *last == e => {}
            Some(last) if last.sequence == e.sequence => {
                return Err(format!("two different events with sequence {}", e.sequence));
            }
            _ => history.push(e),
        }
    }
    for (expected, e) in (1..).zip(&history) {
        if e.sequence != expected {
            return Err(format!(
                "event {expected} is missing (next is {})",
                e.sequence
            ));
        }
    }
    let case = history
        .iter()
        .fold(None, |case, e| Some(case::apply(case, e)))
        .ok_or_else(|| format!("case {case_id} has no events"))?;
    Ok((case, history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{CaseCancelled, CaseOpened, case_event::Body};

    fn event(sequence: u64, body: Body) -> CaseEvent {
        CaseEvent {
            case_id: "c".into(),
            sequence,
            body: Some(body),
            ..Default::default()
        }
    }

    fn opened() -> Body {
        Body::Opened(CaseOpened::default())
    }

    fn cancelled(reason: &str) -> Body {
        Body::Cancelled(CaseCancelled {
            reason: reason.into(),
            by: String::new(),
        })
    }

    #[test]
    fn a_history_folds_in_order_with_identical_repeats_dropped() {
        let events = vec![
            event(2, cancelled("moved away")),
            event(1, opened()),
            event(2, cancelled("moved away")),
        ];
        let (case, history) = fold("c", events).unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(case.sequence, 2);
        assert_eq!(case.state(), crate::proto::CaseState::Cancelled);
    }

    #[test]
    fn a_gap_or_a_conflicting_repeat_is_named() {
        let gap = fold("c", vec![event(1, opened()), event(3, cancelled("x"))]);
        assert_eq!(gap.unwrap_err(), "event 2 is missing (next is 3)");
        let conflict = fold(
            "c",
            vec![
                event(1, opened()),
                event(2, cancelled("x")),
                event(2, cancelled("y")),
            ],
        );
        assert_eq!(
            conflict.unwrap_err(),
            "two different events with sequence 2"
        );
        let late_start = fold("c", vec![event(2, cancelled("x"))]);
        assert_eq!(late_start.unwrap_err(), "event 1 is missing (next is 2)");
    }
}
