//! Publishing: a gRPC publish through the public-security adapter (validation, encoding,
//! the idempotent acks=all producer, the ack with its position) against rdkafka's
//! `FutureProducer` sending the same event bytes, with the same settings, to the same
//! topic, at the same concurrency.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::env::{Env, household, meta};
use super::measure::{Samples, interleave};
use super::report::{Comparison, Side, Target};
use super::{BenchOptions, Scenario, progress};
use crate::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use crate::proto::{
    self, Agency, Op, PublicSecurityBatchItem, RecordEvent, public_security_batch_item,
    record_event::Payload,
};
use crate::records::{RecordKey, RecordType, subjects_of};

/// Records per batch in `publish-batch`.
const BATCH: u64 = 100;

/// The event the adapter would publish for record `record_id`: the baseline sends these
/// bytes, so both sides put the same load on the broker.
fn event_bytes(record_id: &str, i: u64) -> (String, Vec<u8>) {
    let payload = Payload::HouseholdRegistration(household(i));
    let event = RecordEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        agency: Agency::PublicSecurity as i32,
        record_type: RecordType::HouseholdRegistration.as_str().to_owned(),
        record_id: record_id.to_owned(),
        subjects: subjects_of(&payload).iter().map(|s| s.to_proto()).collect(),
        version: 1,
        source_event_id: format!("bench-{record_id}"),
        op: Op::Upsert as i32,
        occurred_at: Some(SystemTime::now().into()),
        published_at: Some(SystemTime::now().into()),
        payload: Some(payload),
    };
    let key = RecordKey::new(RecordType::HouseholdRegistration, record_id);
    (key.as_str().to_owned(), event.encode_to_vec())
}

/// Sends records `first..first + n` through the raw producer, as the adapter sends them
/// (key, event bytes, schema header); true when all were acknowledged.
async fn raw_send(producer: &FutureProducer, topic: &str, side: &str, first: u64, n: u64) -> bool {
    let sends = (first..first + n).map(|i| {
        let (key, bytes) = event_bytes(&format!("{side}-{i}"), i);
        async move {
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&bytes).headers(
                        OwnedHeaders::new().insert(Header {
                            key: "govlink-schema",
                            value: Some(b"govlink.v1.RecordEvent"),
                        }),
                    ),
                    Duration::from_secs(10),
                )
                .await
                .is_ok()
        }
    });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .all(|ok| ok)
}

/// `publish`: one record per call.
pub(super) async fn single(env: &Env, options: &BenchOptions) -> anyhow::Result<Comparison> {
    let client = PublicSecurityAdapterClient::new(env.channel_as("public-security/records").await?);
    let producer = Arc::new(env.raw_producer()?);
    let topic: Arc<str> = env.topics.records(Agency::PublicSecurity).into();
    let bar = progress(Scenario::Publish, u64::from(options.rounds) * 2);
    let (ours, raw) = interleave(
        options,
        options.records,
        1,
        &bar,
        move |i| {
            let mut c = client.clone();
            async move {
                c.publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                    meta: meta(&format!("g-{i}")),
                    record: Some(household(i)),
                })
                .await
                .is_ok()
            }
        },
        move |i| {
            let (p, t) = (Arc::clone(&producer), Arc::clone(&topic));
            async move { raw_send(&p, &t, "r", i, 1).await }
        },
    )
    .await;
    let mut comparison = Comparison::new(
        Scenario::Publish.name(),
        Side::of("gRPC publish via adapter", &ours),
        Side::of("rdkafka FutureProducer", &raw),
        Target {
            min_throughput_ratio: 0.8,
            p99_factor: Some(1.0),
            p99_slack_ms: 2.0,
        },
    );
    comparison.breakdown = breakdown(env, options, &raw).await?;
    Ok(comparison)
}

/// Where a publish's time goes (p50 of each part alone, same concurrency): the gRPC round
/// trip with validation (a record refused for a bad field), and the broker's ack (the raw
/// producer). The rest is encoding and the shared producer's window and callbacks.
async fn breakdown(
    env: &Env,
    options: &BenchOptions,
    raw: &Samples,
) -> anyhow::Result<Vec<(String, f64)>> {
    let client = PublicSecurityAdapterClient::new(env.channel_as("public-security/records").await?);
    let refused = refused_p50(options, options.records, move |i| {
        let mut c = client.clone();
        async move {
            let mut record = household(i);
            record.region_code = "bad".into();
            c.publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                meta: meta(&format!("x-{i}")),
                record: Some(record),
            })
            .await
            .is_err()
        }
    })
    .await;
    Ok(vec![
        ("gRPC round trip + validation (p50)".into(), refused),
        ("broker ack, raw producer (p50)".into(), raw.latency_ms(0.5)),
    ])
}

/// The median of `calls` refused calls: `call(i)` says whether call `i` was refused.
async fn refused_p50<F, Fut>(options: &BenchOptions, calls: u64, call: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let quiet = progress(Scenario::Publish, 0);
    let (refused, _) = interleave(options, calls, 1, &quiet, call, |_| async { true }).await;
    refused.latency_ms(0.5)
}

/// A batch of `BATCH` records starting at record `first`, named `prefix`-i.
fn batch_items(prefix: &str, first: u64) -> Vec<PublicSecurityBatchItem> {
    (first..first + BATCH)
        .map(|i| PublicSecurityBatchItem {
            meta: meta(&format!("{prefix}-{i}")),
            record: Some(public_security_batch_item::Record::HouseholdRegistration(
                household(i),
            )),
        })
        .collect()
}

/// `publish-batch`: 100 records per call.
pub(super) async fn batch(env: &Env, options: &BenchOptions) -> anyhow::Result<Comparison> {
    let client = PublicSecurityAdapterClient::new(env.channel_as("public-security/records").await?);
    let producer = Arc::new(env.raw_producer()?);
    let topic: Arc<str> = env.topics.records(Agency::PublicSecurity).into();
    let calls = options.records.div_ceil(BATCH).max(1);
    let bar = progress(Scenario::PublishBatch, u64::from(options.rounds) * 2);
    let (ours, raw) = interleave(
        options,
        calls,
        BATCH,
        &bar,
        move |call| {
            let mut c = client.clone();
            async move {
                let items = batch_items("gb", call * BATCH);
                c.publish_batch(proto::PublishPublicSecurityBatchRequest { items })
                    .await
                    .is_ok()
            }
        },
        move |call| {
            let (p, t) = (Arc::clone(&producer), Arc::clone(&topic));
            async move { raw_send(&p, &t, "rb", call * BATCH, BATCH).await }
        },
    )
    .await;
    let mut comparison = Comparison::new(
        Scenario::PublishBatch.name(),
        Side::of("gRPC PublishBatch of 100", &ours),
        Side::of("rdkafka, 100 records", &raw),
        Target {
            min_throughput_ratio: 0.9,
            p99_factor: None,
            p99_slack_ms: 0.0,
        },
    );
    comparison.breakdown = batch_breakdown(env, options, calls, &raw).await?;
    Ok(comparison)
}

/// Where a batch's time goes (p50 of each part alone, same concurrency): the gRPC round
/// trip with every record validated (a batch refused for a bad field in its last record,
/// so nothing is published), and the broker's acks for 100 records (the raw producer).
/// The rest is encoding and the producer's window.
async fn batch_breakdown(
    env: &Env,
    options: &BenchOptions,
    calls: u64,
    raw: &Samples,
) -> anyhow::Result<Vec<(String, f64)>> {
    let client = PublicSecurityAdapterClient::new(env.channel_as("public-security/records").await?);
    let refused = refused_p50(options, calls, move |call| {
        let mut c = client.clone();
        async move {
            let mut items = batch_items("xb", call * BATCH);
            if let Some(public_security_batch_item::Record::HouseholdRegistration(last)) =
                items.last_mut().and_then(|item| item.record.as_mut())
            {
                last.region_code = "bad".into();
            }
            c.publish_batch(proto::PublishPublicSecurityBatchRequest { items })
                .await
                .is_err()
        }
    })
    .await;
    Ok(vec![
        ("gRPC round trip + validation of 100 (p50)".into(), refused),
        (
            "broker acks for 100, raw producer (p50)".into(),
            raw.latency_ms(0.5),
        ),
    ])
}
