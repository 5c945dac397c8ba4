//! `govlink demo`: a second-hand flat changes hands. Four agencies publish what they
//! know through their adapters (real gRPC calls), the resolver brings it together, and
//! the narration says what happened in plain words. Every step checks its outcome, so the
//! demo fails loudly if the system does not behave as promised.

use std::io::Write;
use std::time::SystemTime;

use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::app::{App, Role};
use crate::config::Settings;
use crate::domain::ResidentId;
use crate::domain::resident_id::check_character;
use crate::proto::housing_adapter_client::HousingAdapterClient;
use crate::proto::provident_fund_adapter_client::ProvidentFundAdapterClient;
use crate::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use crate::proto::resolver_client::ResolverClient;
use crate::proto::social_security_adapter_client::SocialSecurityAdapterClient;
use crate::proto::{
    self, Date, EncumbranceKind, HouseholdStatus, ListSubjectRecordsRequest, LoanStatus, Position,
    PublishAck, PublishMeta, RecordEvent, SubjectKind, record_event::Payload,
};

/// The flat being sold (a 28-character real-estate unit number in Beijing's Chaoyang).
const UNIT: &str = "110105001002GB00017F00030201";

/// Runs the scenario against an app built from `settings` (embedded broker and in-memory
/// store unless `kafka`/`redis` are set), writing the narration to `out`.
pub async fn run(settings: &Settings, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    settings.grpc_addr = ([127, 0, 0, 1], 0).into();
    let app = App::build(&settings, Role::Dev).await?;
    let addr = app.grpc_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));

    let result = scenario(&format!("http://{addr}"), out).await;
    stop.cancel();
    server.await??;
    result
}

async fn scenario(endpoint: &str, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let channel = Channel::from_shared(endpoint.to_owned())?.connect().await?;
    let mut police = PublicSecurityAdapterClient::new(channel.clone());
    let mut housing = HousingAdapterClient::new(channel.clone());
    let mut fund = ProvidentFundAdapterClient::new(channel.clone());
    let mut social = SocialSecurityAdapterClient::new(channel.clone());
    let mut resolver = ResolverClient::new(channel);

    let seller = person("11010519800312001");
    let buyer = person("31010419900521002");
    let seller_masked = ResidentId::parse(&seller)?.masked();
    let buyer_masked = ResidentId::parse(&buyer)?.masked();
    let mut positions: Vec<Position> = Vec::new();

    writeln!(out, "govlink demo: a second-hand flat changes hands")?;
    writeln!(
        out,
        "  flat {UNIT}; seller {seller_masked}; buyer {buyer_masked}"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "1. Each agency publishes what it knows, through its own adapter:"
    )?;

    let ack = police
        .publish_identity(proto::PublishIdentityRequest {
            meta: meta("person-1", 1),
            record: Some(proto::Identity {
                person_id: seller.clone(),
                name: "Li Ming".into(),
                sex: proto::Sex::Male as i32,
                birth_date: date(1980, 3, 12),
            }),
        })
        .await?
        .into_inner();
    say(
        out,
        "public security",
        "the seller's identity",
        &ack,
        &mut positions,
    )?;

    let household =
        |version: u64, status: HouseholdStatus| proto::PublishHouseholdRegistrationRequest {
            meta: meta("hukou-1", version),
            record: Some(proto::HouseholdRegistration {
                person_id: seller.clone(),
                household_number: "110105-0042".into(),
                region_code: "110105".into(),
                address: "Building 3, Unit 2, Room 201, Chaoyang, Beijing".into(),
                status: status as i32,
                property_unit_number: UNIT.into(),
                registered_on: date(2008, 6, 1),
                destination_region_code: if status == HouseholdStatus::MovedOut {
                    "310104".into()
                } else {
                    String::new()
                },
                destination_address: String::new(),
            }),
        };
    let ack = police
        .publish_household_registration(household(1, HouseholdStatus::Registered))
        .await?
        .into_inner();
    say(
        out,
        "public security",
        "the seller's household registration, at the flat",
        &ack,
        &mut positions,
    )?;

    let ack = housing
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta("title-1", 1),
            record: Some(proto::PropertyTitle {
                unit_number: UNIT.into(),
                certificate_number: "JING-2008-0123456".into(),
                address: "Building 3, Unit 2, Room 201, Chaoyang, Beijing".into(),
                owners: vec![proto::Owner {
                    person_id: seller.clone(),
                    share_basis_points: 10_000,
                }],
                floor_area_dm2: 8_932,
                encumbrances: vec![proto::Encumbrance {
                    kind: EncumbranceKind::Mortgage as i32,
                    holder_credit_code: "91350100M000100Y43".into(),
                    amount_fen: 60_000_000,
                    registered_on: date(2008, 6, 1),
                }],
                registered_on: date(2008, 5, 20),
            }),
        })
        .await?
        .into_inner();
    say(
        out,
        "housing",
        "the flat's title, one owner, mortgaged",
        &ack,
        &mut positions,
    )?;

    let loan = |version: u64, status: LoanStatus, outstanding: i64| proto::PublishLoanRequest {
        meta: meta("loan-1", version),
        record: Some(proto::ProvidentFundLoan {
            borrower_id: seller.clone(),
            loan_contract_number: "GJJ-2008-7788".into(),
            unit_number: UNIT.into(),
            principal_fen: 60_000_000,
            outstanding_principal_fen: outstanding,
            status: status as i32,
            issued_on: date(2008, 6, 1),
        }),
    };
    let ack = fund
        .publish_loan(loan(1, LoanStatus::Repaying, 12_345_600))
        .await?
        .into_inner();
    say(
        out,
        "provident fund",
        "the seller's loan on the flat, still repaying",
        &ack,
        &mut positions,
    )?;

    let ack = social
        .publish_enrollment(proto::PublishEnrollmentRequest {
            meta: meta("pension-1", 1),
            record: Some(proto::Enrollment {
                person_id: buyer.clone(),
                insurance_type: proto::InsuranceType::Pension as i32,
                region_code: "110105".into(),
                employer_credit_code: "91110000802100433B".into(),
                status: proto::EnrollmentStatus::Active as i32,
                start_date: date(2015, 7, 1),
                end_date: None,
            }),
        })
        .await?
        .into_inner();
    say(
        out,
        "social security",
        "the buyer's pension enrollment in Beijing",
        &ack,
        &mut positions,
    )?;

    let ack = housing
        .publish_sale_contract(proto::PublishSaleContractRequest {
            meta: meta("contract-1", 1),
            record: Some(proto::SaleContract {
                contract_number: "WQ-2026-000981".into(),
                unit_number: UNIT.into(),
                seller_ids: vec![seller.clone()],
                buyer_ids: vec![buyer.clone()],
                price_fen: 520_000_000,
                status: proto::SaleContractStatus::Signed as i32,
                signed_on: date(2026, 11, 20),
            }),
        })
        .await?
        .into_inner();
    say(
        out,
        "housing",
        "the signed sale contract",
        &ack,
        &mut positions,
    )?;

    writeln!(out)?;
    writeln!(
        out,
        "2. The service window asks the resolver what every agency knows about the flat:"
    )?;
    let records = flat_records(&mut resolver, &positions).await?;
    describe(out, &records)?;
    expect(
        records.len() == 4,
        "the flat should have four records (household, title, contract, loan)",
    )?;

    writeln!(out)?;
    writeln!(
        out,
        "3. The seller settles the loan and moves the household registration out:"
    )?;
    let ack = fund
        .publish_loan(loan(2, LoanStatus::Settled, 0))
        .await?
        .into_inner();
    say(
        out,
        "provident fund",
        "the loan, now settled",
        &ack,
        &mut positions,
    )?;
    let ack = police
        .publish_household_registration(household(2, HouseholdStatus::MovedOut))
        .await?
        .into_inner();
    say(
        out,
        "public security",
        "the household registration, moved out to Shanghai",
        &ack,
        &mut positions,
    )?;

    writeln!(out)?;
    writeln!(
        out,
        "4. A late, duplicated delivery of the old household record (version 1) arrives:"
    )?;
    let ack = police
        .publish_household_registration(household(1, HouseholdStatus::Registered))
        .await?
        .into_inner();
    say(
        out,
        "public security",
        "the old household record again",
        &ack,
        &mut positions,
    )?;
    let records = flat_records(&mut resolver, &positions).await?;
    describe(out, &records)?;
    let household_now = records.iter().find_map(|r| match &r.payload {
        Some(Payload::HouseholdRegistration(h)) => Some((r.version, h.status)),
        _ => None,
    });
    expect(
        household_now == Some((2, HouseholdStatus::MovedOut as i32)),
        "the resolver should keep version 2 (moved out) despite the late version 1",
    )?;
    writeln!(
        out,
        "   The resolver kept version 2: older versions never overwrite newer ones."
    )?;

    writeln!(out)?;
    writeln!(
        out,
        "5. An agency system sends a record with a mistyped ID number:"
    )?;
    let mut mistyped = seller.clone();
    mistyped.replace_range(17.., if seller.ends_with('0') { "1" } else { "0" });
    let refused = police
        .publish_identity(Request::new(proto::PublishIdentityRequest {
            meta: meta("person-2", 1),
            record: Some(proto::Identity {
                person_id: mistyped,
                name: "Li Ming".into(),
                sex: proto::Sex::Male as i32,
                birth_date: date(1980, 3, 12),
            }),
        }))
        .await;
    match refused {
        Err(status) if status.code() == Code::InvalidArgument => {
            writeln!(
                out,
                "   refused with INVALID_ARGUMENT: {}",
                status.message()
            )?;
        }
        other => anyhow::bail!("a mistyped ID number should be refused, got {other:?}"),
    }

    writeln!(out)?;
    writeln!(
        out,
        "6. Everything govlink knows about the buyer, across agencies:"
    )?;
    let buyer_records = resolver
        .list_subject_records(ListSubjectRecordsRequest {
            subject: Some(proto::Subject {
                kind: SubjectKind::Person as i32,
                id: buyer,
            }),
            min_positions: positions.clone(),
        })
        .await?
        .into_inner()
        .records;
    describe(out, &buyer_records)?;
    expect(
        buyer_records.len() == 2,
        "the buyer should have a pension enrollment and a contract",
    )?;

    writeln!(out)?;
    writeln!(
        out,
        "Done: every record was acknowledged by the broker, materialized, and read back."
    )?;
    Ok(())
}

async fn flat_records(
    resolver: &mut ResolverClient<Channel>,
    positions: &[Position],
) -> anyhow::Result<Vec<RecordEvent>> {
    Ok(resolver
        .list_subject_records(ListSubjectRecordsRequest {
            subject: Some(proto::Subject {
                kind: SubjectKind::PropertyUnit as i32,
                id: UNIT.into(),
            }),
            min_positions: positions.to_vec(),
        })
        .await?
        .into_inner()
        .records)
}

fn say(
    out: &mut (dyn Write + Send),
    agency: &str,
    what: &str,
    ack: &PublishAck,
    positions: &mut Vec<Position>,
) -> anyhow::Result<()> {
    let position = ack
        .position
        .clone()
        .ok_or_else(|| anyhow::anyhow!("an ack without a position"))?;
    writeln!(
        out,
        "   {agency:>15}: {what} — version {}, acknowledged at partition {} offset {}",
        ack.version, position.partition, position.offset
    )?;
    positions.push(position);
    Ok(())
}

fn describe(out: &mut (dyn Write + Send), records: &[RecordEvent]) -> anyhow::Result<()> {
    for r in records {
        let line = match &r.payload {
            Some(Payload::PropertyTitle(t)) => format!(
                "housing: title {}, {} owner(s), {} encumbrance(s)",
                t.certificate_number,
                t.owners.len(),
                t.encumbrances.len()
            ),
            Some(Payload::SaleContract(c)) => format!(
                "housing: sale contract {}, price {} yuan, {}",
                c.contract_number,
                c.price_fen / 100,
                enum_name(proto::SaleContractStatus::try_from(c.status).map(|s| s.as_str_name()))
            ),
            Some(Payload::ProvidentFundLoan(l)) => format!(
                "provident fund: loan {}, outstanding {} yuan, {}",
                l.loan_contract_number,
                l.outstanding_principal_fen / 100,
                enum_name(LoanStatus::try_from(l.status).map(|s| s.as_str_name()))
            ),
            Some(Payload::HouseholdRegistration(h)) => format!(
                "public security: household registration {}",
                enum_name(HouseholdStatus::try_from(h.status).map(|s| s.as_str_name()))
            ),
            Some(Payload::Enrollment(e)) => format!(
                "social security: {} enrollment in {}, {}",
                enum_name(
                    proto::InsuranceType::try_from(e.insurance_type).map(|s| s.as_str_name())
                ),
                e.region_code,
                enum_name(proto::EnrollmentStatus::try_from(e.status).map(|s| s.as_str_name()))
            ),
            Some(other) => format!("{other:?}"),
            None => "deleted".into(),
        };
        writeln!(out, "   - {line} (version {})", r.version)?;
    }
    Ok(())
}

fn enum_name<E>(name: Result<&'static str, E>) -> &'static str {
    name.unwrap_or("UNKNOWN")
}

fn expect(ok: bool, what: &str) -> anyhow::Result<()> {
    if ok {
        Ok(())
    } else {
        anyhow::bail!("demo check failed: {what}")
    }
}

/// A valid (fictional) resident ID number from its first 17 digits.
fn person(first17: &str) -> String {
    format!("{first17}{}", check_character(first17))
}

fn meta(record_id: &str, version: u64) -> Option<PublishMeta> {
    Some(PublishMeta {
        record_id: record_id.into(),
        version,
        source_event_id: format!("demo-{record_id}-v{version}"),
        occurred_at: Some(SystemTime::now().into()),
    })
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}
