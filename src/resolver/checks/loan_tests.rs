//! The provident-fund loan check: each blocker, the boundary months of the deposit run,
//! the largest loan with its inputs, and the local rule that reads household and
//! contributions.

use super::*;
use crate::proto::record_event::Payload;
use crate::records::RecordKey;
use crate::resolver::checks::fixtures::*;
use crate::resolver::checks::{Contributions, RecordRef};

/// The day the checks run on: deposits are due up to June 2024.
fn today() -> CivilDate {
    date(2024, 7, 15)
}

fn ym(year: i32, month: i32) -> Option<proto::YearMonth> {
    Some(proto::YearMonth { year, month })
}

/// BUYER_A's active account: balance 50,000 yuan, `months` of deposits up to `last`.
fn account(version: u64, months: u32, last: Option<proto::YearMonth>) -> proto::RecordEvent {
    event(
        "A-BUYER",
        version,
        Payload::ProvidentFundAccount(proto::ProvidentFundAccount {
            person_id: BUYER_A.into(),
            account_number: "GJJ-A-1".into(),
            region_code: BEIJING.into(),
            status: AccountStatus::Active as i32,
            balance_fen: 5_000_000,
            monthly_deposit_fen: 240_000,
            opened_on: Some(proto::Date {
                year: 2015,
                month: 1,
                day: 5,
            }),
            consecutive_deposit_months: if last.is_some() { months } else { 0 },
            last_deposit_month: last,
            ..Default::default()
        }),
    )
}

/// Everything a loan to BUYER_A for [`UNIT`] needs: 24 months of deposits up to June
/// 2024 and a filed contract buying the unit from SELLER_A.
fn clear_application() -> Vec<proto::RecordEvent> {
    vec![
        account(1, 24, ym(2024, 6)),
        title(1, &[(SELLER_A, 10_000)], false),
        contract(
            "C-1",
            1,
            UNIT,
            &[SELLER_A],
            &[BUYER_A],
            SaleContractStatus::Filed,
        ),
    ]
}

fn check_with(records: &[proto::RecordEvent], rule: &LoanRule, amount_fen: i64) -> LoanOutcome {
    let (person, unit) = (id(BUYER_A), unit());
    let application = LoanApplication {
        person: &person,
        unit: &unit,
        amount_fen,
    };
    let summary = Contributions::from_events(records);
    check_provident_fund_loan(application, records, &summary.of(&person), rule, today()).unwrap()
}

/// The check of a 500,000-yuan loan under the default rule (6 months; 15 × balance, at
/// most 1.2 million yuan).
fn check(records: &[proto::RecordEvent]) -> LoanOutcome {
    check_with(records, &LoanRule::default(), 50_000_000)
}

fn proof(key: &str, version: u64) -> Option<RecordRef> {
    Some(RecordRef {
        key: RecordKey::parse(key).unwrap(),
        version,
    })
}

#[test]
fn a_buyer_with_deposits_a_filed_contract_and_no_loan_is_eligible() {
    let result = check(&clear_application());
    assert!(result.outcome.eligible, "{:?}", result.outcome.blockers);
    assert_eq!(result.consecutive_deposit_months, 24);
    assert_eq!(result.deposit_months_required, 6);
    // 50,000 yuan × 15 = 750,000 yuan, under the 1.2 million cap.
    assert_eq!(
        result.limit,
        Some(LoanLimit {
            max_loan_fen: 75_000_000,
            balance_fen: 5_000_000,
            balance_multiple: 15,
            cap_fen: 120_000_000,
            account: proof("provident-fund/account/A-BUYER", 1).unwrap(),
            bounded_by: LoanBound::Balance,
        })
    );
}

#[test]
fn a_registered_title_naming_the_buyer_is_enough_without_a_contract() {
    let records = vec![
        account(1, 24, ym(2024, 6)),
        title(2, &[(BUYER_A, 10_000)], false),
    ];
    assert!(check(&records).outcome.eligible);
}

#[test]
fn the_deposit_run_must_reach_last_month_and_be_long_enough() {
    // Exactly the required six months up to June: eligible.
    let mut records = clear_application();
    records[0] = account(1, 6, ym(2024, 6));
    assert!(check(&records).outcome.eligible);
    // A July deposit already paid counts too.
    records[0] = account(1, 6, ym(2024, 7));
    assert!(check(&records).outcome.eligible);

    // Five months: one short.
    records[0] = account(1, 5, ym(2024, 6));
    let result = check(&records);
    assert_eq!(
        result.outcome.codes(),
        [BlockerCode::FundDepositMonthsNotMet]
    );
    let blocker = &result.outcome.blockers[0];
    assert_eq!(blocker.agency, Agency::ProvidentFund);
    assert_eq!(blocker.record, proof("provident-fund/account/A-BUYER", 1));
    assert!(blocker.action_en.contains("needs 6 consecutive months"));
    assert!(
        blocker
            .action_en
            .contains("5 consecutive months up to 2024-06")
    );
    assert!(blocker.action_zh.contains("连续缴存5个月"));
    assert_eq!(result.consecutive_deposit_months, 5);

    // A long run that stopped in May is no run now.
    records[0] = account(1, 60, ym(2024, 5));
    let result = check(&records);
    assert_eq!(
        result.outcome.codes(),
        [BlockerCode::FundDepositMonthsNotMet]
    );
    assert_eq!(result.consecutive_deposit_months, 0);
    assert!(
        result.outcome.blockers[0]
            .action_en
            .contains("stopped after 2024-05")
    );
}

#[test]
fn the_required_months_come_from_the_rule() {
    let mut records = clear_application();
    records[0] = account(1, 12, ym(2024, 6));
    let rule = |months| LoanRule {
        deposit_months_required: months,
        ..LoanRule::default()
    };
    assert!(check_with(&records, &rule(12), 1).outcome.eligible);
    assert_eq!(
        check_with(&records, &rule(13), 1).outcome.codes(),
        [BlockerCode::FundDepositMonthsNotMet]
    );
}

#[test]
fn an_account_that_does_not_report_its_deposits_is_unknown_not_eligible() {
    let mut records = clear_application();
    records[0] = account(1, 0, None);
    let result = check(&records);
    assert_eq!(result.outcome.codes(), [BlockerCode::FundDepositRunUnknown]);
    assert_eq!(
        result.outcome.blockers[0].record,
        proof("provident-fund/account/A-BUYER", 1)
    );
    assert_eq!(result.consecutive_deposit_months, 0);
}

#[test]
fn a_missing_account_is_a_blocker_citing_no_record_and_no_limit() {
    let mut records = clear_application();
    records.remove(0);
    let result = check(&records);
    assert_eq!(result.outcome.codes(), [BlockerCode::FundAccountMissing]);
    let blocker = &result.outcome.blockers[0];
    assert_eq!(blocker.record, None);
    assert_eq!(blocker.agency, Agency::ProvidentFund);
    assert!(blocker.action_en.contains("no account record"));
    assert_eq!(result.limit, None);

    // An account deleted at the source is missing too.
    let mut records = clear_application();
    records.push(deletion(Agency::ProvidentFund, "account", "A-BUYER", 2));
    assert_eq!(
        check(&records).outcome.codes(),
        [BlockerCode::FundAccountMissing]
    );
}

#[test]
fn a_sealed_account_is_not_active() {
    let mut records = clear_application();
    if let Some(Payload::ProvidentFundAccount(a)) = &mut records[0].payload {
        a.status = AccountStatus::Sealed as i32;
    }
    let result = check(&records);
    assert_eq!(result.outcome.codes(), [BlockerCode::FundAccountNotActive]);
    assert_eq!(
        result.outcome.blockers[0].record,
        proof("provident-fund/account/A-BUYER", 1)
    );
    assert_eq!(result.limit, None);
}

#[test]
fn an_outstanding_or_overdue_loan_of_the_applicant_blocks_and_a_settled_one_does_not() {
    let mut records = clear_application();
    records.push(loan_event("L-OLD", 1, BUYER_A, LoanStatus::Settled, 0));
    assert!(check(&records).outcome.eligible);

    records.push(loan_event(
        "L-OPEN",
        3,
        BUYER_A,
        LoanStatus::Repaying,
        12_345_600,
    ));
    records.push(loan_event("L-LATE", 2, BUYER_A, LoanStatus::Overdue, 100));
    // Someone else's loan is not the applicant's business.
    records.push(loan_event(
        "L-SELLER",
        1,
        SELLER_A,
        LoanStatus::Repaying,
        100,
    ));
    let result = check(&records);
    assert_eq!(
        result.outcome.codes(),
        [
            BlockerCode::BorrowerLoanOverdue,
            BlockerCode::BorrowerLoanOutstanding
        ]
    );
    let [late, open] = &result.outcome.blockers[..] else {
        panic!("two blockers")
    };
    assert_eq!(late.record, proof("provident-fund/loan/L-LATE", 2));
    assert_eq!(open.record, proof("provident-fund/loan/L-OPEN", 3));
    assert!(open.action_en.contains("123456.00 yuan"));
    assert!(late.action_zh.contains("逾期"));
}

#[test]
fn a_unit_not_bought_by_the_applicant_blocks_citing_what_the_registry_holds() {
    // The title names the seller and the filed contract other buyers.
    let mut records = clear_application();
    records[2] = contract(
        "C-1",
        1,
        UNIT,
        &[SELLER_A],
        &[BUYER_B],
        SaleContractStatus::Filed,
    );
    let result = check(&records);
    assert_eq!(result.outcome.codes(), [BlockerCode::ApplicantNotBuyer]);
    let blocker = &result.outcome.blockers[0];
    assert_eq!(blocker.agency, Agency::Housing);
    assert_eq!(blocker.record, proof("housing/property_title/T-UNIT", 1));

    // A contract naming the applicant, signed but not filed, is cited with what to do.
    records[2] = contract(
        "C-1",
        2,
        UNIT,
        &[SELLER_A],
        &[BUYER_A],
        SaleContractStatus::Signed,
    );
    let blocker = &check(&records).outcome.blockers[0];
    assert_eq!(blocker.code, BlockerCode::ApplicantNotBuyer);
    assert_eq!(blocker.record, proof("housing/sale_contract/C-1", 2));
    assert!(blocker.action_en.contains("not filed"));

    // A contract for another unit does not count; with no title either, the blocker is
    // a missing record.
    let records = vec![
        account(1, 24, ym(2024, 6)),
        contract(
            "C-2",
            1,
            OTHER_UNIT,
            &[SELLER_A],
            &[BUYER_A],
            SaleContractStatus::Filed,
        ),
    ];
    let blocker = &check(&records).outcome.blockers[0];
    assert_eq!(blocker.code, BlockerCode::ApplicantNotBuyer);
    assert_eq!(blocker.record, None);
    assert!(blocker.action_en.contains("neither a title"));
}

#[test]
fn the_largest_loan_is_the_balance_multiple_or_the_cap_whichever_is_lower() {
    let records = clear_application();
    let rule = LoanRule {
        balance_multiple: 20,
        cap_fen: 80_000_000,
        ..LoanRule::default()
    };
    // 50,000 × 20 = 1,000,000 yuan, over the 800,000 cap.
    let limit = check_with(&records, &rule, 1).limit.unwrap();
    assert_eq!(limit.max_loan_fen, 80_000_000);
    assert_eq!(limit.bounded_by, LoanBound::Cap);
    assert_eq!((limit.balance_fen, limit.balance_multiple), (5_000_000, 20));
    assert_eq!(limit.cap_fen, 80_000_000);

    // Exactly at the balance bound: the balance decides.
    let rule = LoanRule {
        balance_multiple: 16,
        cap_fen: 80_000_000,
        ..LoanRule::default()
    };
    let limit = check_with(&records, &rule, 1).limit.unwrap();
    assert_eq!(
        (limit.max_loan_fen, limit.bounded_by),
        (80_000_000, LoanBound::Balance)
    );
}

#[test]
fn an_amount_over_the_largest_loan_blocks_and_the_largest_itself_does_not() {
    let records = clear_application();
    let rule = LoanRule::default();
    assert!(check_with(&records, &rule, 75_000_000).outcome.eligible);
    let result = check_with(&records, &rule, 75_000_001);
    assert_eq!(result.outcome.codes(), [BlockerCode::LoanAmountOverLimit]);
    let blocker = &result.outcome.blockers[0];
    assert_eq!(blocker.record, proof("provident-fund/account/A-BUYER", 1));
    assert!(blocker.action_en.contains("750000.00 yuan"));
    assert!(blocker.action_en.contains("balance 50000.00 yuan × 15"));
}

/// A Beijing rule: from elsewhere, 24 months paid in Beijing within the last 36.
fn local_rule() -> LoanRule {
    LoanRule {
        local_rules: vec![LocalLoanRule {
            region_prefix: "1101".into(),
            months_required: 24,
            within_months: 36,
        }],
        ..LoanRule::default()
    }
}

/// `months` of pension contributions by BUYER_A in `region`, ending June 2024.
fn contributions(months: u32, region: &str) -> Vec<proto::RecordEvent> {
    (0..months)
        .map(|i| {
            let index = 2024 * 12 + 5 - i as i32;
            let (year, month) = (index / 12, index % 12 + 1);
            contribution_for(
                BUYER_A,
                &format!("{region}-{year}-{month}"),
                proto::InsuranceType::Pension,
                year,
                month as u32,
                region,
                1,
                100_000,
            )
        })
        .collect()
}

#[test]
fn a_local_rule_needs_a_local_household_or_local_contributions() {
    // Household in Shanghai, 23 months paid in Beijing: short by one.
    let mut records = clear_application();
    let elsewhere = in_region(
        household(
            "H-B",
            1,
            BUYER_A,
            "上海市徐汇区漕溪北路1号",
            "",
            HouseholdStatus::Registered,
        ),
        SHANGHAI,
    );
    records.push(elsewhere);
    records.extend(contributions(23, BEIJING));
    let result = check_with(&records, &local_rule(), 1);
    assert_eq!(result.outcome.codes(), [BlockerCode::LoanLocalRuleNotMet]);
    let blocker = &result.outcome.blockers[0];
    assert_eq!(blocker.agency, Agency::SocialSecurity);
    assert_eq!(
        blocker.record,
        proof("public-security/household_registration/H-B", 1)
    );
    assert!(blocker.action_en.contains("paid 23 months"));
    assert!(blocker.action_en.contains("needs 24"));

    // The 24th month meets it.
    records.extend(contributions(24, BEIJING));
    assert!(check_with(&records, &local_rule(), 1).outcome.eligible);

    // A household registered in Beijing meets it without contributions.
    let mut records = clear_application();
    records.push(household(
        "H-B",
        1,
        BUYER_A,
        UNIT_ADDRESS,
        "",
        HouseholdStatus::Registered,
    ));
    assert!(check_with(&records, &local_rule(), 1).outcome.eligible);

    // No household record proves nothing: the contributions decide, and the blocker
    // cites no record.
    let records = clear_application();
    let result = check_with(&records, &local_rule(), 1);
    assert_eq!(result.outcome.codes(), [BlockerCode::LoanLocalRuleNotMet]);
    assert_eq!(result.outcome.blockers[0].record, None);
}

#[test]
fn every_blocker_comes_at_once_in_a_fixed_order() {
    let records = vec![
        account(1, 2, ym(2024, 6)),
        loan_event("L-OPEN", 1, BUYER_A, LoanStatus::Repaying, 100),
        title(1, &[(SELLER_A, 10_000)], false),
    ];
    let result = check_with(&records, &local_rule(), 999_000_000);
    assert_eq!(
        result.outcome.codes(),
        [
            BlockerCode::FundDepositMonthsNotMet,
            BlockerCode::BorrowerLoanOutstanding,
            BlockerCode::ApplicantNotBuyer,
            BlockerCode::LoanLocalRuleNotMet,
            BlockerCode::LoanAmountOverLimit,
        ]
    );
    assert!(!result.outcome.eligible);
}

#[test]
fn a_rule_out_of_bounds_is_refused_naming_its_key() {
    let bad = [
        (
            LoanRule {
                deposit_months_required: 0,
                ..LoanRule::default()
            },
            "deposit_months_required",
        ),
        (
            LoanRule {
                balance_multiple: 101,
                ..LoanRule::default()
            },
            "balance_multiple",
        ),
        (
            LoanRule {
                cap_fen: 0,
                ..LoanRule::default()
            },
            "cap_fen",
        ),
        (
            LoanRule {
                local_rules: vec![LocalLoanRule {
                    region_prefix: "x".into(),
                    months_required: 1,
                    within_months: 1,
                }],
                ..LoanRule::default()
            },
            "local_rules[0]",
        ),
    ];
    for (rule, key) in bad {
        let error = rule.validate().unwrap_err();
        assert!(error.starts_with(key), "{error}");
    }
    assert_eq!(LoanRule::default().validate(), Ok(()));
}
