use super::super::fixtures::*;
use super::super::{Contributions, RecordRef};
use super::*;
use crate::proto::RecordEvent;
use crate::records::{RecordKey, RecordType};

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

fn check_with(sellers: &[&str], buyers: &[&str], records: &[RecordEvent]) -> CheckOutcome {
    let sellers: Vec<_> = sellers.iter().map(|s| id(s)).collect();
    let buyers: Vec<_> = buyers.iter().map(|s| id(s)).collect();
    check_property_transfer(
        &unit(),
        &sellers,
        &buyers,
        records,
        &Contributions::from_events(records),
        &[beijing_rule()],
        today(),
    )
    .unwrap()
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

#[test]
fn a_clear_sale_is_eligible_with_no_blockers() {
    let outcome = check(&clear_sale());
    assert_eq!(outcome.blockers, vec![]);
    assert!(outcome.eligible);
}

#[test]
fn a_missing_title_blocks_and_names_the_registry() {
    let records = replace(
        &clear_sale(),
        "T-UNIT",
        title(1, &[(SELLER_A, 10_000)], false),
    );
    // The title is for another unit once its unit number changes.
    let mut records = records;
    for r in &mut records {
        if let Some(proto::record_event::Payload::PropertyTitle(t)) = &mut r.payload {
            t.unit_number = OTHER_UNIT.into();
        }
    }
    let outcome = check(&records);
    assert!(!outcome.eligible);
    assert_eq!(outcome.codes(), vec![BlockerCode::TitleNotFound]);
    assert_eq!(outcome.blockers[0].agency, Agency::Housing);
    assert_eq!(outcome.blockers[0].record, None);
}

#[test]
fn a_seller_who_is_not_an_owner_is_blocked_and_named_by_position() {
    let mut records = replace(
        &clear_sale(),
        "C-1",
        contract(
            "C-1",
            3,
            UNIT,
            &[SELLER_A, OTHER],
            &[BUYER_A],
            SaleContractStatus::Filed,
        ),
    );
    records.push(in_region(
        household("H-O", 1, OTHER, "上海市", "", HouseholdStatus::Registered),
        SHANGHAI,
    ));
    let outcome = check_with(&[SELLER_A, OTHER], &[BUYER_A], &records);
    assert_eq!(outcome.codes(), vec![BlockerCode::SellerNotOwner]);
    let blocker = &outcome.blockers[0];
    assert_eq!(blocker.agency, Agency::Housing);
    assert_eq!(
        blocker.record,
        proof(RecordType::PropertyTitle, "T-UNIT", 3)
    );
    assert_eq!(
        blocker.party,
        Some(Party {
            role: PartyRole::Seller,
            index: 1
        })
    );
    assert!(blocker.action_en.starts_with("Seller 2 is not an owner"));
    assert!(blocker.action_zh.contains("第2位卖方"));
    assert!(!blocker.action_zh.contains(OTHER) && !blocker.action_en.contains(OTHER));
}

#[test]
fn sellers_holding_part_of_the_title_are_blocked_until_every_co_owner_sells() {
    let shared = replace(
        &clear_sale(),
        "T-UNIT",
        title(4, &[(SELLER_A, 6_000), (SELLER_B, 4_000)], false),
    );
    let outcome = check(&shared);
    assert_eq!(outcome.codes(), vec![BlockerCode::SellerSharesIncomplete]);
    assert_eq!(
        outcome.blockers[0].record,
        proof(RecordType::PropertyTitle, "T-UNIT", 4)
    );
    assert!(
        outcome.blockers[0]
            .action_en
            .contains("only 60.00% of the title")
    );

    let both = replace(
        &shared,
        "C-1",
        contract(
            "C-1",
            3,
            UNIT,
            &[SELLER_B, SELLER_A],
            &[BUYER_A],
            SaleContractStatus::Filed,
        ),
    );
    let outcome = check_with(&[SELLER_A, SELLER_B], &[BUYER_A], &both);
    assert_eq!(outcome.blockers, vec![]);
}

#[test]
fn a_seized_unit_is_blocked_but_a_mortgage_alone_is_not() {
    let outcome = check(&replace(
        &clear_sale(),
        "T-UNIT",
        title(5, &[(SELLER_A, 10_000)], true),
    ));
    assert_eq!(outcome.codes(), vec![BlockerCode::UnitSeized]);
    assert_eq!(outcome.blockers[0].agency, Agency::Housing);
    assert_eq!(
        outcome.blockers[0].record,
        proof(RecordType::PropertyTitle, "T-UNIT", 5)
    );
    assert!(outcome.blockers[0].action_en.contains("11100000000013127N"));
    // The clear sale's title carries a mortgage and is eligible (see above).
}

#[test]
fn field_scenario_the_loan_that_must_be_settled_first() {
    let repaying = loan_event("L-1", 1, SELLER_A, proto::LoanStatus::Repaying, 12_345_678);
    let records = replace(&clear_sale(), "L-1", repaying);
    let outcome = check(&records);
    assert!(!outcome.eligible);
    assert_eq!(
        outcome.codes(),
        vec![BlockerCode::ProvidentFundLoanUnsettled]
    );
    let blocker = &outcome.blockers[0];
    assert_eq!(blocker.agency, Agency::ProvidentFund);
    assert_eq!(
        blocker.record,
        proof(RecordType::ProvidentFundLoan, "L-1", 1)
    );
    assert_eq!(
        blocker.party,
        Some(Party {
            role: PartyRole::Seller,
            index: 0
        })
    );
    assert!(blocker.action_en.contains("123456.78 yuan"));
    assert!(blocker.action_zh.contains("123456.78 元"));

    // The fund centre records the settlement: version 2 wins, the sale may go ahead.
    let mut settled = records.clone();
    settled.push(loan_event(
        "L-1",
        2,
        SELLER_A,
        proto::LoanStatus::Settled,
        0,
    ));
    assert!(check(&settled).eligible);
}

#[test]
fn overdue_loans_block_and_loans_on_other_units_do_not() {
    let overdue = replace(
        &clear_sale(),
        "L-1",
        loan_event("L-1", 3, OTHER, proto::LoanStatus::Overdue, 100),
    );
    let outcome = check(&overdue);
    assert_eq!(
        outcome.codes(),
        vec![BlockerCode::ProvidentFundLoanUnsettled]
    );
    assert_eq!(
        outcome.blockers[0].party, None,
        "the borrower is not a seller"
    );
    assert!(outcome.blockers[0].action_en.contains("overdue"));

    let mut elsewhere = loan_event("L-9", 1, SELLER_A, proto::LoanStatus::Repaying, 100);
    if let Some(proto::record_event::Payload::ProvidentFundLoan(l)) = &mut elsewhere.payload {
        l.unit_number = OTHER_UNIT.into();
    }
    let mut records = clear_sale();
    records.push(elsewhere);
    assert!(check(&records).eligible);
}

#[test]
fn field_scenario_the_seller_still_registered_at_the_flat() {
    let registered = household(
        "H-A",
        1,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::Registered,
    );
    let records = replace(&clear_sale(), "H-A", registered);
    let outcome = check(&records);
    assert!(!outcome.eligible);
    assert_eq!(outcome.codes(), vec![BlockerCode::SellerHouseholdAtUnit]);
    let blocker = &outcome.blockers[0];
    assert_eq!(blocker.agency, Agency::PublicSecurity);
    assert_eq!(
        blocker.record,
        proof(RecordType::HouseholdRegistration, "H-A", 1)
    );
    assert!(blocker.action_zh.contains("户口迁出"));
    assert!(blocker.action_en.contains("police station"));

    // The police record the move: version 2 is MOVED_OUT, and the sale is eligible.
    let mut moved = records.clone();
    moved.push(household(
        "H-A",
        2,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::MovedOut,
    ));
    let outcome = check(&moved);
    assert_eq!(outcome.blockers, vec![]);
    assert!(outcome.eligible);
}

#[test]
fn a_registration_without_a_unit_number_is_matched_by_normalised_address() {
    let spelled_differently = "北京市 朝阳区建国路８８号３幢２单元５０１";
    let records = replace(
        &clear_sale(),
        "H-A",
        household(
            "H-A",
            1,
            SELLER_A,
            spelled_differently,
            "",
            HouseholdStatus::Registered,
        ),
    );
    assert_eq!(
        check(&records).codes(),
        vec![BlockerCode::SellerHouseholdAtUnit]
    );

    // Another address in the unit's district cannot be told apart from a spelling the
    // rules do not know: the police confirm (not a pass, not "at the unit").
    let next_door = replace(
        &clear_sale(),
        "H-A",
        household(
            "H-A",
            1,
            SELLER_A,
            "北京市朝阳区建国路88号3号楼2单元502室",
            "",
            HouseholdStatus::Registered,
        ),
    );
    let outcome = check(&next_door);
    assert_eq!(
        outcome.codes(),
        vec![BlockerCode::SellerHouseholdUnverified]
    );
    assert_eq!(outcome.blockers[0].agency, Agency::PublicSecurity);
    assert!(outcome.blockers[0].record.is_some());
    // In another district, it is elsewhere.
    let elsewhere = replace(
        &clear_sale(),
        "H-A",
        in_region(
            household(
                "H-A",
                1,
                SELLER_A,
                "北京市海淀区中关村大街1号",
                "",
                HouseholdStatus::Registered,
            ),
            "110108",
        ),
    );
    assert!(check(&elsewhere).eligible);

    // When the police know the unit number, it decides, not the address.
    let other_unit = replace(
        &clear_sale(),
        "H-A",
        household(
            "H-A",
            1,
            SELLER_A,
            UNIT_ADDRESS,
            OTHER_UNIT,
            HouseholdStatus::Registered,
        ),
    );
    assert!(check(&other_unit).eligible);
}

#[test]
fn only_sellers_registrations_count() {
    let mut records = clear_sale();
    records.push(household(
        "H-B",
        1,
        BUYER_B,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::Registered,
    ));
    assert!(check(&records).eligible);
}

#[test]
fn no_contract_between_exactly_these_parties_blocks() {
    let no_contract: Vec<_> = clear_sale()
        .into_iter()
        .filter(|r| r.record_id != "C-1")
        .collect();
    let outcome = check(&no_contract);
    assert_eq!(outcome.codes(), vec![BlockerCode::SaleContractMissing]);
    assert_eq!(outcome.blockers[0].agency, Agency::Housing);
    assert_eq!(outcome.blockers[0].record, None);

    // A contract with one more buyer is not a contract between exactly these parties.
    let more_buyers = replace(
        &clear_sale(),
        "C-1",
        contract(
            "C-1",
            3,
            UNIT,
            &[SELLER_A],
            &[BUYER_A, BUYER_B],
            SaleContractStatus::Signed,
        ),
    );
    assert_eq!(
        check(&more_buyers).codes(),
        vec![BlockerCode::SaleContractMissing]
    );

    // Nor is one on another unit.
    let other_unit = replace(
        &clear_sale(),
        "C-1",
        contract(
            "C-1",
            3,
            OTHER_UNIT,
            &[SELLER_A],
            &[BUYER_A],
            SaleContractStatus::Filed,
        ),
    );
    assert_eq!(
        check(&other_unit).codes(),
        vec![BlockerCode::SaleContractMissing]
    );
}

#[test]
fn a_contract_in_the_wrong_status_blocks_with_the_step_that_fixes_it() {
    for (status, words) in [
        (SaleContractStatus::Signed, "not filed"),
        (SaleContractStatus::Cancelled, "cancelled"),
        (SaleContractStatus::Completed, "already completed"),
    ] {
        let records = replace(
            &clear_sale(),
            "C-1",
            contract("C-1", 7, UNIT, &[SELLER_A], &[BUYER_A], status),
        );
        let outcome = check(&records);
        assert_eq!(
            outcome.codes(),
            vec![BlockerCode::SaleContractWrongStatus],
            "{status:?}"
        );
        assert_eq!(
            outcome.blockers[0].record,
            proof(RecordType::SaleContract, "C-1", 7)
        );
        assert!(outcome.blockers[0].action_en.contains(words), "{status:?}");
    }
}

#[test]
fn another_filed_contract_on_the_unit_conflicts_but_a_cancelled_one_does_not() {
    let mut records = clear_sale();
    records.push(contract(
        "C-2",
        1,
        UNIT,
        &[SELLER_A],
        &[BUYER_B],
        SaleContractStatus::Filed,
    ));
    let outcome = check(&records);
    assert_eq!(outcome.codes(), vec![BlockerCode::SaleContractConflict]);
    assert_eq!(
        outcome.blockers[0].record,
        proof(RecordType::SaleContract, "C-2", 1)
    );

    records.push(contract(
        "C-2",
        2,
        UNIT,
        &[SELLER_A],
        &[BUYER_B],
        SaleContractStatus::Cancelled,
    ));
    assert!(check(&records).eligible);
}

#[test]
fn a_buyer_short_of_local_contributions_fails_the_purchase_rule() {
    let mut records: Vec<_> = clear_sale()
        .into_iter()
        .filter(|r| !r.record_id.starts_with("B-"))
        .collect();
    records.extend(buyer_contributions(23, BEIJING));
    let outcome = check(&records);
    assert_eq!(outcome.codes(), vec![BlockerCode::BuyerPurchaseRuleNotMet]);
    let blocker = &outcome.blockers[0];
    assert_eq!(blocker.agency, Agency::SocialSecurity);
    assert_eq!(
        blocker.party,
        Some(Party {
            role: PartyRole::Buyer,
            index: 0
        })
    );
    assert!(blocker.action_en.contains("paid 23 months"));
    assert!(blocker.action_en.contains("needs 24"));

    // Months paid in Shanghai do not count for a Beijing rule.
    records.extend(buyer_contributions(36, SHANGHAI).into_iter().map(|mut r| {
        r.record_id = format!("S{}", r.record_id);
        r
    }));
    assert_eq!(
        check(&records).codes(),
        vec![BlockerCode::BuyerPurchaseRuleNotMet]
    );
}

#[test]
fn contributions_outside_the_window_or_unpaid_do_not_count() {
    let mut records: Vec<_> = clear_sale()
        .into_iter()
        .filter(|r| !r.record_id.starts_with("B-"))
        .collect();
    // 2021-07 .. 2024-06 is the window (36 months ending with June 2024).
    for i in 0..24 {
        let index: i32 = 2021 * 12 + 5 - i; // 2021-06 backwards: all before the window
        records.push(contribution(
            "OLD",
            index.div_euclid(12),
            index.rem_euclid(12) as u32 + 1,
            BEIJING,
            1,
        ));
    }
    records.extend(buyer_contributions(23, BEIJING));
    assert_eq!(
        check(&records).codes(),
        vec![BlockerCode::BuyerPurchaseRuleNotMet]
    );
    // A 24th month, 2021-07, the first of the window, counts.
    records.push(contribution("EDGE", 2021, 7, BEIJING, 1));
    assert!(check(&records).eligible);
    // The same month recorded as unpaid (an arrear) does not.
    records.push(contribution_of(
        "EDGE-2021-07",
        proto::InsuranceType::Pension,
        2021,
        7,
        BEIJING,
        2,
        0,
    ));
    assert!(!check(&records).eligible);
}

#[test]
fn rules_for_other_regions_do_not_apply_and_each_buyer_is_judged() {
    let shanghai_rule = PurchaseRule {
        region_prefix: "31".into(),
        months_required: 60,
        within_months: 60,
    };
    let sellers = [id(SELLER_A)];
    let records = replace(
        &clear_sale(),
        "C-1",
        contract(
            "C-1",
            3,
            UNIT,
            &[SELLER_A],
            &[BUYER_A, BUYER_B],
            SaleContractStatus::Filed,
        ),
    );
    let outcome = check_property_transfer(
        &unit(),
        &sellers,
        &[id(BUYER_A), id(BUYER_B)],
        &records,
        &Contributions::from_events(&records),
        std::slice::from_ref(&shanghai_rule),
        today(),
    )
    .unwrap();
    assert!(
        outcome.eligible,
        "a Shanghai rule says nothing about Beijing"
    );

    let outcome = check_property_transfer(
        &unit(),
        &sellers,
        &[id(BUYER_A), id(BUYER_B)],
        &records,
        &Contributions::from_events(&records),
        &[shanghai_rule, beijing_rule()],
        today(),
    )
    .unwrap();
    assert_eq!(outcome.codes(), vec![BlockerCode::BuyerPurchaseRuleNotMet]);
    assert_eq!(
        outcome.blockers[0].party,
        Some(Party {
            role: PartyRole::Buyer,
            index: 1
        }),
        "BUYER_B paid nothing; BUYER_A paid 24 months"
    );
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
        let sellers: Vec<_> = sellers.iter().map(|s| id(s)).collect();
        let buyers: Vec<_> = buyers.iter().map(|s| id(s)).collect();
        check_property_transfer(
            &unit(),
            &sellers,
            &buyers,
            &[],
            &Contributions::default(),
            rules,
            today(),
        )
        .unwrap_err()
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

#[test]
fn a_seller_owning_nothing_gets_one_blocker_not_a_share_blocker_too() {
    let records = replace(
        &clear_sale(),
        "C-1",
        contract(
            "C-1",
            3,
            UNIT,
            &[OTHER],
            &[BUYER_A],
            SaleContractStatus::Filed,
        ),
    );
    let outcome = check_with(&[OTHER], &[BUYER_A], &records);
    assert_eq!(outcome.codes(), vec![BlockerCode::SellerNotOwner]);
}

#[test]
fn a_loan_marked_settled_with_principal_left_still_blocks() {
    // Inconsistent at the source: the fund centre must confirm before a transfer.
    let records = replace(
        &clear_sale(),
        "L-1",
        loan_event("L-1", 3, SELLER_A, proto::LoanStatus::Settled, 100),
    );
    assert_eq!(
        check(&records).codes(),
        vec![BlockerCode::ProvidentFundLoanUnsettled]
    );
}
