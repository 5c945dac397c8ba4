//! The buyer's eligibility under the regions' purchase rules: months paid locally within
//! the window, judged for each buyer and only under the rules of the unit's region.

use super::*;

/// The clear sale without BUYER_A's contributions.
fn without_buyer_contributions() -> Vec<RecordEvent> {
    clear_sale()
        .into_iter()
        .filter(|r| !r.record_id.starts_with("B-"))
        .collect()
}

#[test]
fn a_buyer_short_of_local_contributions_fails_the_purchase_rule() {
    let mut records = without_buyer_contributions();
    records.extend(buyer_contributions(23, BEIJING));
    let outcome = check(&records);
    assert_eq!(outcome.codes(), vec![BlockerCode::BuyerPurchaseRuleNotMet]);
    let blocker = &outcome.blockers[0];
    assert_eq!(blocker.agency, Agency::SocialSecurity);
    assert_eq!(blocker.party, party(PartyRole::Buyer, 0));
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
    let mut records = without_buyer_contributions();
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
    let records = with_contract(&[SELLER_A], &[BUYER_A, BUYER_B]);
    let run = |rules: &[PurchaseRule]| {
        run_check(&[SELLER_A], &[BUYER_A, BUYER_B], &records, rules).unwrap()
    };
    let outcome = run(std::slice::from_ref(&shanghai_rule));
    assert!(
        outcome.eligible,
        "a Shanghai rule says nothing about Beijing"
    );

    let outcome = run(&[shanghai_rule, beijing_rule()]);
    assert_eq!(outcome.codes(), vec![BlockerCode::BuyerPurchaseRuleNotMet]);
    assert_eq!(
        outcome.blockers[0].party,
        party(PartyRole::Buyer, 1),
        "BUYER_B paid nothing; BUYER_A paid 24 months"
    );
}
