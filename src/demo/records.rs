//! The records the demo's agencies publish: one flat, its seller and its buyer (or one
//! worker). The story's own numbers, so the narration reads the same on every run; on a
//! broker and Redis of the operator's, numbers of the run's own ([`Run`]). Only the
//! publish times are real.

use std::time::SystemTime;

use crate::domain::resident_id::check_character;
use crate::proto::{self, Date, EncumbranceKind, HouseholdStatus, LoanStatus, PublishMeta};

/// The flat being sold (a 28-character real-estate unit number in Beijing's Chaoyang).
const UNIT: &str = "110105001002GB00017F00030201";

/// The flat's address, as both the police and the housing bureau record it.
const ADDRESS: &str = "Building 3, Unit 2, Room 201, Chaoyang, Beijing";

/// The sale contract's number.
const CONTRACT: &str = "WQ-2026-000981";

/// Whose flat, people and record ids one run of the demo uses.
///
/// The store keeps the highest version of each record, and a case is found again by the
/// request that opened it. A second run reusing the first one's records, people, flat
/// and requests on the same broker and Redis therefore met the first one's ending: its
/// version-1 publishes were stale (the store kept the first run's version 2), the title
/// already named the buyer, and `OpenCase` answered with the completed case. Where the
/// world outlives a run, each run draws a flat, people and ids no run used before.
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    /// Random bits the run's numbers are taken from; `None`: the story's own numbers.
    drawn: Option<u128>,
}

impl Run {
    /// The story's own numbers: for a world that is new every run (the embedded broker
    /// and in-memory stores).
    pub(super) fn own() -> Run {
        Run { drawn: None }
    }

    /// Numbers of this run's own: for a broker and Redis that keep earlier runs'.
    pub(super) fn fresh() -> Run {
        Run {
            drawn: Some(uuid::Uuid::new_v4().as_u128()),
        }
    }

    /// The drawn number's digits `from` (counting from the last, 0-based) on, below
    /// `10^count`: each number of the run is taken from digits of its own.
    fn digits(drawn: u128, from: u32, count: u32) -> u64 {
        let digits = drawn / 10u128.pow(from) % 10u128.pow(count);
        u64::try_from(digits).expect("fewer than 20 digits")
    }

    /// The run's tag (the first 48 bits of its random number, in hex), if it has one.
    pub(super) fn tag(&self) -> Option<String> {
        // A version-4 UUID's first 48 bits are all random.
        self.drawn.map(|d| format!("{d:032x}")[..12].to_owned())
    }

    /// `base` (a record or request id of the story), ending in this run's tag if any.
    pub(super) fn id(&self, base: &str) -> String {
        match self.tag() {
            Some(tag) => format!("{base}-{tag}"),
            None => base.to_owned(),
        }
    }

    /// The flat: the story's unit, or another in the same district and zone.
    pub(super) fn unit(&self) -> String {
        match self.drawn {
            // 5 digits of parcel, 8 of building, floor and room.
            Some(d) => format!(
                "110105001002GB{:05}F{:08}",
                Run::digits(d, 8, 5),
                Run::digits(d, 0, 8)
            ),
            None => UNIT.to_owned(),
        }
    }

    /// The sale contract's number.
    pub(super) fn contract(&self) -> String {
        match self.drawn {
            Some(d) => format!("WQ-2026-{:06}", Run::digits(d, 13, 6)),
            None => CONTRACT.to_owned(),
        }
    }

    /// A valid (fictional) resident ID number from the story's first 17 digits; in a
    /// fresh run, with the rest of the region code and the sequence number drawn (the
    /// province, birth date and sex stay the story's, so the records still agree).
    pub(super) fn person(&self, first17: &str) -> String {
        let first17 = match self.drawn {
            Some(d) => {
                let odd = u64::from(first17.as_bytes()[16] - b'0') % 2;
                // The sequence's last digit is the sex: odd for men, even for women.
                let sequence = Run::digits(d, 23, 3) / 2 * 2 + odd;
                format!(
                    "{}{:04}{}{sequence:03}",
                    &first17[..2],
                    Run::digits(d, 19, 4),
                    &first17[6..14]
                )
            }
            None => first17.to_owned(),
        };
        format!("{first17}{}", check_character(&first17))
    }
}

/// `id` with its check character changed, so the number no longer validates.
pub(super) fn mistyped(id: &str) -> String {
    let mut mistyped = id.to_owned();
    mistyped.replace_range(17.., if id.ends_with('0') { "1" } else { "0" });
    mistyped
}

/// The seller's identity record (name, sex, birth date) under `person_id`, as `record_id`.
pub(super) fn identity(
    run: &Run,
    person_id: &str,
    record_id: &str,
) -> proto::PublishIdentityRequest {
    proto::PublishIdentityRequest {
        meta: meta(&run.id(record_id), 1),
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
    run: &Run,
    seller: &str,
    version: u64,
    status: HouseholdStatus,
) -> proto::PublishHouseholdRegistrationRequest {
    proto::PublishHouseholdRegistrationRequest {
        meta: meta(&run.id("hukou-1"), version),
        record: Some(proto::HouseholdRegistration {
            person_id: seller.into(),
            household_number: "110105-0042".into(),
            region_code: "110105".into(),
            address: ADDRESS.into(),
            status: status as i32,
            property_unit_number: run.unit(),
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

/// The flat's title at `version`: `owner` owns all of it; at version 1 (the seller's)
/// with a provident-fund mortgage on it, after the sale without.
pub(super) fn title(run: &Run, owner: &str, version: u64) -> proto::PublishPropertyTitleRequest {
    let mortgage = proto::Encumbrance {
        kind: EncumbranceKind::Mortgage as i32,
        holder_credit_code: "91350100M000100Y43".into(),
        amount_fen: 60_000_000,
        registered_on: date(2008, 6, 1),
    };
    proto::PublishPropertyTitleRequest {
        meta: meta(&run.id("title-1"), version),
        record: Some(proto::PropertyTitle {
            unit_number: run.unit(),
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
    run: &Run,
    seller: &str,
    version: u64,
    status: LoanStatus,
    outstanding_fen: i64,
) -> proto::PublishLoanRequest {
    proto::PublishLoanRequest {
        meta: meta(&run.id("loan-1"), version),
        record: Some(proto::ProvidentFundLoan {
            borrower_id: seller.into(),
            loan_contract_number: "GJJ-2008-7788".into(),
            unit_number: run.unit(),
            principal_fen: 60_000_000,
            outstanding_principal_fen: outstanding_fen,
            status: status as i32,
            issued_on: date(2008, 6, 1),
        }),
    }
}

/// The buyer's provident-fund account in Beijing: active, 68,000 yuan saved, deposits
/// paid without a gap for the 36 months up to `last_deposit` (the month before the run's).
pub(super) fn fund_account(
    run: &Run,
    buyer: &str,
    last_deposit: proto::YearMonth,
) -> proto::PublishAccountRequest {
    proto::PublishAccountRequest {
        meta: meta(&run.id("fund-account-1"), 1),
        record: Some(proto::ProvidentFundAccount {
            person_id: buyer.into(),
            account_number: "GJJ-110105-0099".into(),
            region_code: BEIJING.into(),
            employer_credit_code: "91110000802100433B".into(),
            status: proto::AccountStatus::Active as i32,
            balance_fen: 6_800_000,
            monthly_deposit_fen: 360_000,
            opened_on: date(2015, 7, 1),
            last_deposit_month: Some(last_deposit),
            consecutive_deposit_months: 36,
        }),
    }
}

/// Beijing's Chaoyang district and Shanghai's Xuhui district.
pub(super) const BEIJING: &str = "110105";
pub(super) const SHANGHAI: &str = "310104";

/// The buyer's active pension enrollment in Beijing.
pub(super) fn pension(run: &Run, buyer: &str) -> proto::PublishEnrollmentRequest {
    pension_in(run, buyer, BEIJING)
}

/// `person`'s active pension enrollment in `region`: since 2015 in Beijing, from this
/// month in Shanghai (a new employer there).
pub(super) fn pension_in(run: &Run, person: &str, region: &str) -> proto::PublishEnrollmentRequest {
    let beijing = region == BEIJING;
    proto::PublishEnrollmentRequest {
        meta: meta(&run.id(&format!("pension-{region}")), 1),
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
pub(super) fn transfer_out(run: &Run, person: &str) -> proto::PublishTransferOutCertificateRequest {
    proto::PublishTransferOutCertificateRequest {
        meta: meta(&run.id("transfer-out-1"), 1),
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
    run: &Run,
    seller: &str,
    buyer: &str,
    version: u64,
    status: proto::SaleContractStatus,
) -> proto::PublishSaleContractRequest {
    proto::PublishSaleContractRequest {
        meta: meta(&run.id("contract-1"), version),
        record: Some(proto::SaleContract {
            contract_number: run.contract(),
            unit_number: run.unit(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ResidentId, UnitNumber};

    #[test]
    fn a_fresh_run_draws_valid_numbers_of_its_own_and_keeps_what_the_records_say() {
        let own = Run::own();
        assert_eq!(own.unit(), UNIT);
        assert_eq!(own.id("hukou-1"), "hukou-1");
        let seller = "11010519800312001";
        let story = ResidentId::parse(&own.person(seller)).unwrap();

        let (a, b) = (Run::fresh(), Run::fresh());
        for run in [a, b] {
            let drawn = ResidentId::parse(&run.person(seller)).unwrap();
            // The identity record's birth date and sex still agree with the number.
            assert_eq!(drawn.birth_date(), story.birth_date());
            assert_eq!(drawn.sex(), story.sex());
            assert_eq!(&drawn.as_str()[..2], "11");
            UnitNumber::parse(&run.unit()).unwrap();
            assert!(run.id("hukou-1").starts_with("hukou-1-"));
            assert!(crate::records::is_valid_record_id(
                &run.id("transfer-out-1")
            ));
        }
        assert_ne!(a.id("title-1"), b.id("title-1"));
        assert_ne!(a.unit(), b.unit());
    }
}
