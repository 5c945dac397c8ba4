//! The people the benches look up and rebuild: each with the demo's mix of records, an
//! identity, a household registration, a social-security enrollment with two years of
//! monthly contributions, a provident-fund account and loan, and the title of a flat
//! ([`RECORDS_PER_PERSON`] records), published through the adapters in batches.

use std::collections::BTreeMap;
use std::ops::Range;

use futures::{StreamExt as _, TryStreamExt as _};

use super::env::{Env, birth_date, meta, person};
use crate::proto::housing_adapter_client::HousingAdapterClient;
use crate::proto::provident_fund_adapter_client::ProvidentFundAdapterClient;
use crate::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use crate::proto::social_security_adapter_client::SocialSecurityAdapterClient;
use crate::proto::{self, Position};

/// Monthly contributions per person: two years.
pub(super) const MONTHS: u32 = 24;
/// Records per person: identity, household, enrollment, the contributions, account, loan,
/// title.
pub(super) const RECORDS_PER_PERSON: u64 = 6 + MONTHS as u64;
/// People per round of batches: the social-security batch (25 records each) stays within
/// the adapters' default batch limit of 500.
const PEOPLE_PER_BATCH: usize = 20;

/// Publishes the records of `people`, `concurrency` rounds of batches at a time; returns
/// the highest acknowledged position per partition.
pub(super) async fn seed(
    env: &Env,
    people: Range<u64>,
    concurrency: usize,
) -> anyhow::Result<Vec<Position>> {
    let chunks: Vec<Vec<u64>> = people
        .collect::<Vec<_>>()
        .chunks(PEOPLE_PER_BATCH)
        .map(<[u64]>::to_vec)
        .collect();
    let acks: Vec<Vec<proto::PublishAck>> = futures::stream::iter(chunks)
        .map(|chunk| async move { publish(env, &chunk).await })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut highest: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for p in acks.into_iter().flatten().filter_map(|a| a.position) {
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

/// The records of `people`, one batch per agency.
#[derive(Default)]
struct Batches {
    police: Vec<proto::PublicSecurityBatchItem>,
    social: Vec<proto::SocialSecurityBatchItem>,
    housing: Vec<proto::HousingBatchItem>,
    fund: Vec<proto::ProvidentFundBatchItem>,
}

/// Publishes the records of `people` through the four adapters, one batch each.
async fn publish(env: &Env, people: &[u64]) -> anyhow::Result<Vec<proto::PublishAck>> {
    let mut batches = Batches::default();
    for &i in people {
        let id = person(i);
        let unit = format!("110105001002GB00017F{:08}", 30_000_000 + i);
        batches.police.extend(public_security_records(i, &id));
        batches.social.extend(social_security_records(i, &id));
        batches.fund.extend(provident_fund_records(i, &id, &unit));
        batches.housing.push(property_title(i, id, unit));
    }
    send(env, batches).await
}

/// A civil date as the protos carry it.
fn date(year: i32, month: i32, day: i32) -> Option<proto::Date> {
    Some(proto::Date { year, month, day })
}

/// Person `i`'s identity and household registration.
fn public_security_records(i: u64, id: &str) -> [proto::PublicSecurityBatchItem; 2] {
    use proto::public_security_batch_item::Record;
    [
        proto::PublicSecurityBatchItem {
            meta: meta(&format!("I-{i}")),
            record: Some(Record::Identity(proto::Identity {
                person_id: id.to_owned(),
                name: "王小明".into(),
                // The 17th digit of the ID says it: odd for men.
                sex: if i % 2 == 1 {
                    proto::Sex::Male
                } else {
                    proto::Sex::Female
                } as i32,
                birth_date: Some(birth_date(i)),
            })),
        },
        proto::PublicSecurityBatchItem {
            meta: meta(&format!("H-{i}")),
            record: Some(Record::HouseholdRegistration(
                proto::HouseholdRegistration {
                    person_id: id.to_owned(),
                    household_number: format!("HH-{i}"),
                    region_code: "110105".into(),
                    address: "北京市朝阳区建国路88号3栋201".into(),
                    status: proto::HouseholdStatus::Registered as i32,
                    registered_on: date(2008, 6, 1),
                    ..Default::default()
                },
            )),
        },
    ]
}

/// Person `i`'s pension enrollment, then its [`MONTHS`] monthly contributions.
fn social_security_records(i: u64, id: &str) -> Vec<proto::SocialSecurityBatchItem> {
    use proto::social_security_batch_item::Record;
    let enrollment = proto::SocialSecurityBatchItem {
        meta: meta(&format!("E-{i}")),
        record: Some(Record::Enrollment(proto::Enrollment {
            person_id: id.to_owned(),
            insurance_type: proto::InsuranceType::Pension as i32,
            region_code: "110105".into(),
            employer_credit_code: "91350100M000100Y43".into(),
            status: proto::EnrollmentStatus::Active as i32,
            start_date: date(2015, 7, 1),
            end_date: None,
        })),
    };
    let contributions = (0..MONTHS).map(|m| proto::SocialSecurityBatchItem {
        meta: meta(&format!("P-{i}-{m}")),
        record: Some(Record::ContributionPeriod(proto::ContributionPeriod {
            person_id: id.to_owned(),
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
        })),
    });
    std::iter::once(enrollment).chain(contributions).collect()
}

/// Person `i`'s provident-fund account, and the loan on the flat `unit`.
fn provident_fund_records(i: u64, id: &str, unit: &str) -> [proto::ProvidentFundBatchItem; 2] {
    use proto::provident_fund_batch_item::Record;
    [
        proto::ProvidentFundBatchItem {
            meta: meta(&format!("A-{i}")),
            record: Some(Record::Account(proto::ProvidentFundAccount {
                person_id: id.to_owned(),
                account_number: format!("GJJ-{i}"),
                region_code: "110105".into(),
                employer_credit_code: "91350100M000100Y43".into(),
                status: proto::AccountStatus::Active as i32,
                balance_fen: 12_300_000,
                monthly_deposit_fen: 240_000,
                opened_on: date(2010, 1, 4),
                last_deposit_month: None,
                consecutive_deposit_months: 0,
            })),
        },
        proto::ProvidentFundBatchItem {
            meta: meta(&format!("L-{i}")),
            record: Some(Record::Loan(proto::ProvidentFundLoan {
                borrower_id: id.to_owned(),
                loan_contract_number: format!("GJJ-L-{i}"),
                unit_number: unit.to_owned(),
                principal_fen: 60_000_000,
                outstanding_principal_fen: 30_000_000,
                status: proto::LoanStatus::Repaying as i32,
                issued_on: date(2008, 6, 1),
            })),
        },
    ]
}

/// The title of the flat `unit`, owned wholly by person `i`.
fn property_title(i: u64, id: String, unit: String) -> proto::HousingBatchItem {
    proto::HousingBatchItem {
        meta: meta(&format!("T-{i}")),
        record: Some(proto::housing_batch_item::Record::PropertyTitle(
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
    }
}

/// Publishes each agency's batch through its adapter, in turn; returns the acks in the
/// order of the batches.
async fn send(env: &Env, batches: Batches) -> anyhow::Result<Vec<proto::PublishAck>> {
    let Batches {
        police,
        social,
        housing,
        fund,
    } = batches;
    let mut acks = Vec::new();
    acks.extend(
        PublicSecurityAdapterClient::new(env.channel_as("public-security/records").await?)
            .publish_batch(proto::PublishPublicSecurityBatchRequest { items: police })
            .await?
            .into_inner()
            .acks,
    );
    acks.extend(
        SocialSecurityAdapterClient::new(env.channel_as("social-security/records").await?)
            .publish_batch(proto::PublishSocialSecurityBatchRequest { items: social })
            .await?
            .into_inner()
            .acks,
    );
    acks.extend(
        HousingAdapterClient::new(env.channel_as("housing/records").await?)
            .publish_batch(proto::PublishHousingBatchRequest { items: housing })
            .await?
            .into_inner()
            .acks,
    );
    acks.extend(
        ProvidentFundAdapterClient::new(env.channel_as("provident-fund/records").await?)
            .publish_batch(proto::PublishProvidentFundBatchRequest { items: fund })
            .await?
            .into_inner()
            .acks,
    );
    Ok(acks)
}
