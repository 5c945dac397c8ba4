//! Lookups on cache hits: `GetPersonProfile` (requester, policy, one store pipeline,
//! assembly, masking, the audit entry acknowledged by the broker) against a raw read of
//! the same keys in one pipeline per lookup — a Redis client when the store is Redis, the
//! store's own read when it is in memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::env::{Env, PURPOSE, REQUESTER, meta, person};
use super::measure::interleave;
use super::report::{Comparison, Side, Target};
use super::{BenchOptions, Scenario, progress};
use crate::audit::AuditLog;
use crate::domain::ResidentId;
use crate::proto::housing_adapter_client::HousingAdapterClient;
use crate::proto::provident_fund_adapter_client::ProvidentFundAdapterClient;
use crate::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use crate::proto::resolver_client::ResolverClient;
use crate::proto::social_security_adapter_client::SocialSecurityAdapterClient;
use crate::proto::{self, Position};
use crate::records::{RecordType, SubjectKey};
use crate::resolver::policy::Requester;
use crate::resolver::query::AsRequester;
use crate::resolver::store::SubjectRead;

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
/// Monthly contributions per person: two years.
const MONTHS: u32 = 24;

/// `lookup`.
pub(super) async fn run(env: &Env, options: &BenchOptions) -> anyhow::Result<Comparison> {
    let persons = options.records.clamp(1, 200);
    let after = seed(env, persons).await?;
    let requester = Requester::parse(REQUESTER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client =
        ResolverClient::with_interceptor(env.channel.clone(), AsRequester::new(&requester, None));
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
    let client =
        ResolverClient::with_interceptor(env.channel.clone(), AsRequester::new(&requester, None));
    let publisher = crate::kafka::Publisher::new(&env.bootstrap, Duration::from_secs(30), 10_000)?;
    let audit = AuditLog::start(publisher, &env.topics, "bench").await?;
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
        conn: redis::aio::MultiplexedConnection,
        prefix: Arc<str>,
    },
    Store(crate::resolver::store::Store),
}

impl RawReader {
    async fn new(env: &Env) -> anyhow::Result<RawReader> {
        Ok(match &env.settings.redis {
            Some(url) => RawReader::Redis {
                conn: redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await?,
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

/// Publishes a full file for `persons` people through the adapters, in batches; returns
/// the highest acknowledged position per partition.
async fn seed(env: &Env, persons: u64) -> anyhow::Result<Vec<Position>> {
    let mut acks = Vec::new();
    for chunk in (0..persons).collect::<Vec<_>>().chunks(20) {
        acks.extend(seed_people(env, chunk).await?);
    }
    let mut highest: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for p in acks.into_iter().filter_map(|a| a.position) {
        let offset = highest.entry((p.topic, p.partition)).or_insert(p.offset);
        *offset = (*offset).max(p.offset);
    }
    Ok(highest
        .into_iter()
        .map(|((topic, partition), offset)| Position {
            topic,
            partition,
            offset,
        })
        .collect())
}

async fn seed_people(env: &Env, people: &[u64]) -> anyhow::Result<Vec<proto::PublishAck>> {
    use proto::{
        housing_batch_item, provident_fund_batch_item, public_security_batch_item,
        social_security_batch_item,
    };
    let date = |year, month, day| Some(proto::Date { year, month, day });
    let (mut police, mut social, mut housing, mut fund) = (vec![], vec![], vec![], vec![]);
    for &i in people {
        let id = person(i);
        police.push(proto::PublicSecurityBatchItem {
            meta: meta(&format!("I-{i}")),
            record: Some(public_security_batch_item::Record::Identity(
                proto::Identity {
                    person_id: id.clone(),
                    name: "王小明".into(),
                    // The 17th digit of the ID says it: odd for men.
                    sex: if i % 2 == 1 {
                        proto::Sex::Male
                    } else {
                        proto::Sex::Female
                    } as i32,
                    birth_date: date(1980, 1, 1),
                },
            )),
        });
        police.push(proto::PublicSecurityBatchItem {
            meta: meta(&format!("H-{i}")),
            record: Some(public_security_batch_item::Record::HouseholdRegistration(
                proto::HouseholdRegistration {
                    person_id: id.clone(),
                    household_number: format!("HH-{i}"),
                    region_code: "110105".into(),
                    address: "北京市朝阳区建国路88号3栋201".into(),
                    status: proto::HouseholdStatus::Registered as i32,
                    registered_on: date(2008, 6, 1),
                    ..Default::default()
                },
            )),
        });
        social.push(proto::SocialSecurityBatchItem {
            meta: meta(&format!("E-{i}")),
            record: Some(social_security_batch_item::Record::Enrollment(
                proto::Enrollment {
                    person_id: id.clone(),
                    insurance_type: proto::InsuranceType::Pension as i32,
                    region_code: "110105".into(),
                    employer_credit_code: "91350100M000100Y43".into(),
                    status: proto::EnrollmentStatus::Active as i32,
                    start_date: date(2015, 7, 1),
                    end_date: None,
                },
            )),
        });
        for m in 0..MONTHS {
            social.push(proto::SocialSecurityBatchItem {
                meta: meta(&format!("P-{i}-{m}")),
                record: Some(social_security_batch_item::Record::ContributionPeriod(
                    proto::ContributionPeriod {
                        person_id: id.clone(),
                        insurance_type: proto::InsuranceType::Pension as i32,
                        region_code: "110105".into(),
                        employer_credit_code: "91350100M000100Y43".into(),
                        period: Some(proto::YearMonth {
                            year: 2023 + (m / 12) as i32,
                            month: (m % 12) as i32 + 1,
                        }),
                        base_fen: 1_000_000,
                        personal_fen: 80_000,
                        employer_fen: 160_000,
                    },
                )),
            });
        }
        fund.push(proto::ProvidentFundBatchItem {
            meta: meta(&format!("A-{i}")),
            record: Some(provident_fund_batch_item::Record::Account(
                proto::ProvidentFundAccount {
                    person_id: id.clone(),
                    account_number: format!("GJJ-{i}"),
                    region_code: "110105".into(),
                    employer_credit_code: "91350100M000100Y43".into(),
                    status: proto::AccountStatus::Active as i32,
                    balance_fen: 12_300_000,
                    monthly_deposit_fen: 240_000,
                    opened_on: date(2010, 1, 4),
                },
            )),
        });
        let unit = format!("110105001002GB00017F{:08}", 30_000_000 + i);
        fund.push(proto::ProvidentFundBatchItem {
            meta: meta(&format!("L-{i}")),
            record: Some(provident_fund_batch_item::Record::Loan(
                proto::ProvidentFundLoan {
                    borrower_id: id.clone(),
                    loan_contract_number: format!("GJJ-L-{i}"),
                    unit_number: unit.clone(),
                    principal_fen: 60_000_000,
                    outstanding_principal_fen: 30_000_000,
                    status: proto::LoanStatus::Repaying as i32,
                    issued_on: date(2008, 6, 1),
                },
            )),
        });
        housing.push(proto::HousingBatchItem {
            meta: meta(&format!("T-{i}")),
            record: Some(housing_batch_item::Record::PropertyTitle(
                proto::PropertyTitle {
                    unit_number: unit,
                    certificate_number: format!("JING-{i}"),
                    address: "北京市朝阳区建国路88号3栋201".into(),
                    owners: vec![proto::Owner {
                        person_id: id,
                        share_basis_points: 10_000,
                    }],
                    floor_area_dm2: 8_932,
                    encumbrances: vec![],
                    registered_on: date(2008, 5, 20),
                },
            )),
        });
    }
    let channel = env.channel.clone();
    let mut acks = Vec::new();
    acks.extend(
        PublicSecurityAdapterClient::new(channel.clone())
            .publish_batch(proto::PublishPublicSecurityBatchRequest { items: police })
            .await?
            .into_inner()
            .acks,
    );
    acks.extend(
        SocialSecurityAdapterClient::new(channel.clone())
            .publish_batch(proto::PublishSocialSecurityBatchRequest { items: social })
            .await?
            .into_inner()
            .acks,
    );
    acks.extend(
        HousingAdapterClient::new(channel.clone())
            .publish_batch(proto::PublishHousingBatchRequest { items: housing })
            .await?
            .into_inner()
            .acks,
    );
    acks.extend(
        ProvidentFundAdapterClient::new(channel)
            .publish_batch(proto::PublishProvidentFundBatchRequest { items: fund })
            .await?
            .into_inner()
            .acks,
    );
    Ok(acks)
}
