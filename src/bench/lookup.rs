//! Lookups on cache hits: `GetPersonProfile` (requester, policy, one store pipeline,
//! assembly, masking, the audit entry acknowledged by the broker) against two baselines
//! in the same interleaved run:
//!
//! - the work the design requires, done by hand: a raw read of the same keys in one
//!   pipeline **and**, concurrently (joined per lookup), a raw idempotent acks=all
//!   produce of an entry the size of the lookup's audit entry, keyed like a chain — the
//!   target is against this one;
//! - the raw read alone, a Redis client when the store is Redis, the store's own read
//!   when it is in memory (what the lookup would cost without its audit entry).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt as _;
use prost::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::env::{Env, PURPOSE, REQUESTER, person};
use super::measure::{Op, interleave, interleave_all};
use super::report::{Comparison, Side, Target};
use super::{BenchOptions, Scenario, people, progress};
use crate::audit::AuditLog;
use crate::domain::ResidentId;
use crate::identity::AsRequester;
use crate::identity::Requester;
use crate::kafka::{TopicSpec, ensure_topics};
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

/// The sections the bench's grant returns, as the audit entry names them.
const SECTIONS: [&str; 5] = [
    "identity",
    "household",
    "social-security",
    "provident-fund",
    "property",
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
    let required = RequiredWork::new(env, raw.clone(), &requester).await?;
    let entry_bytes = required.entry.len();
    let ours: Op = Arc::new(move |i| {
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
        .boxed()
    });
    let read: Op = Arc::new(move |i| {
        let r = raw.clone();
        async move { r.read(&person(i % persons)).await }.boxed()
    });
    let both: Op = Arc::new(move |i| {
        let w = required.clone();
        async move { w.run(&person(i % persons)).await }.boxed()
    });
    let bar = progress(Scenario::Lookup, u64::from(options.rounds) * 3);
    let sides = [ours, both, read];
    let measured = interleave_all(options, options.records, 1, &bar, &sides).await;
    let [ours, both, read] = <[_; 3]>::try_from(measured)
        .map_err(|_| anyhow::anyhow!("three sides measured, three samples expected"))?;
    let mut comparison = Comparison::new(
        Scenario::Lookup.name(),
        Side::of("GetPersonProfile", &ours),
        Side::of(REQUIRED_WORK, &both),
        Target {
            min_throughput_ratio: 0.8,
            p99_factor: Some(1.0),
            p99_slack_ms: 1.0,
        },
    );
    comparison.other_baselines.push(Side::of(name, &read));
    comparison.breakdown = breakdown(env, options, &read).await?;
    comparison
        .notes
        .push(("audit entry, bytes".into(), entry_bytes as f64));
    Ok(comparison)
}

/// The baseline the target is against, as the table names it.
const REQUIRED_WORK: &str = "raw Redis + acks=all produce";

/// The work a lookup cannot do without, by hand: the store read and, side by side, an
/// entry the size of its audit entry produced (idempotent, acks=all, govlink's linger)
/// and acknowledged, under one key as a writer's chain is, on a topic of its own
/// created like the audit topic.
#[derive(Clone)]
struct RequiredWork {
    read: RawReader,
    producer: Arc<FutureProducer>,
    topic: Arc<str>,
    /// The chain id the entries are keyed by.
    key: Arc<str>,
    /// The bytes of an audit entry of a bench lookup.
    entry: Arc<[u8]>,
}

impl RequiredWork {
    async fn new(
        env: &Env,
        read: RawReader,
        requester: &Requester,
    ) -> anyhow::Result<RequiredWork> {
        let topic = format!("{}bench.required-work", env.settings.topic_prefix);
        // The embedded broker creates a topic on first use; a real one is asked to.
        if env.settings.kafka.is_some() {
            let spec = TopicSpec::durable(
                topic.clone(),
                env.settings.partitions,
                env.settings.replication_factor,
                -1,
            );
            ensure_topics(&env.brokers, &[spec], Duration::from_secs(30)).await?;
        }
        let key = crate::audit::new_chain_id();
        let entry = audit_sized_entry(&key, requester);
        Ok(RequiredWork {
            read,
            producer: Arc::new(env.raw_producer()?),
            topic: topic.into(),
            key: key.into(),
            entry: entry.into(),
        })
    }

    /// One lookup's worth: the read and the acknowledged produce, joined.
    async fn run(&self, id: &str) -> bool {
        let record = FutureRecord::to(&self.topic)
            .key(&*self.key)
            .payload(&*self.entry);
        let (read, produced) = tokio::join!(
            self.read.read(id),
            self.producer.send(record, Duration::from_secs(10)),
        );
        read && produced.is_ok()
    }
}

/// The bytes of the audit entry a bench lookup writes: the access as the resolver
/// records it, in a chain's entry with its hashes, at a sequence the run reaches.
fn audit_sized_entry(chain_id: &str, requester: &Requester) -> Vec<u8> {
    let mut access = crate::audit::Access {
        requester,
        on_behalf_of: None,
        method: "GetPersonProfile",
        purpose: PURPOSE,
        case_id: "",
        persons: vec![person(0)],
        units: Vec::new(),
    }
    .allowed();
    access.sections = SECTIONS.map(String::from).to_vec();
    // The grant's line in the bench's policy file.
    access.grant_line = 20;
    let body = proto::AuditBody {
        at: Some(SystemTime::now().into()),
        kind: Some(proto::audit_body::Kind::Access(access)),
    }
    .encode_to_vec();
    let previous = [0u8; 32];
    let hash = crate::audit::entry_hash(chain_id, 10_000, &previous, &body);
    proto::AuditEntry {
        chain_id: chain_id.to_owned(),
        sequence: 10_000,
        previous_hash: previous.to_vec(),
        hash: hash.to_vec(),
        body,
    }
    .encode_to_vec()
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
