//! Rebuilding: `govlink rebuild` of the bench's store from its record topics (a new
//! generation, the store cleared, every topic materialized to its end offsets) against a
//! raw consumer of a new group reading every record topic from the beginning to the end.
//! Both are counted in records of the topics per second. The memory report
//! (`memory.rs`) comes with it, as notes. Needs Redis.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use tokio::time::{Instant, timeout};

use super::env::{Env, household_request};
use super::measure::interleave;
use super::memory::{self, BYTES_PER_RECORD_TARGET, RSS_TARGET_MIB};
use super::report::{Comparison, Side, Target};
use super::{BenchOptions, Scenario, progress};
use crate::kafka::client_config;
use crate::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use crate::proto::{self, public_security_batch_item};

/// A poll that stays empty this long after the first message ends a raw read of unknown
/// length.
const IDLE: Duration = Duration::from_secs(1);
/// The raw read fails if nothing at all comes for this long.
const STALL: Duration = Duration::from_secs(30);
/// Records per seeding batch publish.
const SEED_BATCH: u64 = 500;

/// `rebuild`.
pub(super) async fn run(env: &Env, options: &BenchOptions) -> anyhow::Result<Comparison> {
    let source = RawSource::of(env);
    let mut records = if source.is_empty(env.settings.partitions).await? {
        0
    } else {
        source.read(None).await?
    };
    if records < options.records {
        seed(env, records, options.records - records).await?;
        records = source.read(None).await?;
    }
    anyhow::ensure!(records > 0, "the bench's record topics are empty");
    // One rebuild at a time: a second one started alongside would replace the first.
    let serial = BenchOptions {
        concurrency: 1,
        ..options.clone()
    };
    let settings = env.settings.clone();
    let bar = progress(Scenario::Rebuild, u64::from(options.rounds) * 2);
    let (ours, theirs) = interleave(
        &serial,
        1,
        records,
        &bar,
        move |_| {
            let settings = settings.clone();
            async move {
                match crate::rebuild::rebuild(&settings, |_, _| {}).await {
                    Ok(report) => report.events > 0,
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
    comparison
        .notes
        .push(("records in the topics".into(), records as f64));
    let memory = memory::measure(env, options.govlink_exe.as_deref()).await?;
    comparison.notes.extend([
        (
            "records materialized by a resolver process".into(),
            memory.records as f64,
        ),
        (
            format!("redis bytes per record (target ≤ {BYTES_PER_RECORD_TARGET})"),
            memory.bytes_per_record,
        ),
        (
            format!("resolver resident MiB (target ≤ {RSS_TARGET_MIB})"),
            memory.rss_mib,
        ),
    ]);
    comparison.holds &= memory.holds();
    Ok(comparison)
}

/// What the raw read needs, owned so each operation can take a copy.
#[derive(Clone)]
struct RawSource {
    bootstrap: String,
    topics: Vec<String>,
}

impl RawSource {
    fn of(env: &Env) -> RawSource {
        RawSource {
            bootstrap: env.bootstrap.clone(),
            topics: env.topics.all_records(),
        }
    }

    /// Whether every record topic is empty (the high watermarks, short of the end on
    /// Tansu, are zero only when nothing was written).
    async fn is_empty(&self, partitions: i32) -> anyhow::Result<bool> {
        let source = self.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer =
                client_config(&source.bootstrap, "govlink-bench-raw").create()?;
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
        let consumer: StreamConsumer = client_config(&self.bootstrap, "govlink-bench-raw")
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
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

/// Publishes `n` household registrations through the public-security adapter in batches,
/// numbered from `first` (acknowledged by the broker, not necessarily materialized yet).
pub(super) async fn seed(env: &Env, first: u64, n: u64) -> anyhow::Result<()> {
    let mut client = PublicSecurityAdapterClient::new(env.channel.clone());
    let started = Instant::now();
    for chunk in (first..first + n)
        .collect::<Vec<_>>()
        .chunks(SEED_BATCH as usize)
    {
        let items = chunk
            .iter()
            .map(|&i| {
                let request = household_request(&format!("seed-{i}"), i);
                proto::PublicSecurityBatchItem {
                    meta: request.meta,
                    record: request
                        .record
                        .map(public_security_batch_item::Record::HouseholdRegistration),
                }
            })
            .collect();
        client
            .publish_batch(proto::PublishPublicSecurityBatchRequest { items })
            .await?;
    }
    tracing::debug!(records = n, elapsed = ?started.elapsed(), "bench seeded");
    Ok(())
}
