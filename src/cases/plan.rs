//! Plans: the steps a case of each kind needs, the agency each belongs to, the order they
//! open in, and what in the current records proves each one done. Pure: the engine reads
//! the records of the case's subjects and asks [`evaluate`] about every step, at opening
//! and whenever one of those records changes.

use std::collections::BTreeMap;

use crate::proto::{
    Agency, CaseKind, CaseParams, HouseholdStatus, LoanStatus, RecordEvent, RecordProof,
    SaleContractStatus, StepKind, case_params, record_event::Payload,
};
use crate::records::{RecordKey, RecordType, SubjectKey};
use crate::resolver::checks::same_id;

/// One step of a kind's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpec {
    /// What it brings about.
    pub kind: StepKind,
    /// Who carries it out.
    pub agency: Agency,
    /// Steps that must be done before it opens.
    pub after: &'static [StepKind],
    /// Working days it may take once open, unless configured otherwise.
    pub working_days: u32,
}

const fn step(kind: StepKind, agency: Agency, after: &'static [StepKind], days: u32) -> StepSpec {
    StepSpec {
        kind,
        agency,
        after,
        working_days: days,
    }
}

const PROPERTY_TRANSFER: [StepSpec; 4] = [
    step(
        StepKind::SellerHouseholdMovedOut,
        Agency::PublicSecurity,
        &[],
        5,
    ),
    step(StepKind::LoanSettled, Agency::ProvidentFund, &[], 5),
    step(StepKind::SaleContractFiled, Agency::Housing, &[], 3),
    step(
        StepKind::TitleRegistered,
        Agency::Housing,
        &[
            StepKind::SellerHouseholdMovedOut,
            StepKind::LoanSettled,
            StepKind::SaleContractFiled,
        ],
        5,
    ),
];

const SOCIAL_SECURITY_TRANSFER: [StepSpec; 3] = [
    step(
        StepKind::TransferOutCertificateIssued,
        Agency::SocialSecurity,
        &[],
        5,
    ),
    step(
        StepKind::TransferAccepted,
        Agency::SocialSecurity,
        &[StepKind::TransferOutCertificateIssued],
        5,
    ),
    step(
        StepKind::ContributionsCarriedOver,
        Agency::SocialSecurity,
        &[StepKind::TransferAccepted],
        5,
    ),
];

const PROVIDENT_FUND_TRANSFER: [StepSpec; 3] = [
    step(StepKind::FundAccountReleased, Agency::ProvidentFund, &[], 5),
    step(
        StepKind::FundAccountOpenedAtTarget,
        Agency::ProvidentFund,
        &[StepKind::FundAccountReleased],
        5,
    ),
    step(
        StepKind::FundBalanceCarriedOver,
        Agency::ProvidentFund,
        &[StepKind::FundAccountOpenedAtTarget],
        5,
    ),
];

const HOUSEHOLD_MOVE: [StepSpec; 2] = [
    step(StepKind::HouseholdMovedOut, Agency::PublicSecurity, &[], 5),
    step(
        StepKind::HouseholdRegisteredAtTarget,
        Agency::PublicSecurity,
        &[StepKind::HouseholdMovedOut],
        5,
    ),
];

/// The steps of a kind, in plan order; empty for `Unspecified`.
pub fn steps_of(kind: CaseKind) -> &'static [StepSpec] {
    match kind {
        CaseKind::PropertyTransfer => &PROPERTY_TRANSFER,
        CaseKind::SocialSecurityTransfer => &SOCIAL_SECURITY_TRANSFER,
        CaseKind::ProvidentFundTransfer => &PROVIDENT_FUND_TRANSFER,
        CaseKind::HouseholdMove => &HOUSEHOLD_MOVE,
        CaseKind::Unspecified => &[],
    }
}

/// The name of a step kind in step ids and settings, e.g. `loan_settled`.
pub fn step_name(kind: StepKind) -> String {
    kind.as_str_name()
        .trim_start_matches("STEP_KIND_")
        .to_ascii_lowercase()
}

/// Every step kind some plan has, in plan order.
fn planned_kinds() -> impl Iterator<Item = StepKind> {
    [
        CaseKind::PropertyTransfer,
        CaseKind::SocialSecurityTransfer,
        CaseKind::ProvidentFundTransfer,
        CaseKind::HouseholdMove,
    ]
    .into_iter()
    .flat_map(|kind| steps_of(kind).iter().map(|spec| spec.kind))
}

/// The most working days a step may be given: a year's worth.
const MAX_WORKING_DAYS: u32 = 250;

/// Working days each step kind allows once open: the plan's, unless the setting
/// `step_working_days` gives another number for the kind (by [`step_name`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkingDays(BTreeMap<i32, u32>);

impl WorkingDays {
    /// The plan's numbers, with `configured` (step name → working days) instead where
    /// given; an unknown name or a number outside 1 to 250 is refused, naming it.
    pub fn configured(configured: &BTreeMap<String, u32>) -> Result<WorkingDays, String> {
        let mut days = BTreeMap::new();
        for (name, &n) in configured {
            let kind = planned_kinds()
                .find(|k| step_name(*k) == *name)
                .ok_or_else(|| {
                    let known: Vec<String> = planned_kinds().map(step_name).collect();
                    format!(
                        "step_working_days: no step is called {name:?}; the steps are {}",
                        known.join(", ")
                    )
                })?;
            if !(1..=MAX_WORKING_DAYS).contains(&n) {
                return Err(format!(
                    "step_working_days.{name} must be 1 to {MAX_WORKING_DAYS} working days, not {n}"
                ));
            }
            days.insert(kind as i32, n);
        }
        Ok(WorkingDays(days))
    }

    /// The working days a step of `spec` gets.
    pub fn of(&self, spec: &StepSpec) -> u32 {
        self.0
            .get(&(spec.kind as i32))
            .copied()
            .unwrap_or(spec.working_days)
    }
}

/// The kind the parameters are for; `None` when they are empty.
pub fn kind_of(params: &CaseParams) -> Option<CaseKind> {
    Some(match params.kind.as_ref()? {
        case_params::Kind::PropertyTransfer(_) => CaseKind::PropertyTransfer,
        case_params::Kind::SocialSecurityTransfer(_) => CaseKind::SocialSecurityTransfer,
        case_params::Kind::ProvidentFundTransfer(_) => CaseKind::ProvidentFundTransfer,
        case_params::Kind::HouseholdMove(_) => CaseKind::HouseholdMove,
    })
}

/// What the engine reads for a case: subjects and the record types of each, so that a
/// record change of one of them is a reason to evaluate the case again.
pub fn reads(params: &CaseParams) -> Vec<(SubjectKey, Vec<RecordType>)> {
    let person = |id: &str| SubjectKey::from_stored(&format!("p:{}", id.to_ascii_uppercase()));
    match &params.kind {
        Some(case_params::Kind::PropertyTransfer(p)) => vec![(
            SubjectKey::from_stored(&format!("u:{}", p.unit_number)),
            vec![
                RecordType::HouseholdRegistration,
                RecordType::ProvidentFundLoan,
                RecordType::SaleContract,
                RecordType::PropertyTitle,
            ],
        )],
        Some(case_params::Kind::SocialSecurityTransfer(p)) => vec![(
            person(&p.person_id),
            vec![RecordType::TransferOutCertificate, RecordType::Enrollment],
        )],
        Some(case_params::Kind::ProvidentFundTransfer(p)) => {
            vec![(person(&p.person_id), vec![RecordType::ProvidentFundAccount])]
        }
        Some(case_params::Kind::HouseholdMove(p)) => vec![(
            person(&p.person_id),
            vec![RecordType::HouseholdRegistration],
        )],
        None => Vec::new(),
    }
}

/// Whether the records prove a step done, and by what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Done: this record version (or the absence of any that calls for the step) says so.
    Holds(RecordProof),
    /// Not yet: the step's agency has to act.
    Open,
}

/// What `records` (the current versions of the case's subjects' records, as [`reads`]
/// names them) say of step `kind` of a case with `params`. Steps only an agency can
/// complete (carrying contributions or a balance over) are always [`Condition::Open`].
pub fn evaluate(kind: StepKind, params: &CaseParams, records: &[RecordEvent]) -> Condition {
    let records = || {
        records
            .iter()
            .filter_map(|e| Some((e, e.payload.as_ref()?)))
    };
    let proof = |e: &RecordEvent| {
        Condition::Holds(RecordProof {
            record_key: RecordKey::new(
                RecordType::of_payload(e.payload.as_ref().expect("filtered on the payload")),
                &e.record_id,
            )
            .to_string(),
            version: e.version,
            absence: String::new(),
        })
    };
    let absent = |why: &str| {
        Condition::Holds(RecordProof {
            absence: why.to_owned(),
            ..Default::default()
        })
    };
    match (&params.kind, kind) {
        (Some(case_params::Kind::PropertyTransfer(p)), _) => {
            let seller = |id: &str| p.seller_ids.iter().any(|s| same_id(id, s));
            match kind {
                StepKind::SellerHouseholdMovedOut => {
                    let at_unit = records().filter_map(|(e, payload)| match payload {
                        Payload::HouseholdRegistration(h)
                            if seller(&h.person_id) && h.property_unit_number == p.unit_number =>
                        {
                            Some((e, h.status()))
                        }
                        _ => None,
                    });
                    let mut moved = None;
                    for (e, status) in at_unit {
                        if status == HouseholdStatus::Registered {
                            return Condition::Open;
                        }
                        moved = moved.or(Some(e));
                    }
                    moved.map_or_else(
                        || absent("no seller's household is registered at the unit"),
                        proof,
                    )
                }
                StepKind::LoanSettled => {
                    let mut settled = None;
                    for (e, payload) in records() {
                        if let Payload::ProvidentFundLoan(l) = payload {
                            if l.unit_number != p.unit_number {
                                continue;
                            }
                            if l.status() != LoanStatus::Settled {
                                return Condition::Open;
                            }
                            settled = settled.or(Some(e));
                        }
                    }
                    settled.map_or_else(|| absent("no provident-fund loan on the unit"), proof)
                }
                StepKind::SaleContractFiled => records()
                    .find(|(_, payload)| {
                        matches!(payload, Payload::SaleContract(c)
                            if c.contract_number == p.contract_number
                                && c.unit_number == p.unit_number
                                && matches!(c.status(),
                                    SaleContractStatus::Filed | SaleContractStatus::Completed))
                    })
                    .map_or(Condition::Open, |(e, _)| proof(e)),
                StepKind::TitleRegistered => records()
                    .find(|(_, payload)| {
                        matches!(payload, Payload::PropertyTitle(t)
                            if t.unit_number == p.unit_number
                                && t.owners.len() == p.buyer_ids.len()
                                && t.owners.iter().all(|o| p.buyer_ids.iter().any(|b| same_id(&o.person_id, b))))
                    })
                    .map_or(Condition::Open, |(e, _)| proof(e)),
                _ => Condition::Open,
            }
        }
        (Some(case_params::Kind::SocialSecurityTransfer(p)), _) => {
            let found = records().find(|(_, payload)| match (kind, payload) {
                (StepKind::TransferOutCertificateIssued, Payload::TransferOutCertificate(c)) => {
                    same_id(&c.person_id, &p.person_id)
                        && c.insurance_type == p.insurance_type
                        && c.from_region_code == p.from_region_code
                        && c.to_region_code == p.to_region_code
                }
                (StepKind::TransferAccepted, Payload::Enrollment(n)) => {
                    same_id(&n.person_id, &p.person_id)
                        && n.insurance_type == p.insurance_type
                        && n.region_code == p.to_region_code
                        && n.status() == crate::proto::EnrollmentStatus::Active
                }
                _ => false,
            });
            found.map_or(Condition::Open, |(e, _)| proof(e))
        }
        (Some(case_params::Kind::ProvidentFundTransfer(p)), _) => {
            use crate::proto::AccountStatus;
            let found = records().find(|(_, payload)| match (kind, payload) {
                (StepKind::FundAccountReleased, Payload::ProvidentFundAccount(a)) => {
                    same_id(&a.person_id, &p.person_id)
                        && a.region_code == p.from_region_code
                        && matches!(a.status(), AccountStatus::Sealed | AccountStatus::Closed)
                }
                (StepKind::FundAccountOpenedAtTarget, Payload::ProvidentFundAccount(a)) => {
                    same_id(&a.person_id, &p.person_id)
                        && a.region_code == p.to_region_code
                        && a.status() == AccountStatus::Active
                }
                _ => false,
            });
            found.map_or(Condition::Open, |(e, _)| proof(e))
        }
        (Some(case_params::Kind::HouseholdMove(p)), _) => {
            let found = records().find(|(_, payload)| match (kind, payload) {
                // One record follows the household through the move: registered at the
                // target says the move-out happened even if its version was never seen.
                (StepKind::HouseholdMovedOut, Payload::HouseholdRegistration(h)) => {
                    same_id(&h.person_id, &p.person_id)
                        && match h.status() {
                            HouseholdStatus::MovedOut => {
                                h.destination_region_code == p.to_region_code
                            }
                            HouseholdStatus::Registered => h.region_code == p.to_region_code,
                            _ => false,
                        }
                }
                (StepKind::HouseholdRegisteredAtTarget, Payload::HouseholdRegistration(h)) => {
                    same_id(&h.person_id, &p.person_id)
                        && h.status() == HouseholdStatus::Registered
                        && h.region_code == p.to_region_code
                }
                _ => false,
            });
            found.map_or(Condition::Open, |(e, _)| proof(e))
        }
        (None, _) => Condition::Open,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
pub(super) mod tests;
