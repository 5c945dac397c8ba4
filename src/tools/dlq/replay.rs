//! `govlink dlq replay`: which letters go back (see [`super::lineage`]), sending them
//! with their lineage, and remembering how far it got.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use anyhow::Context;
use rdkafka::message::Message;
use tokio::time::Instant;

use super::lineage::{self, Entry, Status};
use super::{
    Counts, IN_FLIGHT, Letters, NotReplayable, PUBLISH_TIMEOUT, REPLAYED_FROM_HEADER, by_reason,
};
use crate::config::Settings;
use crate::kafka::{Enqueued, Publisher};
use crate::resolver::dead_letter::{DeadLetterKind, REPLAY_COUNT_HEADER, REPLAY_ORIGINAL_HEADER};
use crate::tools::read::{self, Reader, Until};

/// What `dlq replay` sends (the command's arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReplayOptions {
    /// Only letters of this reason (see `dlq list`).
    #[arg(long)]
    pub reason: Option<DeadLetterKind>,
    /// Count what would be sent; send nothing and keep the replay positions.
    #[arg(long)]
    pub dry_run: bool,
    /// Also send the held letters (their event was replayed before and failed again),
    /// once per original, that no `--again` sent yet.
    #[arg(long)]
    pub again: bool,
}

/// What a replay did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Letters sent back (a dry run: that would be), by reason.
    pub replayed: Counts,
    /// Letters that cannot be sent back, by why.
    pub not_replayable: BTreeMap<NotReplayable, u64>,
    /// Letters held since the last replay (their event was replayed before), not sent.
    pub held: u64,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Whether held letters were sent too (`--again`).
    pub again: bool,
}

impl ReplayReport {
    /// How many letters were (or would be) sent back.
    pub fn total(&self) -> u64 {
        self.replayed.values().sum()
    }
}

/// A letter a replay sends: where it goes, and the lineage its event carries.
struct Send {
    topic: String,
    original: Option<String>,
    replays: u32,
}

/// Sends the dead letters no earlier replay sent (of `options.reason` only, if given)
/// back to their record topics, then commits how far it got per reason; held letters are
/// sent only with `options.again`; with `options.dry_run`, only counts them. Prints and
/// returns what it did.
pub async fn replay(
    settings: &Settings,
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<ReplayReport> {
    let kinds: Vec<DeadLetterKind> = match options.reason {
        Some(kind) => vec![kind],
        None => DeadLetterKind::ALL.to_vec(),
    };
    let again_kinds = if options.again { &kinds[..] } else { &[] };
    let letters = Letters::open(settings, again_kinds).await?;
    // Letters whose cause is not fixed come back while it runs: they are for the next
    // replay, or this one would never end. Both reads end where the topic ended now.
    let (entries, read_to) = letters.read_all(Until::Opened, |_, _| Ok(())).await?;
    let (sends, report) = choose(&letters, &entries, &kinds, options);
    if !options.dry_run && !sends.is_empty() {
        send(settings, &letters, sends, &report).await?;
    }
    if !options.dry_run {
        commit_positions(settings, &letters, &kinds, options.again, read_to).await?;
    }
    print_replay(&report, out)?;
    Ok(report)
}

/// The letters a replay sends, by partition and offset, and its report.
fn choose(
    letters: &Letters,
    entries: &[Entry],
    kinds: &[DeadLetterKind],
    options: &ReplayOptions,
) -> (BTreeMap<(i32, i64), Send>, ReplayReport) {
    let statuses = lineage::plan(entries, |e| Letters::passed(&letters.positions, e));
    let replays = lineage::replays_by_original(entries);
    let mut report = ReplayReport {
        dry_run: options.dry_run,
        again: options.again,
        ..ReplayReport::default()
    };
    let mut sends = BTreeMap::new();
    // One letter per original: the event is the same bytes in each.
    let mut originals = HashSet::new();
    for (entry, status) in entries.iter().zip(statuses) {
        if !kinds.contains(&entry.letter.kind) {
            continue;
        }
        let new = !Letters::passed(&letters.positions, entry);
        let send = match status {
            Status::Sent => false,
            Status::Pending => true,
            Status::Held => {
                let again = options.again && !Letters::passed(&letters.again, entry);
                let original = entry.letter.original();
                let first = original.is_none_or(|o| originals.insert(o));
                if new && !(again && first) {
                    report.held += 1;
                }
                again && first
            }
            Status::NotReplayable(why) => {
                if new {
                    *report.not_replayable.entry(why).or_default() += 1;
                }
                false
            }
        };
        let Ok(topic) = &entry.destination else {
            continue;
        };
        if !send {
            continue;
        }
        let original = entry.letter.original();
        if status == Status::Pending
            && let Some(original) = &original
        {
            originals.insert(original.clone());
        }
        *report.replayed.entry(entry.letter.kind).or_default() += 1;
        let replays = original.as_ref().and_then(|o| replays.get(o)).copied();
        sends.insert(
            (entry.partition, entry.offset),
            Send {
                topic: topic.clone(),
                replays: replays.unwrap_or(entry.letter.replays) + 1,
                original,
            },
        );
    }
    (sends, report)
}

/// Reads the letters of `sends` again and sends each to its record topic, marked with
/// the letter it came from and its lineage; waits for the broker's acknowledgements.
async fn send(
    settings: &Settings,
    letters: &Letters,
    sends: BTreeMap<(i32, i64), Send>,
    report: &ReplayReport,
) -> anyhow::Result<()> {
    let first: BTreeMap<i32, i64> = sends.keys().fold(BTreeMap::new(), |mut first, &(p, o)| {
        first.entry(p).or_insert(o);
        first
    });
    let start = |partition: i32, _, high| first.get(&partition).copied().unwrap_or(high);
    let mut reader = Reader::open(
        &letters.brokers,
        &letters.topic,
        &letters.marks,
        start,
        Until::Opened,
    )?;
    let publisher = Publisher::new(&letters.brokers, PUBLISH_TIMEOUT, settings.max_in_flight)?;
    let mut pending: Vec<Enqueued> = Vec::new();
    let mut sent = 0;
    while let Some(message) = reader.next().await? {
        let Some(send) = sends.get(&(message.partition(), message.offset())) else {
            continue;
        };
        let from = format!(
            "{}/{}/{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        let replays = send.replays.to_string();
        let mut headers = vec![
            (REPLAYED_FROM_HEADER, from.as_bytes()),
            (REPLAY_COUNT_HEADER, replays.as_bytes()),
        ];
        if let Some(original) = &send.original {
            headers.push((REPLAY_ORIGINAL_HEADER, original.as_bytes()));
        }
        let enqueued = publisher
            .enqueue(
                &send.topic,
                message.key().unwrap_or_default(),
                message.payload().unwrap_or_default(),
                &headers,
                Instant::now() + PUBLISH_TIMEOUT,
            )
            .await
            .with_context(|| not_moved(sent, &from))?;
        pending.push(enqueued);
        sent += 1;
        if pending.len() >= IN_FLIGHT {
            acknowledged(&mut pending, sent).await?;
        }
    }
    acknowledged(&mut pending, sent).await?;
    anyhow::ensure!(
        sent == report.total(),
        "{}",
        not_moved(
            sent,
            &format!(
                "{} letter(s): the dead-letter topic no longer holds them",
                report.total() - sent
            )
        )
    );
    Ok(())
}

/// Commits how far the replay read, for each of the `kinds` it replayed (and how far
/// `--again` got, with `again`).
async fn commit_positions(
    settings: &Settings,
    letters: &Letters,
    kinds: &[DeadLetterKind],
    again: bool,
    positions: BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    for &kind in kinds {
        let names = crate::kafka::Groups::new(settings.consumer_group.clone());
        let mut groups = vec![names.dlq_replay(kind)];
        if again {
            groups.push(names.dlq_replay_again(kind));
        }
        for group in groups {
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
    }
    Ok(())
}

/// Waits for every pending replayed event to be acknowledged.
async fn acknowledged(pending: &mut Vec<Enqueued>, sent: u64) -> anyhow::Result<()> {
    for enqueued in pending.drain(..) {
        enqueued
            .ack(Instant::now() + PUBLISH_TIMEOUT)
            .await
            .with_context(|| not_moved(sent, "a letter"))?;
    }
    Ok(())
}

/// What a failed replay leaves behind.
fn not_moved(sent: u64, what: &str) -> String {
    format!(
        "replaying {what} failed after {sent} letter(s); the replay position was not moved, so \
         the next replay sends them again (harmless: the store keeps the highest version)"
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
    if report.held > 0 {
        writeln!(
            out,
            "held: {} (their event was replayed before and failed again; `--again` sends each \
             once more)",
            report.held
        )?;
    }
    if total > 0 && !report.dry_run {
        writeln!(
            out,
            "the resolvers materialize them as they come; a version the store already has is \
             ignored, and a letter whose cause is not fixed comes back to the dead-letter topic, \
             held"
        )?;
    }
    Ok(())
}
