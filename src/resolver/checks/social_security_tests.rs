use super::super::fixtures::*;
use super::super::{Blocker, Contributions, RecordRef};
use super::*;
use crate::proto::RecordEvent;
use crate::records::{RecordKey, RecordType};

/// Contributions (see `contribution`) belong to BUYER_A, so the transferring person is she.
const PERSON: &str = BUYER_A;
const GUANGZHOU: &str = "440305";

fn today() -> CivilDate {
    date(2024, 6, 15)
}

/// Pension months paid in Beijing from `first` to `last` (year, month) inclusive.
fn paid(first: (i32, u32), last: (i32, u32)) -> Vec<RecordEvent> {
    let (from, to) = (
        first.0 * 12 + first.1 as i32 - 1,
        last.0 * 12 + last.1 as i32 - 1,
    );
    (from..=to)
        .map(|i| {
            contribution(
                "P",
                i.div_euclid(12),
                i.rem_euclid(12) as u32 + 1,
                BEIJING,
                1,
            )
        })
        .collect()
}

fn source(status: EnrollmentStatus, end: Option<(i32, i32)>) -> RecordEvent {
    enrollment(
        "E-P-BJ",
        1,
        PERSON,
        InsuranceType::Pension,
        BEIJING,
        status,
        (2020, 1),
        end,
    )
}

fn target(status: EnrollmentStatus) -> RecordEvent {
    enrollment(
        "E-P-SH",
        1,
        PERSON,
        InsuranceType::Pension,
        SHANGHAI,
        status,
        (2024, 1),
        None,
    )
}

fn pension_certificate(to: &str) -> RecordEvent {
    certificate("Z-P", 1, PERSON, InsuranceType::Pension, BEIJING, to)
}

/// A transfer ready to complete: four years paid in Beijing and ended there, enrolled in
/// Shanghai, certificate issued.
fn ready() -> Vec<RecordEvent> {
    let mut records = vec![
        source(EnrollmentStatus::Suspended, Some((2023, 12))),
        target(EnrollmentStatus::Active),
        pension_certificate(SHANGHAI),
    ];
    records.extend(paid((2020, 1), (2023, 12)));
    records
}

fn check(records: &[RecordEvent]) -> SocialSecurityTransferOutcome {
    check_social_security_transfer(
        &id(PERSON),
        &region(BEIJING),
        &region(SHANGHAI),
        records,
        &Contributions::from_events(records).of(&id(PERSON)),
        today(),
    )
    .unwrap()
}

fn without(records: &[RecordEvent], record_ids: &[&str]) -> Vec<RecordEvent> {
    records
        .iter()
        .filter(|r| !record_ids.contains(&r.record_id.as_str()))
        .cloned()
        .collect()
}

fn enrollment_proof(record_id: &str) -> Option<RecordRef> {
    Some(RecordRef {
        key: RecordKey::new(RecordType::Enrollment, record_id),
        version: 1,
    })
}

/// The one blocker of `outcome`, asserting it has exactly one, of `code`.
fn only(outcome: &SocialSecurityTransferOutcome, code: BlockerCode) -> Blocker {
    assert_eq!(outcome.outcome.codes(), vec![code]);
    outcome.outcome.blockers[0].clone()
}

#[test]
fn a_ready_transfer_is_eligible_and_carries_its_months() {
    let outcome = check(&ready());
    assert_eq!(outcome.outcome.blockers, vec![]);
    assert!(outcome.outcome.eligible);
    assert_eq!(outcome.months_paid_in_source, 48);
}

#[test]
fn field_scenario_a_transfer_with_a_gap_in_contributions() {
    let records = without(&ready(), &["P-2022-03", "P-2022-04", "P-2022-05", "Z-P"]);
    let outcome = check(&records);
    assert!(!outcome.outcome.eligible);
    assert_eq!(outcome.months_paid_in_source, 45);
    assert_eq!(
        outcome.outcome.codes(),
        vec![
            BlockerCode::UnpaidContributionMonths,
            BlockerCode::TransferOutCertificateMissing
        ]
    );
    let gap = &outcome.outcome.blockers[0];
    assert_eq!(gap.agency, Agency::SocialSecurity);
    assert_eq!(gap.record, enrollment_proof("E-P-BJ"));
    assert!(gap.action_en.starts_with("3 months of pension insurance"));
    assert!(gap.action_en.contains("(2022-03 – 2022-05)"));
    assert!(gap.action_zh.contains("3个月未缴费（2022-03 – 2022-05）"));
    let certificate = &outcome.outcome.blockers[1];
    assert_eq!(certificate.record, None);
    assert!(certificate.action_en.contains("110105"));

    // The months are paid late (new records) and Beijing issues the certificate.
    let mut cleared = records.clone();
    cleared.extend(paid((2022, 3), (2022, 5)));
    cleared.push(pension_certificate(SHANGHAI));
    let outcome = check(&cleared);
    assert!(outcome.outcome.eligible);
    assert_eq!(outcome.months_paid_in_source, 48);
}

#[test]
fn unpaid_runs_at_the_start_and_end_of_an_ended_enrollment_are_found() {
    let records = without(&ready(), &["P-2020-01", "P-2023-11", "P-2023-12"]);
    let blocker = only(&check(&records), BlockerCode::UnpaidContributionMonths);
    assert!(blocker.action_en.starts_with("3 months"));
    assert!(blocker.action_en.contains("(2020-01, 2023-11 – 2023-12)"));
}

#[test]
fn a_long_list_of_unpaid_runs_is_cut_but_counted() {
    let gaps = [
        "P-2020-03",
        "P-2020-06",
        "P-2020-09",
        "P-2021-01",
        "P-2021-05",
    ];
    let blocker = only(
        &check(&without(&ready(), &gaps)),
        BlockerCode::UnpaidContributionMonths,
    );
    assert!(blocker.action_en.starts_with("5 months"));
    assert!(
        blocker
            .action_en
            .contains("(2020-03, 2020-06, 2020-09 and 2 more periods)"),
        "{}",
        blocker.action_en
    );
    assert!(blocker.action_zh.contains("2020-09等5段"));
}

#[test]
fn a_source_still_active_owes_every_month_but_the_current_one_and_duplicates_the_target() {
    let mut records = without(&ready(), &["E-P-BJ"]);
    records.push(source(EnrollmentStatus::Active, None));
    let outcome = check(&records);
    assert_eq!(
        outcome.outcome.codes(),
        vec![
            BlockerCode::DuplicateActiveEnrollment,
            BlockerCode::UnpaidContributionMonths
        ]
    );
    assert_eq!(
        outcome.outcome.blockers[0].record,
        enrollment_proof("E-P-BJ")
    );
    assert!(outcome.outcome.blockers[1].action_en.starts_with(
        "5 months of pension insurance in the source region are unpaid (2024-01 – 2024-05)"
    ));

    // Paid through May: June, the current month, is not due yet.
    records.extend(paid((2024, 1), (2024, 5)));
    let blocker = only(&check(&records), BlockerCode::DuplicateActiveEnrollment);
    assert!(blocker.action_en.contains("both regions"));
}

#[test]
fn a_suspended_source_without_an_end_date_owes_nothing_after_its_last_paid_month() {
    let mut records = without(&ready(), &["E-P-BJ"]);
    records.push(source(EnrollmentStatus::Suspended, None));
    assert!(check(&records).outcome.eligible);
}

#[test]
fn no_open_enrollment_in_the_source_region_blocks() {
    let mut records = without(&ready(), &["E-P-BJ"]);
    records.push(source(EnrollmentStatus::TransferredOut, Some((2023, 12))));
    // Work-injury insurance is not carried across regions, so it does not count.
    records.push(enrollment(
        "E-W-BJ",
        1,
        PERSON,
        InsuranceType::WorkInjury,
        BEIJING,
        EnrollmentStatus::Active,
        (2020, 1),
        None,
    ));
    let outcome = check(&records);
    let blocker = only(&outcome, BlockerCode::NoEnrollmentInSource);
    assert_eq!(blocker.agency, Agency::SocialSecurity);
    assert!(blocker.action_en.contains("source region 110105"));
    assert_eq!(outcome.months_paid_in_source, 48);
}

#[test]
fn no_active_enrollment_in_the_target_region_blocks() {
    let missing = check(&without(&ready(), &["E-P-SH"]));
    let blocker = only(&missing, BlockerCode::NoEnrollmentInTarget);
    assert!(blocker.action_en.contains("target region 310104"));
    assert!(blocker.action_zh.contains("养老保险"));

    let mut suspended = without(&ready(), &["E-P-SH"]);
    suspended.push(target(EnrollmentStatus::Suspended));
    only(&check(&suspended), BlockerCode::NoEnrollmentInTarget);
}

#[test]
fn only_a_certificate_of_this_insurance_to_this_region_counts() {
    let mut records = without(&ready(), &["Z-P"]);
    records.push(pension_certificate(GUANGZHOU));
    records.push(certificate(
        "Z-M",
        1,
        PERSON,
        InsuranceType::Medical,
        BEIJING,
        SHANGHAI,
    ));
    records.push(certificate(
        "Z-O",
        1,
        OTHER,
        InsuranceType::Pension,
        BEIJING,
        SHANGHAI,
    ));
    let blocker = only(&check(&records), BlockerCode::TransferOutCertificateMissing);
    assert!(
        blocker
            .action_en
            .contains("pension insurance transfer-out certificate")
    );
}

#[test]
fn each_transferable_insurance_is_checked_on_its_own() {
    let mut records = ready();
    records.push(enrollment(
        "E-M-BJ",
        1,
        PERSON,
        InsuranceType::Medical,
        BEIJING,
        EnrollmentStatus::Suspended,
        (2023, 1),
        Some((2023, 12)),
    ));
    for month in 1..=12 {
        records.push(contribution_of(
            &format!("M-2023-{month:02}"),
            InsuranceType::Medical,
            2023,
            month,
            BEIJING,
            1,
            20_000,
        ));
    }
    let outcome = check(&records);
    assert_eq!(
        outcome.outcome.codes(),
        vec![
            BlockerCode::NoEnrollmentInTarget,
            BlockerCode::TransferOutCertificateMissing
        ]
    );
    assert!(
        outcome
            .outcome
            .blockers
            .iter()
            .all(|b| b.action_en.contains("medical insurance"))
    );
    // Pension months cover the medical ones: still 48 distinct months in Beijing.
    assert_eq!(outcome.months_paid_in_source, 48);
}

#[test]
fn another_persons_records_are_ignored() {
    let mut records = without(&ready(), &["P-2021-06"]);
    records.push(contribution_for(
        OTHER,
        "P-OTHER-2021-06",
        InsuranceType::Pension,
        2021,
        6,
        BEIJING,
        1,
        80_000,
    ));
    only(&check(&records), BlockerCode::UnpaidContributionMonths);
}

#[test]
fn a_transfer_to_the_same_region_is_an_error() {
    let err = check_social_security_transfer(
        &id(PERSON),
        &region(BEIJING),
        &region(BEIJING),
        &ready(),
        &ContributionSummary::default(),
        today(),
    )
    .unwrap_err();
    assert_eq!(err, CheckError::SameRegion);
}
