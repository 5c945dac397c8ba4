//! Lookups on cache hits: `GetPersonProfile` (requester, policy, one store pipeline,
//! assembly, masking, the audit entry acknowledged by the broker) against a raw read of
//! the same keys in one pipeline per lookup — a Redis client when the store is Redis, the
//! store's own read when it is in memory.

use std::sync::Arc;
use std::time::Duration;

use super::env::{Env, PURPOSE, REQUESTER, person};
use super::measure::interleave;
use super::report::{Comparison, Side, Target};
use super::{BenchOptions, Scenario, people, progress};
use crate::audit::AuditLog;
use crate::domain::ResidentId;
use crate::identity::AsRequester;
use crate::identity::Requester;
use crate::proto;
use crate::proto::resolver_client::ResolverClient;
use crate::records::{RecordType, SubjectKey};
use crate::resolver::store::SubjectRead;
use crate::telemetry::Metrics;

/// The record types a profile with every section reads (besides the contribution index).
const PROFILE_TYPES: [RecordType; 7] = [
    RecordType::Identity,
    RecordType::HouseholdRegistration,
    RecordType::Enrollment,
    RecordType::TransferOutCertificate,
    RecordType::ProvidentFundAccount,
    RecordType::ProvidentFundLoan,
    RecordType::PropertyTitle,
];

/// `lookup`.
pub(super) async fn run(env: &Env, options: &BenchOptions) -> anyhow::Result<Comparison> {
    let persons = options.records.clamp(1, 200);
    let after = people::seed(env, 0..persons, options.concurrency).await?;
    let requester = Requester::parse(REQUESTER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = ResolverClient::with_interceptor(
        env.channel_as(REQUESTER).await?,
        AsRequester::new(&requester, None),
    );
    // Wait until everything seeded is materialized, through the path measured.
    let mut warm = client.clone();
    warm.get_person_profile(proto::GetPersonProfileRequest {
        person_id: person(0),
        purpose: PURPOSE.into(),
        case_id: String::new(),
        min_positions: after,
    })
    .await?;
    let raw = RawReader::new(env).await?;
    let name = raw.name();
    let bar = progress(Scenario::Lookup, u64::from(options.rounds) * 2);
    let (ours, theirs) = interleave(
        options,
        options.records,
        1,
        &bar,
        move |i| {
            let mut c = client.clone();
            async move {
                c.get_person_profile(proto::GetPersonProfileRequest {
                    person_id: person(i % persons),
                    purpose: PURPOSE.into(),
                    case_id: String::new(),
                    min_positions: Vec::new(),
                })
                .await
                .is_ok()
            }
        },
        move |i| {
            let r = raw.clone();
            async move { r.read(&person(i % persons)).await }
        },
    )
    .await;
    let mut comparison = Comparison::new(
        Scenario::Lookup.name(),
        Side::of("GetPersonProfile", &ours),
        Side::of(name, &theirs),
        Target {
            min_throughput_ratio: 0.6,
            p99_factor: Some(1.0),
            p99_slack_ms: 1.0,
        },
    );
    comparison.breakdown = breakdown(env, options, &theirs).await?;
    Ok(comparison)
}

/// Where a lookup's time goes, each part measured alone at the same concurrency (p50):
/// the gRPC round trip (a call refused right after the requester is identified), the
/// store read (the baseline), and an audit entry appended and acknowledged. A lookup waits
/// for the longer of the last two (they run side by side); the rest is policy, assembly
/// and masking.
async fn breakdown(
    env: &Env,
    options: &BenchOptions,
    store_read: &super::measure::Samples,
) -> anyhow::Result<Vec<(String, f64)>> {
    let requester = Requester::parse(REQUESTER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = ResolverClient::with_interceptor(
        env.channel_as(REQUESTER).await?,
        AsRequester::new(&requester, None),
    );
    let publisher = crate::kafka::Publisher::new(&env.brokers, Duration::from_secs(30), 10_000)?;
    let writer = crate::audit::Writer {
        role: "bench",
        host: env.settings.host.clone(),
        signer: None,
    };
    let audit = AuditLog::start(publisher, &env.topics, writer, Metrics::new()).await?;
    let quiet = progress(Scenario::Lookup, 0);
    let (grpc, audited) = interleave(
        options,
        options.records,
        1,
        &quiet,
        move |_| {
            let mut c = client.clone();
            async move {
                // Refused at parsing: the round trip and the interceptor, nothing else.
                c.get_record(proto::GetRecordRequest::default())
                    .await
                    .is_err()
            }
        },
        move |i| {
            let audit = audit.clone();
            async move {
                let access = proto::DataAccess {
                    person_ids: vec![person(i)],
                    method: "bench".into(),
                    ..Default::default()
                };
                audit
                    .record(
                        access,
                        tokio::time::Instant::now() + Duration::from_secs(10),
                    )
                    .await
                    .is_ok()
            }
        },
    )
    .await;
    Ok(vec![
        ("gRPC round trip (p50)".into(), grpc.latency_ms(0.5)),
        ("store read (p50)".into(), store_read.latency_ms(0.5)),
        (
            "audit entry acknowledged (p50)".into(),
            audited.latency_ms(0.5),
        ),
    ])
}

/// The raw baseline: the same keys, one pipeline per lookup.
#[derive(Clone)]
enum RawReader {
    Redis {
        conn: crate::redis_link::RedisConn,
        prefix: Arc<str>,
    },
    Store(crate::resolver::store::Store),
}

impl RawReader {
    async fn new(env: &Env) -> anyhow::Result<RawReader> {
        Ok(match env.settings.redis_link() {
            Some(link) => RawReader::Redis {
                conn: link.connect().await?,
                prefix: env.settings.redis_prefix.as_str().into(),
            },
            None => RawReader::Store(env.store.clone()),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            RawReader::Redis { .. } => "raw Redis pipeline",
            RawReader::Store(_) => "raw in-memory store read",
        }
    }

    async fn read(&self, id: &str) -> bool {
        match self {
            RawReader::Redis { conn, prefix } => {
                let mut pipe = redis::pipe();
                pipe.cmd("HMGET")
                    .arg(format!("{prefix}meta"))
                    .arg("state")
                    .arg("layout");
                for t in PROFILE_TYPES {
                    pipe.cmd("HGETALL")
                        .arg(format!("{prefix}sub:{{p:{id}}}:{}", t.as_str()));
                }
                pipe.cmd("HGETALL")
                    .arg(format!("{prefix}sum:{{p:{id}}}:contributions"));
                pipe.query_async::<redis::Value>(&mut conn.clone())
                    .await
                    .is_ok()
            }
            RawReader::Store(store) => {
                let Ok(person) = ResidentId::parse(id) else {
                    return false;
                };
                let read = SubjectRead {
                    subject: SubjectKey::person(&person),
                    types: PROFILE_TYPES.to_vec(),
                    contributions: true,
                };
                store.read_subjects(&[read]).await.is_ok()
            }
        }
    }
}
