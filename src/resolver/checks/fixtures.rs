//! Record events for the checks' unit tests: valid identifiers, one builder per record type.

use crate::domain::{CivilDate, DivisionCode, ResidentId, UnitNumber};
use crate::proto::{self, Agency, Op, RecordEvent, record_event::Payload};
use crate::records::RecordType;

pub(crate) const SELLER_A: &str = "110105198001010016";
pub(crate) const SELLER_B: &str = "110105198202020026";
pub(crate) const BUYER_A: &str = "310104199005210037";
pub(crate) const BUYER_B: &str = "310104199206120046";
pub(crate) const OTHER: &str = "440305198503150059";
/// Chaoyang, Beijing.
pub(crate) const BEIJING: &str = "110105";
/// Xuhui, Shanghai.
pub(crate) const SHANGHAI: &str = "310104";
/// A flat in Chaoyang, Beijing.
pub(crate) const UNIT: &str = "110105001002GB00017F00030201";
pub(crate) const OTHER_UNIT: &str = "110105001002GB00017F00030202";
pub(crate) const UNIT_ADDRESS: &str = "北京市朝阳区建国路88号3号楼2单元501室";

pub(crate) fn id(text: &str) -> ResidentId {
    ResidentId::parse_as_of(text, CivilDate::MAX).unwrap()
}

pub(crate) fn unit() -> UnitNumber {
    UnitNumber::parse(UNIT).unwrap()
}

pub(crate) fn region(code: &str) -> DivisionCode {
    DivisionCode::parse(code).unwrap()
}

pub(crate) fn date(year: i32, month: u32, day: u32) -> CivilDate {
    CivilDate::new(year, month, day).unwrap()
}

fn wire_date(year: i32, month: i32, day: i32) -> Option<proto::Date> {
    Some(proto::Date { year, month, day })
}

/// An upsert of `payload` as record `record_id` at `version`.
pub(crate) fn event(record_id: &str, version: u64, payload: Payload) -> RecordEvent {
    let record_type = RecordType::of_payload(&payload);
    RecordEvent {
        event_id: format!("ev-{record_id}-{version}"),
        agency: record_type.agency() as i32,
        record_type: record_type.as_str().to_owned(),
        record_id: record_id.to_owned(),
        version,
        op: Op::Upsert as i32,
        payload: Some(payload),
        ..RecordEvent::default()
    }
}

/// A deletion of record `record_id` of type `record_type` at `version`.
pub(crate) fn deletion(
    agency: Agency,
    record_type: &str,
    record_id: &str,
    version: u64,
) -> RecordEvent {
    RecordEvent {
        event_id: format!("ev-{record_id}-{version}-deleted"),
        agency: agency as i32,
        record_type: record_type.to_owned(),
        record_id: record_id.to_owned(),
        version,
        op: Op::Delete as i32,
        payload: None,
        ..RecordEvent::default()
    }
}

/// A title of [`UNIT`] at [`UNIT_ADDRESS`] with these owners and shares (basis points).
pub(crate) fn title(version: u64, owners: &[(&str, u32)], seized: bool) -> RecordEvent {
    let mut encumbrances = vec![proto::Encumbrance {
        kind: proto::EncumbranceKind::Mortgage as i32,
        holder_credit_code: "91110000100000000X".into(),
        amount_fen: 100_000_000,
        registered_on: wire_date(2015, 6, 1),
    }];
    if seized {
        encumbrances.push(proto::Encumbrance {
            kind: proto::EncumbranceKind::Seizure as i32,
            holder_credit_code: "11100000000013127N".into(),
            amount_fen: 0,
            registered_on: wire_date(2024, 1, 10),
        });
    }
    event(
        "T-UNIT",
        version,
        Payload::PropertyTitle(proto::PropertyTitle {
            unit_number: UNIT.into(),
            certificate_number: "京(2015)朝阳区不动产权第0001234号".into(),
            address: UNIT_ADDRESS.into(),
            owners: owners
                .iter()
                .map(|&(person_id, share)| proto::Owner {
                    person_id: person_id.into(),
                    share_basis_points: share,
                })
                .collect(),
            floor_area_dm2: 8_950,
            encumbrances,
            registered_on: wire_date(2015, 6, 1),
        }),
    )
}

/// A sale contract on `unit_number`.
pub(crate) fn contract(
    record_id: &str,
    version: u64,
    unit_number: &str,
    sellers: &[&str],
    buyers: &[&str],
    status: proto::SaleContractStatus,
) -> RecordEvent {
    event(
        record_id,
        version,
        Payload::SaleContract(proto::SaleContract {
            contract_number: format!("HT-{record_id}"),
            unit_number: unit_number.into(),
            seller_ids: sellers.iter().map(|s| s.to_string()).collect(),
            buyer_ids: buyers.iter().map(|s| s.to_string()).collect(),
            price_fen: 500_000_000,
            status: status as i32,
            signed_on: wire_date(2024, 3, 1),
        }),
    )
}

/// A provident-fund loan on [`UNIT`].
pub(crate) fn loan_event(
    record_id: &str,
    version: u64,
    borrower: &str,
    status: proto::LoanStatus,
    outstanding_fen: i64,
) -> RecordEvent {
    event(
        record_id,
        version,
        Payload::ProvidentFundLoan(proto::ProvidentFundLoan {
            borrower_id: borrower.into(),
            loan_contract_number: format!("GJJ-{record_id}"),
            unit_number: UNIT.into(),
            principal_fen: 80_000_000,
            outstanding_principal_fen: outstanding_fen,
            status: status as i32,
            issued_on: wire_date(2015, 6, 1),
        }),
    )
}

/// A household registration of `person` at `address`, tied to `unit_number` when not empty.
pub(crate) fn household(
    record_id: &str,
    version: u64,
    person: &str,
    address: &str,
    unit_number: &str,
    status: proto::HouseholdStatus,
) -> RecordEvent {
    let moved = status == proto::HouseholdStatus::MovedOut;
    event(
        record_id,
        version,
        Payload::HouseholdRegistration(proto::HouseholdRegistration {
            person_id: person.into(),
            household_number: format!("H-{record_id}"),
            region_code: BEIJING.into(),
            address: address.into(),
            status: status as i32,
            property_unit_number: unit_number.into(),
            registered_on: wire_date(2015, 7, 1),
            destination_region_code: if moved {
                SHANGHAI.into()
            } else {
                String::new()
            },
            destination_address: String::new(),
        }),
    )
}

/// `event`, a household registration, registered in the district `region` instead.
pub(crate) fn in_region(mut event: RecordEvent, region: &str) -> RecordEvent {
    if let Some(Payload::HouseholdRegistration(h)) = &mut event.payload {
        h.region_code = region.into();
    }
    event
}

/// The record id of [`contribution`]'s record for `prefix`, `year`, `month`.
pub(crate) fn contribution_id(prefix: &str, year: i32, month: u32) -> String {
    format!("{prefix}-{year:04}-{month:02}")
}

/// A pension contribution of [`BUYER_A`] for one month, with money paid.
pub(crate) fn contribution(
    prefix: &str,
    year: i32,
    month: u32,
    region: &str,
    version: u64,
) -> RecordEvent {
    contribution_of(
        &contribution_id(prefix, year, month),
        proto::InsuranceType::Pension,
        year,
        month,
        region,
        version,
        80_000,
    )
}

/// A contribution of [`BUYER_A`] with everything explicit; `paid_fen` is split evenly.
pub(crate) fn contribution_of(
    record_id: &str,
    insurance_type: proto::InsuranceType,
    year: i32,
    month: u32,
    region: &str,
    version: u64,
    paid_fen: i64,
) -> RecordEvent {
    contribution_for(
        BUYER_A,
        record_id,
        insurance_type,
        year,
        month,
        region,
        version,
        paid_fen,
    )
}

/// A contribution of `person` with everything explicit.
#[allow(clippy::too_many_arguments)] // a test builder: every field is a knob some test turns
pub(crate) fn contribution_for(
    person: &str,
    record_id: &str,
    insurance_type: proto::InsuranceType,
    year: i32,
    month: u32,
    region: &str,
    version: u64,
    paid_fen: i64,
) -> RecordEvent {
    event(
        record_id,
        version,
        Payload::ContributionPeriod(proto::ContributionPeriod {
            person_id: person.into(),
            insurance_type: insurance_type as i32,
            region_code: region.into(),
            employer_credit_code: String::new(),
            period: Some(proto::YearMonth {
                year,
                month: month as i32,
            }),
            base_fen: 1_000_000,
            personal_fen: paid_fen / 2,
            employer_fen: paid_fen - paid_fen / 2,
        }),
    )
}

/// An enrollment of `person`; `end` is the end date's year and month when set.
#[allow(clippy::too_many_arguments)] // a test builder: every field is a knob some test turns
pub(crate) fn enrollment(
    record_id: &str,
    version: u64,
    person: &str,
    insurance_type: proto::InsuranceType,
    region: &str,
    status: proto::EnrollmentStatus,
    start: (i32, i32),
    end: Option<(i32, i32)>,
) -> RecordEvent {
    event(
        record_id,
        version,
        Payload::Enrollment(proto::Enrollment {
            person_id: person.into(),
            insurance_type: insurance_type as i32,
            region_code: region.into(),
            employer_credit_code: String::new(),
            status: status as i32,
            start_date: wire_date(start.0, start.1, 1),
            end_date: end.and_then(|(y, m)| wire_date(y, m, 28)),
        }),
    )
}

/// A transfer-out certificate of `person`.
pub(crate) fn certificate(
    record_id: &str,
    version: u64,
    person: &str,
    insurance_type: proto::InsuranceType,
    from: &str,
    to: &str,
) -> RecordEvent {
    event(
        record_id,
        version,
        Payload::TransferOutCertificate(proto::TransferOutCertificate {
            person_id: person.into(),
            insurance_type: insurance_type as i32,
            certificate_number: format!("ZY-{record_id}"),
            from_region_code: from.into(),
            to_region_code: to.into(),
            issued_on: wire_date(2024, 5, 6),
            contribution_months: 36,
            personal_account_balance_fen: 3_000_000,
        }),
    )
}
