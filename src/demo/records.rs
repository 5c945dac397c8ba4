//! The records the demo's agencies publish: one flat, its seller and its buyer. Fixed data
//! so the narration reads the same on every run; only the publish times are real.

use std::time::SystemTime;

use crate::domain::resident_id::check_character;
use crate::proto::{self, Date, EncumbranceKind, HouseholdStatus, LoanStatus, PublishMeta};

/// The flat being sold (a 28-character real-estate unit number in Beijing's Chaoyang).
pub(super) const UNIT: &str = "110105001002GB00017F00030201";

/// The flat's address, as both the police and the housing bureau record it.
const ADDRESS: &str = "Building 3, Unit 2, Room 201, Chaoyang, Beijing";

/// A valid (fictional) resident ID number from its first 17 digits.
pub(super) fn person(first17: &str) -> String {
    format!("{first17}{}", check_character(first17))
}

/// `id` with its check character changed, so the number no longer validates.
pub(super) fn mistyped(id: &str) -> String {
    let mut mistyped = id.to_owned();
    mistyped.replace_range(17.., if id.ends_with('0') { "1" } else { "0" });
    mistyped
}

/// The seller's identity record (name, sex, birth date) under `person_id`, as `record_id`.
pub(super) fn identity(person_id: &str, record_id: &str) -> proto::PublishIdentityRequest {
    proto::PublishIdentityRequest {
        meta: meta(record_id, 1),
        record: Some(proto::Identity {
            person_id: person_id.into(),
            name: "Li Ming".into(),
            sex: proto::Sex::Male as i32,
            birth_date: date(1980, 3, 12),
        }),
    }
}

/// The seller's household registration at the flat, at `version` with `status`.
pub(super) fn household(
    seller: &str,
    version: u64,
    status: HouseholdStatus,
) -> proto::PublishHouseholdRegistrationRequest {
    proto::PublishHouseholdRegistrationRequest {
        meta: meta("hukou-1", version),
        record: Some(proto::HouseholdRegistration {
            person_id: seller.into(),
            household_number: "110105-0042".into(),
            region_code: "110105".into(),
            address: ADDRESS.into(),
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
    }
}

/// The sale contract's number.
pub(super) const CONTRACT: &str = "WQ-2026-000981";

/// The flat's title at `version`: `owner` owns all of it; at version 1 (the seller's)
/// with a provident-fund mortgage on it, after the sale without.
pub(super) fn title(owner: &str, version: u64) -> proto::PublishPropertyTitleRequest {
    let mortgage = proto::Encumbrance {
        kind: EncumbranceKind::Mortgage as i32,
        holder_credit_code: "91350100M000100Y43".into(),
        amount_fen: 60_000_000,
        registered_on: date(2008, 6, 1),
    };
    proto::PublishPropertyTitleRequest {
        meta: meta("title-1", version),
        record: Some(proto::PropertyTitle {
            unit_number: UNIT.into(),
            certificate_number: "JING-2008-0123456".into(),
            address: ADDRESS.into(),
            owners: vec![proto::Owner {
                person_id: owner.into(),
                share_basis_points: 10_000,
            }],
            floor_area_dm2: 8_932,
            encumbrances: if version == 1 {
                vec![mortgage]
            } else {
                Vec::new()
            },
            registered_on: if version == 1 {
                date(2008, 5, 20)
            } else {
                date(2026, 11, 26)
            },
        }),
    }
}

/// The seller's provident-fund loan on the flat, at `version` with `status`.
pub(super) fn loan(
    seller: &str,
    version: u64,
    status: LoanStatus,
    outstanding_fen: i64,
) -> proto::PublishLoanRequest {
    proto::PublishLoanRequest {
        meta: meta("loan-1", version),
        record: Some(proto::ProvidentFundLoan {
            borrower_id: seller.into(),
            loan_contract_number: "GJJ-2008-7788".into(),
            unit_number: UNIT.into(),
            principal_fen: 60_000_000,
            outstanding_principal_fen: outstanding_fen,
            status: status as i32,
            issued_on: date(2008, 6, 1),
        }),
    }
}

/// Beijing's Chaoyang district and Shanghai's Xuhui district.
pub(super) const BEIJING: &str = "110105";
pub(super) const SHANGHAI: &str = "310104";

/// The buyer's active pension enrollment in Beijing.
pub(super) fn pension(buyer: &str) -> proto::PublishEnrollmentRequest {
    pension_in(buyer, BEIJING)
}

/// `person`'s active pension enrollment in `region`: since 2015 in Beijing, from this
/// month in Shanghai (a new employer there).
pub(super) fn pension_in(person: &str, region: &str) -> proto::PublishEnrollmentRequest {
    let beijing = region == BEIJING;
    proto::PublishEnrollmentRequest {
        meta: meta(&format!("pension-{region}"), 1),
        record: Some(proto::Enrollment {
            person_id: person.into(),
            insurance_type: proto::InsuranceType::Pension as i32,
            region_code: region.into(),
            employer_credit_code: if beijing {
                "91110000802100433B".into()
            } else {
                "91350100M000100Y43".into()
            },
            status: proto::EnrollmentStatus::Active as i32,
            start_date: if beijing {
                date(2015, 7, 1)
            } else {
                date(2026, 11, 1)
            },
            end_date: None,
        }),
    }
}

/// Beijing's certificate that `person`'s pension account leaves for Shanghai.
pub(super) fn transfer_out(person: &str) -> proto::PublishTransferOutCertificateRequest {
    proto::PublishTransferOutCertificateRequest {
        meta: meta("transfer-out-1", 1),
        record: Some(proto::TransferOutCertificate {
            person_id: person.into(),
            insurance_type: proto::InsuranceType::Pension as i32,
            certificate_number: "ZY-110105-2026-0377".into(),
            from_region_code: BEIJING.into(),
            to_region_code: SHANGHAI.into(),
            issued_on: date(2026, 11, 26),
            contribution_months: 136,
            personal_account_balance_fen: 10_880_000,
        }),
    }
}

/// The signed contract selling the flat from the seller to the buyer.
pub(super) fn sale_contract(
    seller: &str,
    buyer: &str,
    version: u64,
    status: proto::SaleContractStatus,
) -> proto::PublishSaleContractRequest {
    proto::PublishSaleContractRequest {
        meta: meta("contract-1", version),
        record: Some(proto::SaleContract {
            contract_number: CONTRACT.into(),
            unit_number: UNIT.into(),
            seller_ids: vec![seller.into()],
            buyer_ids: vec![buyer.into()],
            price_fen: 520_000_000,
            status: status as i32,
            signed_on: date(2026, 11, 20),
        }),
    }
}

/// Publish metadata; the source event ID names the record and version, so a traced
/// replay shows as the same change delivered again.
fn meta(record_id: &str, version: u64) -> Option<PublishMeta> {
    Some(PublishMeta {
        record_id: record_id.into(),
        version,
        source_event_id: format!("demo-{record_id}-v{version}"),
        occurred_at: Some(SystemTime::now().into()),
    })
}

/// A civil date.
fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}
