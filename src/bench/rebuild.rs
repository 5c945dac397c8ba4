//! Rebuilding: `govlink rebuild` of the bench's store from its record topics (a new
//! generation, the store cleared, every topic materialized to its end offsets) against a
//! raw consumer of a new group reading every record topic from the beginning to the end.
//! Both are counted in records of the topics per second. The memory report
//! (`memory.rs`) comes with it, as notes. Needs Redis.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use tokio::time::timeout;

use super::env::{Env, delete_prefix, own_prefix};
use super::measure::{Samples, interleave};
use super::memory::{self, BYTES_PER_RECORD_TARGET, Memory, RSS_TARGET_MIB};
use super::people::{self, RECORDS_PER_PERSON};
use super::report::{Comparison, Side, Target};
use super::{BenchOptions, Scenario, progress};
use crate::kafka::{Brokers, client_config};
use crate::resolver::TimingsSnapshot;

/// A poll that stays empty this long after the first message ends a raw read of unknown
/// length.
const IDLE: Duration = Duration::from_secs(1);
/// The raw read fails if nothing at all comes for this long.
const STALL: Duration = Duration::from_secs(30);
/// The first person the rebuild seeds: far from those the lookups seed.
const SEEDED_FROM: u64 = 1_000_000;

/// `rebuild`.
pub(super) async fn run(env: &Env, options: &BenchOptions) -> anyhow::Result<Comparison> {
    let source = RawSource::of(env);
    let records = seeded_records(env, options, &source).await?;
    let (ours, theirs, timings) = rebuild_against_raw_read(env, options, source, records).await;
    let mut comparison = Comparison::new(
        Scenario::Rebuild.name(),
        Side::of("govlink rebuild", &ours),
        Side::of("raw consumer, new group", &theirs),
        Target {
            min_throughput_ratio: 0.7,
            p99_factor: None,
            p99_slack_ms: 0.0,
        },
    );
    comparison.breakdown = breakdown(&timings);
    comparison
        .notes
        .push(("records in the topics".into(), records as f64));
    let snapshots: Vec<TimingsSnapshot> = timings.iter().map(|(_, t)| *t).collect();
    comparison.notes.extend(read_by_rebuild(&snapshots));
    let memory = memory::measure(env, options.govlink_exe.as_deref()).await?;
    comparison.notes.extend(memory_notes(&memory));
    comparison.holds &= memory.holds();
    Ok(comparison)
}

/// The records in the bench's record topics, after seeding people of their own until
/// there are at least `options.records`.
async fn seeded_records(
    env: &Env,
    options: &BenchOptions,
    source: &RawSource,
) -> anyhow::Result<u64> {
    let mut records = if source.is_empty(env.settings.partitions).await? {
        0
    } else {
        source.read(None).await?
    };
    if records < options.records {
        // People of their own, after any the lookups seeded.
        let first = SEEDED_FROM + records / RECORDS_PER_PERSON;
        let more = (options.records - records).div_ceil(RECORDS_PER_PERSON);
        people::seed(env, first..first + more, options.concurrency).await?;
        records = source.read(None).await?;
    }
    anyhow::ensure!(records > 0, "the bench's record topics are empty");
    Ok(records)
}

/// Rounds of `govlink rebuild` interleaved with raw reads of the `records` in `source`;
/// returns both sides' samples and each rebuild's preparing time and materializer timings.
async fn rebuild_against_raw_read(
    env: &Env,
    options: &BenchOptions,
    source: RawSource,
    records: u64,
) -> (Samples, Samples, Vec<(Duration, TimingsSnapshot)>) {
    // One rebuild at a time: a second one started alongside would replace the first.
    let serial = BenchOptions {
        concurrency: 1,
        ..options.clone()
    };
    let mut settings = env.settings.clone();
    // On the embedded broker, the rebuild reads it where the bench's app does.
    settings
        .kafka
        .get_or_insert_with(|| env.brokers.bootstrap().to_owned());
    // A store of its own, as the raw consumer reads alone: rebuilding the bench's store
    // would have the bench's resolver join each generation's group halfway through, and
    // on Tansu a member joining a formed group costs a fixed 3 s pause (its
    // coordinator's follower pause), which measures the broker, not the rebuild.
    settings.redis_prefix = own_prefix("gr");
    let prefix = settings.redis_prefix.clone();
    let bar = progress(Scenario::Rebuild, u64::from(options.rounds) * 2);
    let timings: Arc<Mutex<Vec<(Duration, TimingsSnapshot)>>> = Arc::default();
    let timed = Arc::clone(&timings);
    let (ours, theirs) = interleave(
        &serial,
        1,
        records,
        &bar,
        move |_| {
            let (settings, timed) = (settings.clone(), Arc::clone(&timed));
            async move {
                match crate::tools::rebuild::rebuild(&settings, |_, _| {}).await {
                    Ok(report) => {
                        let mut timed = timed.lock().expect("timings lock");
                        timed.push((report.preparing, report.timings));
                        report.events > 0
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bench rebuild failed");
                        false
                    }
                }
            }
        },
        move |_| {
            let source = source.clone();
            async move {
                match source.read(Some(records)).await {
                    Ok(read) => read >= records,
                    Err(e) => {
                        tracing::warn!(error = %e, "bench raw read failed");
                        false
                    }
                }
            }
        },
    )
    .await;
    if let Some(link) = env.settings.redis_link()
        && let Err(e) = delete_prefix(&link, &prefix).await
    {
        tracing::warn!(error = %e, prefix, "the rebuilt store was not deleted");
    }
    let timings = timings.lock().expect("timings lock").clone();
    (ours, theirs, timings)
}

/// The memory report as notes: the records a resolver process materialized, the Redis
/// bytes per record and by kind of key, and the resolver's resident memory.
fn memory_notes(memory: &Memory) -> Vec<(String, f64)> {
    let per_record = |bytes: u64| bytes as f64 / memory.usage.records.max(1) as f64;
    vec![
        (
            "records materialized by a resolver process".into(),
            memory.usage.records as f64,
        ),
        (
            format!("redis bytes per record (target ≤ {BYTES_PER_RECORD_TARGET})"),
            memory.bytes_per_record(),
        ),
        (
            "  of which record entries (rec:)".into(),
            per_record(memory.usage.entries),
        ),
        (
            "  of which subject copies (sub:)".into(),
            per_record(memory.usage.copies),
        ),
        (
            "  of which contribution indexes (sum:)".into(),
            per_record(memory.usage.indexes),
        ),
        (
            format!("resolver resident MiB (target ≤ {RSS_TARGET_MIB})"),
            memory.rss_mib,
        ),
    ]
}

/// Where a rebuild's time goes: starting and joining the new generation's group (ms per
/// rebuild), then
/// each stage of the rebuild's own materializer in ms per 1000 events it read, over every
/// round. (The bench's resolver joins the new generation and reads a share of the
/// partitions; its share is not in these figures.)
fn breakdown(rounds: &[(Duration, TimingsSnapshot)]) -> Vec<(String, f64)> {
    let per_rebuild = |d: Duration| d.as_secs_f64() * 1000.0 / rounds.len().max(1) as f64;
    let preparing: Duration = rounds.iter().map(|(p, _)| *p).sum();
    let rounds: Vec<TimingsSnapshot> = rounds.iter().map(|(_, t)| *t).collect();
    let events: u64 = rounds.iter().map(|t| t.events).sum();
    if events == 0 {
        return Vec::new();
    }
    let per_thousand = |d: Duration| d.as_secs_f64() * 1000.0 * 1000.0 / events as f64;
    let joining: Duration = rounds.iter().map(|t| t.join).sum();
    let mut lines = vec![
        (
            "connecting, checking topics, clearing the store (per rebuild)".to_owned(),
            per_rebuild(preparing),
        ),
        (
            "joining the group, until the first event (per rebuild)".to_owned(),
            per_rebuild(joining),
        ),
    ];
    for (i, (stage, _)) in TimingsSnapshot::default().stages().iter().enumerate() {
        let spent = rounds.iter().map(|t| t.stages()[i].1).sum();
        lines.push((format!("{stage} (per 1000 events)"), per_thousand(spent)));
    }
    lines
}

/// How much the rebuild's own materializer read, and in what batches.
fn read_by_rebuild(rounds: &[TimingsSnapshot]) -> Vec<(String, f64)> {
    let events: u64 = rounds.iter().map(|t| t.events).sum();
    let batches: u64 = rounds.iter().map(|t| t.batches).sum();
    vec![
        (
            "events read by the rebuild's materializer, all rounds".into(),
            events as f64,
        ),
        (
            "  in batches of (mean)".into(),
            events as f64 / batches.max(1) as f64,
        ),
    ]
}

/// What the raw read needs, owned so each operation can take a copy.
#[derive(Clone)]
struct RawSource {
    brokers: Brokers,
    topics: Vec<String>,
}

impl RawSource {
    fn of(env: &Env) -> RawSource {
        RawSource {
            brokers: env.brokers.clone(),
            topics: env.topics.all_records(),
        }
    }

    /// Whether every record topic is empty (the high watermarks, short of the end on
    /// Tansu, are zero only when nothing was written).
    async fn is_empty(&self, partitions: i32) -> anyhow::Result<bool> {
        let source = self.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer =
                client_config(&source.brokers, "govlink-bench-raw").create()?;
            for topic in &source.topics {
                for partition in 0..partitions {
                    let (_, high) =
                        consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
                    if high > 0 {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        })
        .await?
    }

    /// Reads every record topic from the beginning as a consumer of a new group, until
    /// it read `records` or, when that is not known, until a poll stays empty for
    /// [`IDLE`]; returns the records read. The end offsets are no guide on Tansu: it
    /// reports a high watermark far short of the end after multi-record batches.
    async fn read(&self, records: Option<u64>) -> anyhow::Result<u64> {
        let group = format!("govlink-bench-raw-{}", uuid::Uuid::new_v4().simple());
        let consumer: StreamConsumer = client_config(&self.brokers, "govlink-bench-raw")
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // The same fetch wait as govlink's consumers.
            .set("fetch.wait.max.ms", crate::kafka::FETCH_WAIT_MS)
            .create()?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let mut read = 0u64;
        while records.is_none_or(|n| read < n) {
            let wait = if read == 0 { STALL } else { IDLE };
            match timeout(wait, consumer.recv()).await {
                Ok(message) => drop(message?),
                Err(_) if read > 0 => break,
                Err(_) => anyhow::bail!("the raw read got nothing for {STALL:?}"),
            }
            read += 1;
        }
        Ok(read)
    }
}
