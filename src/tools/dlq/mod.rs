//! `govlink dlq list|replay`: the dead letters (events the materializer could not use) and
//! sending them back to their record topic once the cause is fixed.
//!
//! A replay sends a letter's original key and bytes to the record topic it came from, so
//! the resolvers materialize it like any event. Sending a letter twice is harmless: the
//! store keeps the highest version of each record and ignores a version it already has.
//! Still, each replay goes on where the last one stopped: how far it got is committed per
//! reason kind in the consumer group `<consumer_group>.dlq-replay.<kind>`, so a replay of
//! one kind (`--reason`) neither skips nor repeats letters of another. A dry run sends
//! nothing and moves no position. A replay sends the letters that were on the topic when
//! it started: a letter whose cause is not fixed comes back to the dead-letter topic as a
//! new letter, marked with its lineage, and is held (see [`lineage`]): only `--again`
//! sends it, once per original, going on where the last `--again` stopped
//! (`<consumer_group>.dlq-replay-again.<kind>`).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use rdkafka::message::{Message, OwnedMessage};
use serde_json::json;

use super::decode::{self, DeadLetter, TopicKind};
use super::read::{self, Reader, Until};
use super::topics::{brokers, topic_marks, write_table};
use crate::config::Settings;
use crate::kafka::{Brokers, Topics};
use crate::resolver::dead_letter::DeadLetterKind;

pub mod lineage;
mod replay;

use lineage::{Entry, Status};
pub use replay::{ReplayOptions, ReplayReport, replay};

/// Header on a replayed event: the dead letter it came from (`topic/partition/offset`).
pub const REPLAYED_FROM_HEADER: &str = "govlink-replayed-from";
/// How long one replayed event may wait for the broker.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Replayed events awaiting their acknowledgement before the replay waits for them.
const IN_FLIGHT: usize = 256;

/// Dead letters by reason kind.
pub type Counts = BTreeMap<DeadLetterKind, u64>;

/// Where each reason kind's replays got, per dead-letter partition (`None`: never).
type ReplayPositions = BTreeMap<DeadLetterKind, BTreeMap<i32, Option<i64>>>;

/// The dead-letter topic and the replay positions.
struct Letters {
    brokers: Brokers,
    topic: String,
    topics: Topics,
    marks: read::Watermarks,
    /// How far replays got, for every kind (a letter's status depends on them).
    positions: ReplayPositions,
    /// How far `--again` replays got, for the kinds replayed with `--again`.
    again: ReplayPositions,
}

impl Letters {
    /// The letters of `settings`, with the `--again` positions of `again_kinds`.
    async fn open(settings: &Settings, again_kinds: &[DeadLetterKind]) -> anyhow::Result<Letters> {
        let brokers = brokers(settings).await?;
        let topics = Topics::new(settings.topic_prefix.clone());
        let topic = topics.dlq();
        let marks = topic_marks(&brokers, &topic).await?;
        let partitions: Vec<i32> = marks.keys().copied().collect();
        let committed = |group: String| {
            let (brokers, topic, partitions) = (&brokers, &topic, partitions.clone());
            async move {
                read::committed(brokers, &group, topic, partitions)
                    .await
                    .with_context(|| format!("reading the replay position of {group}"))
            }
        };
        let mut positions = ReplayPositions::new();
        for kind in DeadLetterKind::ALL {
            let group = crate::kafka::Groups::new(settings.consumer_group.clone()).dlq_replay(kind);
            positions.insert(kind, committed(group).await?);
        }
        let mut again = ReplayPositions::new();
        for &kind in again_kinds {
            let group =
                crate::kafka::Groups::new(settings.consumer_group.clone()).dlq_replay_again(kind);
            again.insert(kind, committed(group).await?);
        }
        Ok(Letters {
            brokers,
            topic,
            topics,
            marks,
            positions,
            again,
        })
    }

    /// Whether a replay of `positions` already went past `entry`.
    fn passed(positions: &ReplayPositions, entry: &Entry) -> bool {
        positions
            .get(&entry.letter.kind)
            .and_then(|p| p.get(&entry.partition).copied().flatten())
            .is_some_and(|position| entry.offset < position)
    }

    /// Reads every letter from the beginning until `until`, handing each to `each`;
    /// returns the letters judged (partitions in order, each by offset) and how far it
    /// read.
    async fn read_all(
        &self,
        until: Until,
        mut each: impl FnMut(&OwnedMessage, &Entry) -> anyhow::Result<()>,
    ) -> anyhow::Result<(Vec<Entry>, BTreeMap<i32, i64>)> {
        let mut reader = Reader::open(
            &self.brokers,
            &self.topic,
            &self.marks,
            |_, low, _| low,
            until,
        )?;
        let mut entries = Vec::new();
        while let Some(message) = reader.next().await? {
            let letter = DeadLetter::of(&message);
            let destination = destination(&letter, &self.topics).map(str::to_owned);
            let entry = Entry {
                partition: message.partition(),
                offset: message.offset(),
                letter,
                destination,
            };
            each(&message, &entry)?;
            entries.push(entry);
        }
        // Partitions are read interleaved: judge them in a fixed order.
        entries.sort_by_key(|e| (e.partition, e.offset));
        Ok((entries, reader.positions()))
    }
}

/// Prints every dead letter (of `reason` only, if given) with its reason, origin, time,
/// lineage and status (whether a replay sent it, sends it, holds it), then the count by
/// reason; JSON lines when `json` (the letter decoded, identifiers masked, then a summary
/// line). Returns the counts.
pub async fn list(
    settings: &Settings,
    reason: Option<DeadLetterKind>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Counts> {
    let letters = Letters::open(settings, &[]).await?;
    // Shown once every letter is judged: a letter's status depends on later ones.
    let mut shown = BTreeMap::new();
    let (entries, _) = letters
        .read_all(Until::End, |message, entry| {
            if reason.is_none_or(|r| r == entry.letter.kind) {
                let line = if json {
                    Shown::Json(decode::message_json(TopicKind::DeadLetters, message, false))
                } else {
                    Shown::Row {
                        time: decode::timestamp(message).unwrap_or_else(|| "-".into()),
                    }
                };
                shown.insert((entry.partition, entry.offset), line);
            }
            Ok(())
        })
        .await?;
    let statuses = lineage::plan(&entries, |e| Letters::passed(&letters.positions, e));
    let mut counts = Counts::new();
    let mut rows = vec![
        [
            "LETTER", "TIME", "REASON", "ORIGINAL", "REPLAYS", "STATUS", "DETAIL",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (entry, status) in entries.iter().zip(statuses) {
        let Some(line) = shown.remove(&(entry.partition, entry.offset)) else {
            continue;
        };
        let letter = &entry.letter;
        *counts.entry(letter.kind).or_default() += 1;
        match line {
            Shown::Json(mut value) => {
                value["replayed"] = (status == Status::Sent).into();
                value["status"] = status.as_str().into();
                writeln!(out, "{value}")?;
            }
            Shown::Row { time } => rows.push(vec![
                format!("{}/{}", entry.partition, entry.offset),
                time,
                letter.kind.to_string(),
                letter.original().unwrap_or_else(|| origin(letter)),
                letter.replays.to_string(),
                status.as_str().into(),
                letter.reason.clone(),
            ]),
        }
    }
    let total: u64 = counts.values().sum();
    if json {
        let by_reason: BTreeMap<&str, u64> = counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        writeln!(out, "{}", json!({ "total": total, "by_reason": by_reason }))?;
    } else {
        if total > 0 {
            write_table(out, &rows)?;
        }
        writeln!(out, "{total} dead letter(s){}", by_reason(&counts))?;
    }
    Ok(counts)
}

/// A letter as `list` prints it, kept until every letter is judged.
enum Shown {
    /// The letter decoded (identifiers masked).
    Json(serde_json::Value),
    /// A table row's part that only the message holds.
    Row { time: String },
}

/// `topic/partition/offset` of a letter's original, as far as its headers say.
fn origin(letter: &DeadLetter) -> String {
    let part = |v: Option<String>| v.unwrap_or_else(|| "?".into());
    format!(
        "{}/{}/{}",
        part(letter.topic.clone()),
        part(letter.partition.map(|p| p.to_string())),
        part(letter.offset.map(|o| o.to_string())),
    )
}

/// `: kind n, kind n` for non-empty counts.
fn by_reason(counts: &Counts) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!(": {}", parts.join(", "))
}

/// Why a dead letter cannot be sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotReplayable {
    /// It holds only the start of the event (the broker refused the whole one).
    Truncated,
    /// Its headers name no record topic of this deployment.
    NoRecordTopic,
}

impl std::fmt::Display for NotReplayable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotReplayable::Truncated => "truncated: the letter holds only the start of the event",
            NotReplayable::NoRecordTopic => {
                "no origin: its headers name no record topic of this deployment"
            }
        })
    }
}

/// The record topic a letter goes back to, or why it cannot go back.
fn destination<'l>(letter: &'l DeadLetter, topics: &Topics) -> Result<&'l str, NotReplayable> {
    let original = letter
        .topic
        .as_deref()
        .filter(|t| topics.agency_of(t).is_some());
    match (original, letter.truncated_from) {
        (_, Some(_)) => Err(NotReplayable::Truncated),
        (None, None) => Err(NotReplayable::NoRecordTopic),
        (Some(topic), None) => Ok(topic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_groups_are_per_reason() {
        assert_eq!(
            crate::kafka::Groups::new("govlink-resolver").dlq_replay(DeadLetterKind::StoreRefused),
            "govlink-resolver.dlq-replay.store-refused"
        );
        assert_eq!(
            crate::kafka::Groups::new("govlink-resolver").dlq_replay_again(DeadLetterKind::Invalid),
            "govlink-resolver.dlq-replay-again.invalid"
        );
    }

    #[test]
    fn counts_read_by_reason() {
        let counts = Counts::from([
            (DeadLetterKind::Undecodable, 2),
            (DeadLetterKind::StoreRefused, 1),
        ]);
        assert_eq!(by_reason(&counts), ": undecodable 2, store-refused 1");
        assert_eq!(by_reason(&Counts::new()), "");
    }
}
