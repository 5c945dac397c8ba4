//! Blockers of the title and the sale contract, both held by the housing registry: a
//! missing title, sellers who do not own it all, a seizure, and a contract that is
//! missing, in the wrong status or in conflict with another.

use super::*;

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
    sole_blocker(&outcome, BlockerCode::TitleNotFound, Agency::Housing, None);
}

#[test]
fn a_seller_who_is_not_an_owner_is_blocked_and_named_by_position() {
    let mut records = with_contract(&[SELLER_A, OTHER], &[BUYER_A]);
    records.push(in_region(
        household("H-O", 1, OTHER, "上海市", "", HouseholdStatus::Registered),
        SHANGHAI,
    ));
    let outcome = check_with(&[SELLER_A, OTHER], &[BUYER_A], &records);
    let blocker = sole_blocker(
        &outcome,
        BlockerCode::SellerNotOwner,
        Agency::Housing,
        proof(RecordType::PropertyTitle, "T-UNIT", 3),
    );
    assert_eq!(blocker.party, party(PartyRole::Seller, 1));
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
fn a_seller_owning_nothing_gets_one_blocker_not_a_share_blocker_too() {
    let records = with_contract(&[OTHER], &[BUYER_A]);
    let outcome = check_with(&[OTHER], &[BUYER_A], &records);
    assert_eq!(outcome.codes(), vec![BlockerCode::SellerNotOwner]);
}

#[test]
fn a_seized_unit_is_blocked_but_a_mortgage_alone_is_not() {
    let outcome = check(&replace(
        &clear_sale(),
        "T-UNIT",
        title(5, &[(SELLER_A, 10_000)], true),
    ));
    let blocker = sole_blocker(
        &outcome,
        BlockerCode::UnitSeized,
        Agency::Housing,
        proof(RecordType::PropertyTitle, "T-UNIT", 5),
    );
    assert!(blocker.action_en.contains("11100000000013127N"));
    // The clear sale's title carries a mortgage and is eligible (see above).
}

#[test]
fn no_contract_between_exactly_these_parties_blocks() {
    let no_contract: Vec<_> = clear_sale()
        .into_iter()
        .filter(|r| r.record_id != "C-1")
        .collect();
    let outcome = check(&no_contract);
    sole_blocker(
        &outcome,
        BlockerCode::SaleContractMissing,
        Agency::Housing,
        None,
    );

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
