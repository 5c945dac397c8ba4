//! Unit tests of the property-transfer check: the helpers every group shares, the tests
//! that span all blockers, and one file per group of blockers.

use super::super::fixtures::*;
use super::super::{Contributions, RecordRef};
use super::*;
use crate::proto::RecordEvent;
use crate::records::{RecordKey, RecordType};

#[path = "property_title_tests.rs"]
mod title;

#[path = "property_seller_tests.rs"]
mod seller;

#[path = "property_buyer_tests.rs"]
mod buyer;

/// 24 of the last 36 months in Beijing, as Beijing asks of non-local buyers.
fn beijing_rule() -> PurchaseRule {
    PurchaseRule {
        region_prefix: "1101".into(),
        months_required: 24,
        within_months: 36,
    }
}

fn today() -> CivilDate {
    date(2024, 6, 15)
}

/// `months` consecutive paid months of BUYER_A in `region`, ending with 2024-05.
fn buyer_contributions(months: u32, region: &str) -> Vec<RecordEvent> {
    (0..months)
        .map(|i| {
            let index = 2024 * 12 + 4 - i as i32; // 2024-05 backwards
            let (year, month) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
            contribution("B", year, month, region, 1)
        })
        .collect()
}

/// A sale nothing stands in the way of: SELLER_A owns the whole title (mortgaged, not
/// seized), the fund loan is settled, the seller's hukou has moved out, the contract is
/// filed, and BUYER_A paid 24 months in Beijing.
fn clear_sale() -> Vec<RecordEvent> {
    let mut records = vec![
        title(3, &[(SELLER_A, 10_000)], false),
        loan_event("L-1", 2, SELLER_A, proto::LoanStatus::Settled, 0),
        household(
            "H-A",
            2,
            SELLER_A,
            UNIT_ADDRESS,
            UNIT,
            HouseholdStatus::MovedOut,
        ),
        contract(
            "C-1",
            2,
            UNIT,
            &[SELLER_A],
            &[BUYER_A],
            SaleContractStatus::Filed,
        ),
    ];
    records.extend(buyer_contributions(24, BEIJING));
    records
}

/// The check of a sale of the unit from `sellers` to `buyers` under `rules`.
fn run_check(
    sellers: &[&str],
    buyers: &[&str],
    records: &[RecordEvent],
    rules: &[PurchaseRule],
) -> Result<CheckOutcome, CheckError> {
    let sellers: Vec<_> = sellers.iter().map(|s| id(s)).collect();
    let buyers: Vec<_> = buyers.iter().map(|s| id(s)).collect();
    check_property_transfer(
        &unit(),
        &sellers,
        &buyers,
        records,
        &Contributions::from_events(records),
        rules,
        today(),
    )
}

fn check_with(sellers: &[&str], buyers: &[&str], records: &[RecordEvent]) -> CheckOutcome {
    run_check(sellers, buyers, records, &[beijing_rule()]).unwrap()
}

fn check(records: &[RecordEvent]) -> CheckOutcome {
    check_with(&[SELLER_A], &[BUYER_A], records)
}

fn proof(record_type: RecordType, record_id: &str, version: u64) -> Option<RecordRef> {
    Some(RecordRef {
        key: RecordKey::new(record_type, record_id),
        version,
    })
}

/// The party at 0-based `index` among the request's sellers or buyers.
fn party(role: PartyRole, index: usize) -> Option<Party> {
    Some(Party { role, index })
}

/// Asserts that `outcome` is blocked by `code` alone, cleared by `agency` and proven by
/// `record`, and returns that blocker for the checks particular to it.
fn sole_blocker(
    outcome: &CheckOutcome,
    code: BlockerCode,
    agency: Agency,
    record: Option<RecordRef>,
) -> &Blocker {
    assert_eq!(outcome.codes(), vec![code]);
    let blocker = &outcome.blockers[0];
    assert_eq!(blocker.agency, agency);
    assert_eq!(blocker.record, record);
    blocker
}

/// `records` with every record of key `record_id` replaced by `replacement`.
fn replace(records: &[RecordEvent], record_id: &str, replacement: RecordEvent) -> Vec<RecordEvent> {
    let mut out: Vec<_> = records
        .iter()
        .filter(|r| r.record_id != record_id)
        .cloned()
        .collect();
    out.push(replacement);
    out
}

/// The clear sale with its contract (version 3, filed) made between `sellers` and
/// `buyers` instead.
fn with_contract(sellers: &[&str], buyers: &[&str]) -> Vec<RecordEvent> {
    replace(
        &clear_sale(),
        "C-1",
        contract("C-1", 3, UNIT, sellers, buyers, SaleContractStatus::Filed),
    )
}

#[test]
fn a_clear_sale_is_eligible_with_no_blockers() {
    let outcome = check(&clear_sale());
    assert_eq!(outcome.blockers, vec![]);
    assert!(outcome.eligible);
}

#[test]
fn blockers_are_all_reported_in_a_fixed_order() {
    let records = vec![
        title(1, &[(SELLER_A, 5_000), (OTHER, 5_000)], true),
        loan_event("L-1", 1, SELLER_A, proto::LoanStatus::Repaying, 1),
        household(
            "H-A",
            1,
            SELLER_A,
            UNIT_ADDRESS,
            UNIT,
            HouseholdStatus::Registered,
        ),
    ];
    assert_eq!(
        check(&records).codes(),
        vec![
            BlockerCode::SellerSharesIncomplete,
            BlockerCode::UnitSeized,
            BlockerCode::ProvidentFundLoanUnsettled,
            BlockerCode::SellerHouseholdAtUnit,
            BlockerCode::SaleContractMissing,
            BlockerCode::BuyerPurchaseRuleNotMet,
        ]
    );
}

#[test]
fn requests_that_make_no_sense_are_errors_not_blockers() {
    let run = |sellers: &[&str], buyers: &[&str], rules: &[PurchaseRule]| {
        run_check(sellers, buyers, &[], rules).unwrap_err()
    };
    assert_eq!(run(&[], &[BUYER_A], &[]), CheckError::NoSellers);
    assert_eq!(run(&[SELLER_A], &[], &[]), CheckError::NoBuyers);
    assert_eq!(
        run(&[SELLER_A, SELLER_B], &[BUYER_A, SELLER_B], &[]),
        CheckError::SellerIsBuyer {
            seller: 2,
            buyer: 2
        }
    );
    assert_eq!(
        run(&[SELLER_A], &[BUYER_A, BUYER_A], &[]),
        CheckError::DuplicateParty {
            role: PartyRole::Buyer,
            position: 2
        }
    );
    let bad = |prefix: &str, required: u32, within: u32| PurchaseRule {
        region_prefix: prefix.into(),
        months_required: required,
        within_months: within,
    };
    for (rule, reason) in [
        (
            bad("1", 1, 1),
            "region_prefix must be 2 to 6 digits of a division code",
        ),
        (
            bad("11a1", 1, 1),
            "region_prefix must be 2 to 6 digits of a division code",
        ),
        (bad("1101", 1, 0), "within_months must be 1 to 1200"),
        (bad("1101", 1, 1201), "within_months must be 1 to 1200"),
        (
            bad("1101", 0, 12),
            "months_required must be 1 to within_months",
        ),
        (
            bad("1101", 13, 12),
            "months_required must be 1 to within_months",
        ),
    ] {
        assert_eq!(
            run(&[SELLER_A], &[BUYER_A], &[beijing_rule(), rule]),
            CheckError::InvalidRule { index: 1, reason }
        );
    }
    assert_eq!(bad("110105", 12, 1200).validate(), Ok(()));
}
