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
//! new letter, left for the next replay.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use rdkafka::message::{Message, OwnedMessage};
use serde_json::json;
use tokio::time::Instant;

use super::decode::{self, DeadLetter, TopicKind};
use super::read::{self, Reader, Until};
use super::topics::{brokers, topic_marks, write_table};
use crate::config::Settings;
use crate::kafka::{Brokers, Enqueued, Publisher, Topics};
use crate::resolver::dead_letter::DeadLetterKind;

/// Header on a replayed event: the dead letter it came from (`topic/partition/offset`).
pub const REPLAYED_FROM_HEADER: &str = "govlink-replayed-from";
/// How long one replayed event may wait for the broker.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Replayed events awaiting their acknowledgement before the replay waits for them.
const IN_FLIGHT: usize = 256;

/// The consumer group holding how far replays of dead letters of `kind` got.
pub fn replay_group(consumer_group: &str, kind: DeadLetterKind) -> String {
    format!("{consumer_group}.dlq-replay.{kind}")
}

/// Dead letters by reason kind.
pub type Counts = BTreeMap<DeadLetterKind, u64>;

/// Where each reason kind's replays got, per dead-letter partition (`None`: never).
type ReplayPositions = BTreeMap<DeadLetterKind, BTreeMap<i32, Option<i64>>>;

/// The dead-letter topic and the replay positions of `kinds`.
struct Letters {
    brokers: Brokers,
    topic: String,
    marks: read::Watermarks,
    positions: ReplayPositions,
}

impl Letters {
    async fn open(settings: &Settings, kinds: &[DeadLetterKind]) -> anyhow::Result<Letters> {
        let brokers = brokers(settings).await?;
        let topic = Topics::new(settings.topic_prefix.clone()).dlq();
        let marks = topic_marks(&brokers, &topic).await?;
        let mut positions = ReplayPositions::new();
        for &kind in kinds {
            let group = replay_group(&settings.consumer_group, kind);
            let committed =
                read::committed(&brokers, &group, &topic, marks.keys().copied().collect())
                    .await
                    .with_context(|| format!("reading the replay position of {group}"))?;
            positions.insert(kind, committed);
        }
        Ok(Letters {
            brokers,
            topic,
            marks,
            positions,
        })
    }

    /// Whether a replay of its kind already went past `message`.
    fn replayed(&self, kind: DeadLetterKind, message: &OwnedMessage) -> bool {
        self.positions
            .get(&kind)
            .and_then(|p| p.get(&message.partition()).copied().flatten())
            .is_some_and(|position| message.offset() < position)
    }
}

/// Prints every dead letter (of `reason` only, if given) with its reason, origin, time and
/// whether a replay sent it already, then the count by reason; JSON lines when `json`
/// (the letter decoded, identifiers masked, then a summary line). Returns the counts.
pub async fn list(
    settings: &Settings,
    reason: Option<DeadLetterKind>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Counts> {
    let letters = Letters::open(settings, &DeadLetterKind::ALL).await?;
    let mut reader = Reader::open(
        &letters.brokers,
        &letters.topic,
        &letters.marks,
        |_, low, _| low,
        Until::End,
    )?;
    let mut counts = Counts::new();
    let mut rows = vec![
        ["LETTER", "TIME", "REASON", "ORIGINAL", "REPLAYED", "DETAIL"]
            .map(String::from)
            .to_vec(),
    ];
    while let Some(message) = reader.next().await? {
        let letter = DeadLetter::of(&message);
        if reason.is_some_and(|r| r != letter.kind) {
            continue;
        }
        *counts.entry(letter.kind).or_default() += 1;
        let replayed = letters.replayed(letter.kind, &message);
        if json {
            let mut value = decode::message_json(TopicKind::DeadLetters, &message, false);
            value["replayed"] = replayed.into();
            writeln!(out, "{value}")?;
        } else {
            rows.push(vec![
                format!("{}/{}", message.partition(), message.offset()),
                decode::timestamp(&message).unwrap_or_else(|| "-".into()),
                letter.kind.to_string(),
                origin(&letter),
                if replayed { "yes" } else { "no" }.into(),
                letter.reason.clone(),
            ]);
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

/// What a replay did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Letters sent back (a dry run: that would be), by reason.
    pub replayed: Counts,
    /// Letters that cannot be sent back, by why.
    pub not_replayable: BTreeMap<NotReplayable, u64>,
    /// Whether it was a dry run.
    pub dry_run: bool,
}

impl ReplayReport {
    /// How many letters were (or would be) sent back.
    pub fn total(&self) -> u64 {
        self.replayed.values().sum()
    }
}

/// Sends the dead letters no earlier replay sent (of `reason` only, if given) back to
/// their record topics, then commits how far it got per reason; with `dry_run`, only
/// counts them. Prints and returns what it did.
pub async fn replay(
    settings: &Settings,
    reason: Option<DeadLetterKind>,
    dry_run: bool,
    out: &mut impl Write,
) -> anyhow::Result<ReplayReport> {
    let kinds: Vec<DeadLetterKind> = match reason {
        Some(kind) => vec![kind],
        None => DeadLetterKind::ALL.to_vec(),
    };
    let letters = Letters::open(settings, &kinds).await?;
    let topics = Topics::new(settings.topic_prefix.clone());
    // From the earliest position of the kinds replayed: letters before it were sent by
    // every one of them already.
    let start = |partition: i32, low: i64, _| {
        letters
            .positions
            .values()
            .map(|p| p.get(&partition).copied().flatten().unwrap_or(low))
            .min()
            .unwrap_or(low)
    };
    let mut reader = Reader::open(
        &letters.brokers,
        &letters.topic,
        &letters.marks,
        start,
        // Letters whose cause is not fixed come back while it runs: they are for the
        // next replay, or this one would never end.
        Until::Opened,
    )?;
    let publisher = if dry_run {
        None
    } else {
        Some(Publisher::new(
            &letters.brokers,
            PUBLISH_TIMEOUT,
            settings.max_in_flight,
        )?)
    };
    let mut report = ReplayReport {
        dry_run,
        ..ReplayReport::default()
    };
    let mut pending: Vec<Enqueued> = Vec::new();
    while let Some(message) = reader.next().await? {
        let letter = DeadLetter::of(&message);
        if !kinds.contains(&letter.kind) || letters.replayed(letter.kind, &message) {
            continue;
        }
        let topic = match destination(&letter, &topics) {
            Ok(topic) => topic,
            Err(why) => {
                *report.not_replayable.entry(why).or_default() += 1;
                continue;
            }
        };
        *report.replayed.entry(letter.kind).or_default() += 1;
        let Some(publisher) = &publisher else {
            continue;
        };
        let from = format!(
            "{}/{}/{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        let enqueued = publisher
            .enqueue(
                topic,
                message.key().unwrap_or_default(),
                message.payload().unwrap_or_default(),
                &[(REPLAYED_FROM_HEADER, from.as_bytes())],
                Instant::now() + PUBLISH_TIMEOUT,
            )
            .await
            .with_context(|| not_moved(&report, &from))?;
        pending.push(enqueued);
        if pending.len() >= IN_FLIGHT {
            acknowledged(&mut pending, &report).await?;
        }
    }
    acknowledged(&mut pending, &report).await?;
    if !dry_run {
        commit_positions(settings, &letters, &kinds, reader.positions()).await?;
    }
    print_replay(&report, out)?;
    Ok(report)
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

/// Commits how far the replay read, for each of the `kinds` it replayed.
async fn commit_positions(
    settings: &Settings,
    letters: &Letters,
    kinds: &[DeadLetterKind],
    positions: BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    for &kind in kinds {
        let group = replay_group(&settings.consumer_group, kind);
        read::commit(&letters.brokers, &group, &letters.topic, positions.clone())
            .await
            .with_context(|| {
                format!(
                    "the letters were sent but the replay position of {group} was not \
                     committed: the next replay sends them again (harmless, the store \
                     keeps the highest version)"
                )
            })?;
    }
    Ok(())
}

/// Waits for every pending replayed event to be acknowledged.
async fn acknowledged(pending: &mut Vec<Enqueued>, report: &ReplayReport) -> anyhow::Result<()> {
    for enqueued in pending.drain(..) {
        enqueued
            .ack(Instant::now() + PUBLISH_TIMEOUT)
            .await
            .with_context(|| not_moved(report, "a letter"))?;
    }
    Ok(())
}

/// What a failed replay leaves behind.
fn not_moved(report: &ReplayReport, what: &str) -> String {
    format!(
        "replaying {what} failed after {} letter(s); the replay position was not moved, so the \
         next replay sends them again (harmless: the store keeps the highest version)",
        report.total()
    )
}

fn print_replay(report: &ReplayReport, out: &mut impl Write) -> std::io::Result<()> {
    let total = report.total();
    if report.dry_run {
        writeln!(
            out,
            "dry run: would replay {total} dead letter(s){}; nothing sent, replay position not moved",
            by_reason(&report.replayed)
        )?;
    } else {
        writeln!(
            out,
            "replayed {total} dead letter(s){}",
            by_reason(&report.replayed)
        )?;
    }
    for (why, n) in &report.not_replayable {
        writeln!(out, "not replayable: {n} ({why})")?;
    }
    if total > 0 && !report.dry_run {
        writeln!(
            out,
            "the resolvers materialize them as they come; a version the store already has is \
             ignored, and a letter whose cause is not fixed comes back to the dead-letter topic"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_groups_are_per_reason() {
        assert_eq!(
            replay_group("govlink-resolver", DeadLetterKind::StoreRefused),
            "govlink-resolver.dlq-replay.store-refused"
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
