//! `govlink audit verify`, the driver: reads the audit topics into a [`Verifier`] and
//! prints its report. The checkpoints are read first, then the entries, each from the beginning to the end offsets at the time it is read, and where each
//! partition begins (its low watermark: above 0, records were deleted).
//!
//! Checkpoints go first: a checkpoint is written only after its entry was acknowledged,
//! so every checkpoint read refers to an entry already in the audit topic when that is
//! read afterwards, even while writers are running.
//!
//! Tansu under-reports a partition's high watermark after a batch of several records, so
//! reaching the end offsets is not the end: reading goes on until a poll returns nothing
//! for `IDLE`, and stops at most `TAIL` after the end offsets were reached (a busy
//! writer never lets a poll come back empty).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::time::{Instant, timeout};

use crate::audit::verify::{Location, Report, TrailTopic, Verifier};
use crate::config::Settings;
use crate::kafka::{Brokers, Topics};

/// A poll that returns nothing for this long, once the end offsets are reached, ends a
/// topic.
const IDLE: Duration = Duration::from_secs(1);
/// Reading stops this long after the end offsets were reached, even if messages still
/// come (writers are running).
const TAIL: Duration = Duration::from_secs(5);
/// Reading fails if nothing comes for this long before the end offsets are reached.
const STALL: Duration = Duration::from_secs(30);
/// How long one metadata or watermark request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the trail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No broker configured.
    #[error("no Kafka broker configured: set --kafka or GOVLINK_KAFKA")]
    NoBroker,
    /// The settings of the link to the brokers contradict each other.
    #[error("{0}")]
    Link(String),
    /// The brokers cannot be reached, or refused the link: one line for the operator.
    #[error("{0}")]
    Unreachable(#[from] crate::reach::ReachError),
    /// The broker failed or could not be reached.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The topic does not exist (nothing was ever audited under this prefix?).
    #[error("topic {0} does not exist")]
    NoTopic(String),
    /// Nothing came for a while before the end offsets were reached.
    #[error("reading {topic} stalled after {read} of at least {expected} messages")]
    Stalled {
        /// The topic.
        topic: String,
        /// Messages read.
        read: u64,
        /// Messages the end offsets promised.
        expected: u64,
    },
    /// The task reading the end offsets died.
    #[error("offset reader failed: {0}")]
    OffsetReader(String),
    /// The report could not be written.
    #[error("cannot write the report: {0}")]
    Io(#[from] std::io::Error),
    /// The CA bundle to check chain signatures against could not be read.
    #[error("{0}")]
    Ca(#[from] crate::audit::SigningError),
}

/// How `verify` checks who wrote each chain.
#[derive(Debug, Clone, Default)]
pub struct SignatureCheck {
    /// The CA bundle (PEM) writers' certificates must chain to (`--ca`); without it,
    /// the settings' `tls_client_ca`; without either, signatures are not checked.
    pub ca: Option<PathBuf>,
    /// Unsigned chains pass (`--allow-unsigned`): a trail written by processes without
    /// TLS (`dev`, `demo`) or by versions before signed chains.
    pub allow_unsigned: bool,
}

/// `govlink audit verify`: reads the trail of `settings`' broker and topic prefix, from
/// `from` on if given, checks who wrote each chain as `signatures` says, and writes the
/// report to `out` (text or JSON). Progress goes to stderr when it is a terminal.
pub async fn run(
    settings: &Settings,
    from: Option<SystemTime>,
    signatures: &SignatureCheck,
    json: bool,
    out: &mut dyn Write,
) -> Result<Report, VerifyError> {
    let ca = signatures
        .ca
        .clone()
        .or_else(|| settings.tls_client_ca.as_ref().map(PathBuf::from));
    let mut verifier = Verifier::new(from);
    match ca {
        Some(ca) => {
            let cas = crate::audit::TrustedCas::load(&ca)?;
            verifier = verifier.with_signatures(cas, signatures.allow_unsigned);
        }
        None => tracing::warn!(
            "no CA given (--ca or tls_client_ca): who wrote each chain is not checked, and a \
             forged chain cannot be told from a genuine one"
        ),
    }
    let brokers = settings
        .brokers()
        .map_err(VerifyError::Link)?
        .ok_or(VerifyError::NoBroker)?;
    brokers.reachable(settings.connect_timeout()).await?;
    let topics = Topics::new(settings.topic_prefix.clone());
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} reading {msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message("checkpoints");
    let checkpoints = topics.audit_checkpoints();
    let starts = read_topic(&brokers, &checkpoints, &bar, |at, payload| {
        verifier.add_checkpoint(at, payload);
    })
    .await?;
    for (partition, low) in starts {
        verifier.partition_starts_at(TrailTopic::Checkpoints, partition, low);
    }
    bar.set_message("entries");
    let entries = topics.audit();
    let starts = read_topic(&brokers, &entries, &bar, |at, payload| {
        verifier.add_entry(at, payload);
    })
    .await?;
    for (partition, low) in starts {
        verifier.partition_starts_at(TrailTopic::Entries, partition, low);
    }
    bar.finish_and_clear();
    let report = verifier.finish();
    if json {
        serde_json::to_writer_pretty(&mut *out, &report.to_json()).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        report.write_text(out)?;
    }
    Ok(report)
}

/// Reads every partition of `topic` from the beginning into `sink`; returns where each
/// partition began (its low watermark before reading).
async fn read_topic(
    brokers: &Brokers,
    topic: &str,
    bar: &ProgressBar,
    mut sink: impl FnMut(Location, &[u8]),
) -> Result<BTreeMap<i32, i64>, VerifyError> {
    let ends = end_offsets(brokers, topic).await?;
    let expected: u64 = ends
        .values()
        .map(|(low, high)| (high - low).max(0) as u64)
        .sum();
    bar.set_length(expected);
    bar.set_position(0);
    let consumer: StreamConsumer = crate::kafka::client_config(brokers, "govlink-audit-verify")
        // Offsets are never committed; librdkafka wants a group all the same.
        .set(
            "group.id",
            format!("govlink-audit-verify-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in ends.keys() {
        assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    // Per partition: the last offset the end offsets promise, and whether it was read.
    let mut pending: BTreeMap<i32, i64> = ends
        .iter()
        .filter(|(_, (low, high))| high > low)
        .map(|(p, (_, high))| (*p, high - 1))
        .collect();
    let mut read = 0u64;
    let mut last_message = Instant::now();
    let mut reached_at = pending.is_empty().then(Instant::now);
    loop {
        match timeout(IDLE, consumer.recv()).await {
            Ok(Ok(message)) => {
                let at = Location {
                    partition: message.partition(),
                    offset: message.offset(),
                };
                sink(at, message.payload().unwrap_or_default());
                read += 1;
                bar.inc(1);
                last_message = Instant::now();
                if pending
                    .get(&at.partition)
                    .is_some_and(|last| at.offset >= *last)
                {
                    pending.remove(&at.partition);
                }
                if pending.is_empty() {
                    reached_at.get_or_insert_with(Instant::now);
                }
            }
            Ok(Err(e)) => tracing::warn!(topic, error = %e, "consume error"),
            Err(_idle) if reached_at.is_some() => break,
            Err(_idle) => {}
        }
        if reached_at.is_some_and(|at| at.elapsed() >= TAIL) {
            break;
        }
        if reached_at.is_none() && last_message.elapsed() >= STALL {
            return Err(VerifyError::Stalled {
                topic: topic.to_owned(),
                read,
                expected,
            });
        }
    }
    Ok(ends.into_iter().map(|(p, (low, _))| (p, low)).collect())
}

/// Partition → (low, high) watermarks of `topic`.
async fn end_offsets(
    brokers: &Brokers,
    topic: &str,
) -> Result<BTreeMap<i32, (i64, i64)>, VerifyError> {
    let consumer: BaseConsumer =
        crate::kafka::client_config(brokers, "govlink-audit-verify").create()?;
    let name = topic.to_owned();
    // Metadata and watermark requests block on the broker: keep them off the async workers.
    let ends = tokio::task::spawn_blocking(move || -> Result<_, VerifyError> {
        let metadata = consumer.fetch_metadata(Some(&name), METADATA_TIMEOUT)?;
        let partitions = match metadata.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => t.partitions().len(),
            _ => return Err(VerifyError::NoTopic(name)),
        };
        let mut ends = BTreeMap::new();
        for partition in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
            let marks = consumer.fetch_watermarks(&name, partition, METADATA_TIMEOUT)?;
            ends.insert(partition, marks);
        }
        Ok(ends)
    })
    .await
    .map_err(|e| VerifyError::OffsetReader(e.to_string()))??;
    Ok(ends)
}
