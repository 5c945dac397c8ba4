//! "May this person's social-security account move from city A to city B?": the transfer
//! check over the person's enrollments, contributions and certificates.
//!
//! The process it follows: the person enrolls in the target region first; the account in
//! the source region stops contributing (suspended or ended); every month of the source
//! enrollment is paid; the source region issues a transfer-out certificate to the target.
//! Only insurances that carry an account across regions are checked (pension, medical,
//! unemployment); work-injury and maternity insurance start afresh in the new region.

use std::collections::BTreeSet;

use super::summary::gaps_in;
use super::{
    Blocker, BlockerCode, CheckError, CheckOutcome, ContributionSummary, Live, RecordSet,
    date_month, month_index, month_range, same_id,
};
use crate::domain::{CivilDate, DivisionCode, ResidentId};
use crate::proto::{self, Agency, EnrollmentStatus, InsuranceType};

/// The insurances whose account moves with the person, in the order blockers are listed.
const TRANSFERABLE: [InsuranceType; 3] = [
    InsuranceType::Pension,
    InsuranceType::Medical,
    InsuranceType::Unemployment,
];

/// How many unpaid runs an action spells out; the rest are counted, so a long history of
/// arrears cannot make a blocker's text grow without bound.
const MAX_RUNS_LISTED: usize = 3;

/// The answer of a social-security transfer check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialSecurityTransferOutcome {
    /// Eligible or not, and the blockers.
    pub outcome: CheckOutcome,
    /// Distinct months with a paid contribution (any insurance type) in the source
    /// region: what the transfer carries over.
    pub months_paid_in_source: u32,
}

/// Checks whether `person`'s social-security accounts may move from `from_region` to
/// `to_region`, given the person's records and `today` (China's civil date).
///
/// Blockers come in a fixed order: no open enrollment in the source region; then per
/// insurance (pension, medical, unemployment): no enrollment in the target, active in both
/// regions, unpaid months, transfer-out certificate missing.
pub fn check_social_security_transfer(
    person: &ResidentId,
    from_region: &DivisionCode,
    to_region: &DivisionCode,
    records: &[proto::RecordEvent],
    summary: &ContributionSummary,
    today: CivilDate,
) -> Result<SocialSecurityTransferOutcome, CheckError> {
    if from_region == to_region {
        return Err(CheckError::SameRegion);
    }
    let (from, to) = (from_region.as_str(), to_region.as_str());
    let set = RecordSet::new(records);
    let enrollments: Vec<_> = set
        .enrollments()
        .filter(|e| same_id(&e.record.person_id, person.as_str()))
        .collect();
    let open_in_source = open_in_source(&enrollments, from);

    let mut blockers = Vec::new();
    if open_in_source.is_empty() {
        blockers.push(no_enrollment_in_source(from));
    }
    for source in &open_in_source {
        blockers.extend(target_enrollment_blocker(source, &enrollments, to));
        blockers.extend(unpaid_months(source, summary, from, today));
        let insurance = source.record.insurance_type();
        if !certified(&set, person, insurance, from, to) {
            blockers.push(certificate_missing(insurance, from));
        }
    }
    let months_paid_in_source = summary
        .months_paid_by_region()
        .get(from)
        .copied()
        .unwrap_or(0);
    Ok(SocialSecurityTransferOutcome {
        outcome: CheckOutcome::from_blockers(blockers),
        months_paid_in_source,
    })
}

/// The person's transferable accounts still open in the source region `from`, in the
/// order of [`TRANSFERABLE`].
///
/// Suspended counts as open: the account stays in the region, which is the usual state
/// of an account whose owner changed city.
fn open_in_source<'s, 'a>(
    enrollments: &'s [Live<'a, proto::Enrollment>],
    from: &str,
) -> Vec<&'s Live<'a, proto::Enrollment>> {
    TRANSFERABLE
        .iter()
        .flat_map(|t| {
            enrollments.iter().filter(move |e| {
                e.record.insurance_type() == *t
                    && e.record.region_code == from
                    && matches!(
                        e.record.status(),
                        EnrollmentStatus::Active | EnrollmentStatus::Suspended
                    )
            })
        })
        .collect()
}

/// The blocker when no transferable account is open in the source region `from`.
fn no_enrollment_in_source(from: &str) -> Blocker {
    Blocker {
        code: BlockerCode::NoEnrollmentInSource,
        agency: Agency::SocialSecurity,
        record: None,
        party: None,
        action_zh: format!(
            "在转出地（区划代码 {from}）没有可转移的参保记录（养老、医疗或失业保险），请向转出地社会保险经办机构核实参保地。"
        ),
        action_en: format!(
            "No pension, medical or unemployment insurance account is open in the source \
             region {from}: check with that region's social-security bureau where the \
             account is held."
        ),
    }
}

/// What the target region's enrollment for `source`'s insurance blocks: none active in
/// the target region `to` yet, or the source account still active beside it (paid in
/// both regions at once). `None` when the person is enrolled in the target and the source
/// account has stopped contributing.
fn target_enrollment_blocker(
    source: &Live<'_, proto::Enrollment>,
    enrollments: &[Live<'_, proto::Enrollment>],
    to: &str,
) -> Option<Blocker> {
    let insurance = source.record.insurance_type();
    let (zh_name, en_name) = names(insurance);
    let active_in_target = enrollments.iter().any(|e| {
        e.record.insurance_type() == insurance
            && e.record.region_code == to
            && e.record.status() == EnrollmentStatus::Active
    });
    if !active_in_target {
        return Some(Blocker {
            code: BlockerCode::NoEnrollmentInTarget,
            agency: Agency::SocialSecurity,
            record: None,
            party: None,
            action_zh: format!(
                "请先在转入地（区划代码 {to}）参加{zh_name}（由新单位办理或以灵活就业人员身份参保），再由转入地申请转移。"
            ),
            action_en: format!(
                "Enroll in {en_name} in the target region {to} first (through the new \
                 employer, or as self-employed); the transfer is applied for there."
            ),
        });
    }
    if source.record.status() != EnrollmentStatus::Active {
        return None;
    }
    Some(Blocker {
        code: BlockerCode::DuplicateActiveEnrollment,
        agency: Agency::SocialSecurity,
        record: Some(source.proof()),
        party: None,
        action_zh: format!(
            "{zh_name}在转出地和转入地同时在缴费，请原单位先在转出地办理停保（减员），重复缴费的月份按规定清理。"
        ),
        action_en: format!(
            "{en_name} is being paid in both regions at once: the former employer \
             must stop it in the source region first; months paid twice are \
             cleared as the rules say."
        ),
    })
}

/// Whether the source region `from` has issued `person`'s transfer-out certificate for
/// `insurance` to the target region `to`.
fn certified(
    set: &RecordSet<'_>,
    person: &ResidentId,
    insurance: InsuranceType,
    from: &str,
    to: &str,
) -> bool {
    set.certificates().any(|c| {
        same_id(&c.record.person_id, person.as_str())
            && c.record.insurance_type() == insurance
            && c.record.from_region_code == from
            && c.record.to_region_code == to
    })
}

/// The blocker when the source region `from` has not issued the transfer-out certificate
/// for `insurance`.
fn certificate_missing(insurance: InsuranceType, from: &str) -> Blocker {
    let (zh_name, en_name) = names(insurance);
    Blocker {
        code: BlockerCode::TransferOutCertificateMissing,
        agency: Agency::SocialSecurity,
        record: None,
        party: None,
        action_zh: format!(
            "转出地（区划代码 {from}）尚未开具{zh_name}参保缴费凭证（转出证明）；在转入地提出转移申请后，由转出地社会保险经办机构开具。"
        ),
        action_en: format!(
            "The source region {from} has not issued the {en_name} transfer-out \
             certificate yet: once the transfer is applied for in the target region, \
             the source region's bureau issues it."
        ),
    }
}

/// The months of `source` that should have been paid and were not.
///
/// Due: from the enrollment's start month to its end month; for one still active, to the
/// month before the current one (the current month is not due yet); for one suspended
/// without an end date, to the last month paid (the months after the suspension were
/// never due).
fn unpaid_months(
    source: &Live<'_, proto::Enrollment>,
    summary: &ContributionSummary,
    region: &str,
    today: CivilDate,
) -> Option<Blocker> {
    let record = source.record;
    let start = month_index(date_month(record.start_date.as_ref())?);
    let paid: BTreeSet<i32> = summary
        .paid_months(region, record.insurance_type())
        .into_iter()
        .map(month_index)
        .collect();
    let end = match date_month(record.end_date.as_ref()) {
        Some(end) => month_index(end),
        None if record.status() == EnrollmentStatus::Active => month_index(today.year_month()) - 1,
        None => paid.last().copied().unwrap_or(start),
    };
    if end < start {
        return None;
    }
    // Sentinels just outside the due range turn leading and trailing unpaid months into
    // gaps too, so one function finds every run.
    let mut marks: BTreeSet<i32> = paid.range(start..=end).copied().collect();
    marks.insert(start - 1);
    marks.insert(end + 1);
    let runs = gaps_in(&marks);
    if runs.is_empty() {
        return None;
    }
    let total: u32 = runs.iter().map(|g| g.months).sum();
    let listed: Vec<String> = runs
        .iter()
        .take(MAX_RUNS_LISTED)
        .map(|g| month_range(g.first, g.last))
        .collect();
    let more = runs.len().saturating_sub(MAX_RUNS_LISTED);
    let (zh_name, en_name) = names(record.insurance_type());
    let (more_zh, more_en) = if more > 0 {
        (
            format!("等{}段", runs.len()),
            format!(" and {more} more periods"),
        )
    } else {
        (String::new(), String::new())
    };
    let listed = listed.join(", ");
    Some(Blocker {
        code: BlockerCode::UnpaidContributionMonths,
        agency: Agency::SocialSecurity,
        record: Some(source.proof()),
        party: None,
        action_zh: format!(
            "转出地{zh_name}有{total}个月未缴费（{listed}{more_zh}），请在转出地补缴或由社会保险经办机构核实后再转移。"
        ),
        action_en: format!(
            "{total} months of {en_name} in the source region are unpaid ({listed}{more_en}): \
             pay them there, or have the social-security bureau correct the record, before \
             the transfer."
        ),
    })
}

/// The insurance's name in Chinese and English, for actions.
fn names(insurance: InsuranceType) -> (&'static str, &'static str) {
    match insurance {
        InsuranceType::Pension => ("养老保险", "pension insurance"),
        InsuranceType::Medical => ("医疗保险", "medical insurance"),
        InsuranceType::Unemployment => ("失业保险", "unemployment insurance"),
        InsuranceType::WorkInjury => ("工伤保险", "work-injury insurance"),
        InsuranceType::Maternity => ("生育保险", "maternity insurance"),
        InsuranceType::Unspecified => ("社会保险", "social insurance"),
    }
}

#[cfg(test)]
#[path = "social_security_tests.rs"]
mod tests;
