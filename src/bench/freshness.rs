//! Freshness: how long a record takes from an agency's publish to an answer that shows
//! it. Govlink's path is a gRPC publish through the public-security adapter, then
//! `GetRecord` with the ack's position as `min_positions` (read-your-writes), timed from
//! before the publish to the answer. The baseline is a raw rdkafka produce of a message of
//! the same size to a topic of its own, timed from before the send to the moment a
//! consumer already assigned to that topic receives it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::env::{Env, household_request};

/// Who reads the published records back.
const RECORDS_READER: &str = "public-security/records";
use super::measure::{Parts, interleave};
use super::report::{Comparison, Side, Target};
use super::{BenchOptions, Scenario, progress};
use crate::identity::AsRequester;
use crate::identity::Requester;
use crate::kafka::{TopicSpec, client_config, ensure_topics};
use crate::proto::GetRecordRequest;
use crate::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use crate::proto::resolver_client::ResolverClient;
/// Operations per side per round: `records` divided by this. Each operation waits for a
/// consumer's fetch, which a broker that does not wake long polls on new data (Tansu)
/// answers only after `fetch.wait.max.ms` (`kafka::FETCH_WAIT_MS` on both sides).
const RECORDS_PER_OP: u64 = 10;
/// The longest one operation may take before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Waiting operations of the baseline, by message key: the consumer hands each message
/// it receives to the operation that sent it.
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>;

/// `freshness`.
pub(super) async fn run(env: &Env, options: &BenchOptions) -> anyhow::Result<Comparison> {
    // Public security's system publishes household registrations and reads them back (raw
    // records are their agency's own).
    let channel = env.channel_as(RECORDS_READER).await?;
    let publisher = PublicSecurityAdapterClient::new(channel.clone());
    let requester = Requester::parse(RECORDS_READER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let resolver = ResolverClient::with_interceptor(channel, AsRequester::new(&requester, None));
    let (topic, consumer) = raw_consumer(env).await?;
    let waiters: Waiters = Arc::default();
    let stop = CancellationToken::new();
    let receiving = tokio::spawn(deliver(consumer, Arc::clone(&waiters), stop.clone()));
    let producer = Arc::new(env.raw_producer()?);
    let bar = progress(Scenario::Freshness, u64::from(options.rounds) * 2);
    let parts = Parts::default();
    let timed = parts.clone();
    let (ours, raw) = interleave(
        options,
        options.records.div_ceil(RECORDS_PER_OP),
        1,
        &bar,
        move |i| {
            let (mut p, mut r, parts) = (publisher.clone(), resolver.clone(), timed.clone());
            async move {
                let published = async {
                    let started = Instant::now();
                    let ack = p
                        .publish_household_registration(household_request(&format!("fr-{i}"), i))
                        .await?
                        .into_inner();
                    let acked = Instant::now();
                    parts.record("publish acknowledged", acked - started);
                    let answer = r
                        .get_record(GetRecordRequest {
                            record_key: ack.record_key,
                            min_positions: ack.position.into_iter().collect(),
                        })
                        .await?;
                    parts.record("ack to answer (materialized, then read)", acked.elapsed());
                    Ok::<_, tonic::Status>(answer)
                };
                matches!(tokio::time::timeout(OP_TIMEOUT, published).await, Ok(Ok(_)))
            }
        },
        move |i| {
            let (p, t, w) = (
                Arc::clone(&producer),
                Arc::clone(&topic),
                Arc::clone(&waiters),
            );
            async move { produce_and_receive(&p, &t, &w, i).await }
        },
    )
    .await;
    stop.cancel();
    receiving.await?;
    let mut comparison = Comparison::new(
        Scenario::Freshness.name(),
        Side::of("publish, then GetRecord at ack", &ours),
        Side::of("rdkafka produce -> consume", &raw),
        Target {
            min_throughput_ratio: 0.0,
            p99_factor: Some(1.5),
            p99_slack_ms: 2.0,
        },
    );
    comparison.breakdown = parts.medians();
    Ok(comparison)
}

/// Creates the baseline's own topic and a consumer assigned to every partition of it from
/// the start. A topic of its own, still empty when assigned, keeps the consumer clear of
/// what other scenarios wrote: Tansu cannot serve a fetch that starts inside a
/// multi-record batch, and under-reports high watermarks after one.
async fn raw_consumer(env: &Env) -> anyhow::Result<(Arc<str>, StreamConsumer)> {
    let topic = format!("{}bench.freshness", env.settings.topic_prefix);
    let partitions = env.settings.partitions;
    let spec = TopicSpec::durable(topic.clone(), partitions, 1, -1);
    ensure_topics(&env.brokers, &[spec], Duration::from_secs(30)).await?;
    let consumer: StreamConsumer = client_config(&env.brokers, "govlink-bench-raw")
        .set(
            "group.id",
            format!("{}bench-freshness", env.settings.topic_prefix),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // The same fetch wait as govlink's consumers.
        .set("fetch.wait.max.ms", crate::kafka::FETCH_WAIT_MS)
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(&topic, partition, Offset::Offset(0))?;
    }
    consumer.assign(&assignment)?;
    Ok((topic.into(), consumer))
}

/// Hands every message `consumer` receives to the operation waiting for its key, until
/// `stop`.
async fn deliver(consumer: StreamConsumer, waiters: Waiters, stop: CancellationToken) {
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default());
                let waiter = waiters.lock().expect("waiters lock").remove(key.as_ref());
                if let Some(waiter) = waiter {
                    let _ = waiter.send(());
                }
            }
            Err(e) => tracing::warn!(error = %e, "bench consumer error"),
        }
    }
}

/// Sends message `i` and waits until the consumer received it; true when it did in time.
/// The waiter is in place before the send, so a message that arrives before the ack is
/// not missed; the broker acks before it lets consumers read, so the time is that of the
/// receipt.
async fn produce_and_receive(
    producer: &FutureProducer,
    topic: &str,
    waiters: &Waiters,
    i: u64,
) -> bool {
    let key = format!("fr-raw-{i}");
    let (tx, rx) = oneshot::channel();
    waiters
        .lock()
        .expect("waiters lock")
        .insert(key.clone(), tx);
    let bytes = household_request(&key, i).encode_to_vec();
    let sent = producer
        .send(
            FutureRecord::to(topic).key(&key).payload(&bytes),
            OP_TIMEOUT,
        )
        .await
        .is_ok();
    let received = sent && matches!(tokio::time::timeout(OP_TIMEOUT, rx).await, Ok(Ok(())));
    waiters.lock().expect("waiters lock").remove(&key);
    received
}
