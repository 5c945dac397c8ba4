//! Plans: the steps a case of each kind needs, the agency each belongs to, the order they
//! open in, and what in the current records proves each one done. Pure: the engine reads
//! the records of the case's subjects and asks [`evaluate`] about every step, at opening
//! and whenever one of those records changes.

use std::collections::BTreeMap;

use crate::proto::{
    AccountStatus, Agency, CaseKind, CaseParams, DataObjectionParams, EnrollmentStatus,
    HouseholdMoveParams, HouseholdStatus, LoanStatus, PropertyTransferParams,
    ProvidentFundLoanParams, ProvidentFundTransferParams, RecordEvent, RecordProof,
    SaleContractStatus, SocialSecurityTransferParams, StepKind, case_params,
};
use crate::records::{RecordKey, RecordType, SubjectKey};
use crate::resolver::checks::{
    Live, Placement, RecordSet, key_of, loan_settled, normalise_address, placement, same_id,
};

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

/// A loan application has one step: the fund centre's approval.
const PROVIDENT_FUND_LOAN: [StepSpec; 1] = [step(
    StepKind::FundLoanApproved,
    Agency::ProvidentFund,
    &[],
    10,
)];

/// An objection's one step. Its agency is the disputed record's owner (see
/// [`step_agency`]), not this placeholder.
const DATA_OBJECTION: [StepSpec; 1] = [step(
    StepKind::ObjectionResolved,
    Agency::Unspecified,
    &[],
    5,
)];

/// The steps of a kind, in plan order; empty for `Unspecified`.
pub fn steps_of(kind: CaseKind) -> &'static [StepSpec] {
    match kind {
        CaseKind::PropertyTransfer => &PROPERTY_TRANSFER,
        CaseKind::SocialSecurityTransfer => &SOCIAL_SECURITY_TRANSFER,
        CaseKind::ProvidentFundTransfer => &PROVIDENT_FUND_TRANSFER,
        CaseKind::HouseholdMove => &HOUSEHOLD_MOVE,
        CaseKind::ProvidentFundLoan => &PROVIDENT_FUND_LOAN,
        CaseKind::DataObjection => &DATA_OBJECTION,
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
        CaseKind::ProvidentFundLoan,
        CaseKind::DataObjection,
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
        case_params::Kind::ProvidentFundLoan(_) => CaseKind::ProvidentFundLoan,
        case_params::Kind::DataObjection(_) => CaseKind::DataObjection,
    })
}

/// The agency a step of `spec` belongs to in a case with `params`: the plan's, except an
/// objection's step, which belongs to the agency owning the disputed record.
pub fn step_agency(spec: &StepSpec, params: &CaseParams) -> Agency {
    match &params.kind {
        Some(case_params::Kind::DataObjection(o)) => RecordKey::parse(&o.record_key)
            .map_or(Agency::Unspecified, |k| k.record_type().agency()),
        _ => spec.agency,
    }
}

/// What the engine reads for a case: subjects and the record types of each, so that a
/// record change of one of them is a reason to evaluate the case again. A sale reads the
/// unit and each seller's household registrations: a registration that carries only an
/// address is filed under its person, not the unit.
pub fn reads(params: &CaseParams) -> Vec<(SubjectKey, Vec<RecordType>)> {
    let person = |id: &str| SubjectKey::from_stored(&format!("p:{}", id.to_ascii_uppercase()));
    match &params.kind {
        Some(case_params::Kind::PropertyTransfer(p)) => {
            let unit = (
                SubjectKey::from_stored(&format!("u:{}", p.unit_number.to_ascii_uppercase())),
                vec![
                    RecordType::HouseholdRegistration,
                    RecordType::ProvidentFundLoan,
                    RecordType::SaleContract,
                    RecordType::PropertyTitle,
                ],
            );
            let sellers = p
                .seller_ids
                .iter()
                .map(|s| (person(s), vec![RecordType::HouseholdRegistration]));
            std::iter::once(unit).chain(sellers).collect()
        }
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
        Some(case_params::Kind::ProvidentFundLoan(p)) => {
            vec![(person(&p.person_id), vec![RecordType::ProvidentFundLoan])]
        }
        Some(case_params::Kind::DataObjection(o)) => {
            let Ok(key) = RecordKey::parse(&o.record_key) else {
                return Vec::new();
            };
            o.subjects
                .iter()
                .map(|s| (SubjectKey::from_stored(s), vec![key.record_type()]))
                .collect()
        }
        None => Vec::new(),
    }
}

/// Whether the records prove a step done, and by what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Done: this record version says so.
    Holds(RecordProof),
    /// Not proved: a record says the condition is unmet, or no record says anything (a
    /// missing record is unknown, never proof). The step's agency has to act.
    Open,
}

/// What `records` (the current versions of the case's subjects' records, as [`reads`]
/// names them) say of step `kind` of a case with `params`. Only a live record proves a
/// step; steps only an agency can complete (carrying contributions or a balance over)
/// are always [`Condition::Open`].
pub fn evaluate(kind: StepKind, params: &CaseParams, records: &[RecordEvent]) -> Condition {
    let set = RecordSet::new(records);
    let proved = match &params.kind {
        Some(case_params::Kind::PropertyTransfer(p)) => property_transfer(kind, p, &set),
        Some(case_params::Kind::SocialSecurityTransfer(p)) => {
            social_security_transfer(kind, p, &set)
        }
        Some(case_params::Kind::ProvidentFundTransfer(p)) => provident_fund_transfer(kind, p, &set),
        Some(case_params::Kind::HouseholdMove(p)) => household_move(kind, p, &set),
        Some(case_params::Kind::ProvidentFundLoan(p)) => provident_fund_loan(kind, p, &set),
        Some(case_params::Kind::DataObjection(o)) => {
            return corrected(o, records).map_or(Condition::Open, Condition::Holds);
        }
        None => None,
    };
    proved.map_or(Condition::Open, |(key, version)| {
        Condition::Holds(RecordProof {
            record_key: key.to_string(),
            version,
            absence: String::new(),
        })
    })
}

/// The corrected version of an objection's record: a live version after the disputed
/// one. The same version (or none) proves nothing.
fn corrected(o: &DataObjectionParams, records: &[RecordEvent]) -> Option<RecordProof> {
    records
        .iter()
        .filter(|r| {
            r.payload.is_some()
                && r.version > o.version
                && key_of(r).is_some_and(|k| k.as_str() == o.record_key)
        })
        .max_by_key(|r| r.version)
        .map(|r| RecordProof {
            record_key: o.record_key.clone(),
            version: r.version,
            absence: String::new(),
        })
}

fn proof<T>(live: &Live<'_, T>) -> (RecordKey, u64) {
    (live.key.clone(), live.version)
}

fn property_transfer(
    kind: StepKind,
    p: &PropertyTransferParams,
    set: &RecordSet<'_>,
) -> Option<(RecordKey, u64)> {
    let on_unit = |number: &str| number.eq_ignore_ascii_case(&p.unit_number);
    match kind {
        StepKind::SellerHouseholdMovedOut => sellers_moved_out(p, set),
        StepKind::LoanSettled => {
            // Every loan on the unit settled, and at least one to say so: without any,
            // the fund centre confirms there is none (its task).
            let loans: Vec<_> = set
                .loans()
                .filter(|l| on_unit(&l.record.unit_number))
                .collect();
            if loans.iter().all(|l| loan_settled(l.record)) {
                loans.first().map(proof)
            } else {
                None
            }
        }
        StepKind::SaleContractFiled => set
            .contracts()
            .find(|c| {
                c.record.contract_number == p.contract_number
                    && on_unit(&c.record.unit_number)
                    && matches!(
                        c.record.status(),
                        SaleContractStatus::Filed | SaleContractStatus::Completed
                    )
            })
            .map(|c| proof(&c)),
        StepKind::TitleRegistered => set
            .titles()
            .find(|t| {
                on_unit(&t.record.unit_number)
                    && t.record.owners.len() == p.buyer_ids.len()
                    && t.record
                        .owners
                        .iter()
                        .all(|o| p.buyer_ids.iter().any(|b| same_id(&o.person_id, b)))
            })
            .map(|t| proof(&t)),
        _ => None,
    }
}

/// The record proving that no seller's household is registered at the unit: every
/// seller has a registration that places them elsewhere and none that places them at the
/// unit or leaves it unsure, by the property check's own [`placement`]. A seller of whom
/// the police have no record is unknown: the step stays open for public security to
/// confirm. The proof cited is the first seller's record.
fn sellers_moved_out(p: &PropertyTransferParams, set: &RecordSet<'_>) -> Option<(RecordKey, u64)> {
    let unit_address = set
        .titles()
        .filter(|t| t.record.unit_number.eq_ignore_ascii_case(&p.unit_number))
        .max_by_key(|t| t.version)
        .map(|t| normalise_address(&t.record.address));
    let mut first = None;
    for seller in &p.seller_ids {
        let mut placed_elsewhere = None;
        for h in set
            .households()
            .filter(|h| same_id(&h.record.person_id, seller))
        {
            match placement(h.record, &p.unit_number, unit_address.as_deref()) {
                Placement::Elsewhere => placed_elsewhere = placed_elsewhere.or(Some(proof(&h))),
                Placement::AtUnit | Placement::Unsure => return None,
            }
        }
        first = first.or(Some(placed_elsewhere?));
    }
    first
}

fn social_security_transfer(
    kind: StepKind,
    p: &SocialSecurityTransferParams,
    set: &RecordSet<'_>,
) -> Option<(RecordKey, u64)> {
    match kind {
        StepKind::TransferOutCertificateIssued => set
            .certificates()
            .find(|c| {
                let c = c.record;
                same_id(&c.person_id, &p.person_id)
                    && c.insurance_type == p.insurance_type
                    && c.from_region_code == p.from_region_code
                    && c.to_region_code == p.to_region_code
            })
            .map(|c| proof(&c)),
        StepKind::TransferAccepted => set
            .enrollments()
            .find(|n| {
                let n = n.record;
                same_id(&n.person_id, &p.person_id)
                    && n.insurance_type == p.insurance_type
                    && n.region_code == p.to_region_code
                    && n.status() == EnrollmentStatus::Active
            })
            .map(|n| proof(&n)),
        _ => None,
    }
}

fn provident_fund_transfer(
    kind: StepKind,
    p: &ProvidentFundTransferParams,
    set: &RecordSet<'_>,
) -> Option<(RecordKey, u64)> {
    let found = set.accounts().find(|a| {
        let a = a.record;
        same_id(&a.person_id, &p.person_id)
            && match kind {
                StepKind::FundAccountReleased => {
                    a.region_code == p.from_region_code
                        && matches!(a.status(), AccountStatus::Sealed | AccountStatus::Closed)
                }
                StepKind::FundAccountOpenedAtTarget => {
                    a.region_code == p.to_region_code && a.status() == AccountStatus::Active
                }
                _ => false,
            }
    });
    found.map(|a| proof(&a))
}

fn household_move(
    kind: StepKind,
    p: &HouseholdMoveParams,
    set: &RecordSet<'_>,
) -> Option<(RecordKey, u64)> {
    let found = set.households().find(|h| {
        let h = h.record;
        same_id(&h.person_id, &p.person_id)
            && match (kind, h.status()) {
                // One record follows the household through the move: registered at the
                // target says the move-out happened even if its version was never seen.
                (StepKind::HouseholdMovedOut, HouseholdStatus::MovedOut) => {
                    h.destination_region_code == p.to_region_code
                }
                (
                    StepKind::HouseholdMovedOut | StepKind::HouseholdRegisteredAtTarget,
                    HouseholdStatus::Registered,
                ) => h.region_code == p.to_region_code,
                _ => false,
            }
    });
    found.map(|h| proof(&h))
}

/// The loan approved: the fund centre recorded a loan to the applicant on the unit that
/// is being repaid. A settled or overdue loan on the unit is an earlier one, not this
/// application's; the fund completes the step by its task then.
fn provident_fund_loan(
    kind: StepKind,
    p: &ProvidentFundLoanParams,
    set: &RecordSet<'_>,
) -> Option<(RecordKey, u64)> {
    if kind != StepKind::FundLoanApproved {
        return None;
    }
    set.loans()
        .find(|l| {
            same_id(&l.record.borrower_id, &p.person_id)
                && l.record.unit_number.eq_ignore_ascii_case(&p.unit_number)
                && l.record.status() == LoanStatus::Repaying
        })
        .map(|l| proof(&l))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
pub(super) mod tests;
