//! `CheckProvidentFundLoan` as a lookup: parse, decide, read the applicant and the unit
//! in one round trip, run the pure loan check, audit, answer with the blockers and the
//! largest loan with its inputs.

use tokio::time::Instant;

use super::checks::date;
use super::{Lookup, Queries, QueryError, check_case_id, parse_person, parse_purpose};
use crate::domain::{CivilDate, ResidentId, UnitNumber};
use crate::identity::Caller;
use crate::proto;
use crate::records::{RecordType, SubjectKey, Violations};
use crate::resolver::checks::{LoanApplication, LoanLimit, check_provident_fund_loan};
use crate::resolver::policy::{Access, Field, Purpose, Section};
use crate::resolver::positions::Positions;
use crate::resolver::store::SubjectRead;

/// The largest loan one may apply for: 100 million yuan, far above any fund's cap, so a
/// typo of a few digits is refused rather than checked.
pub const MAX_LOAN_AMOUNT_FEN: i64 = 10_000_000_000;

/// A checked `CheckProvidentFundLoan` request: the applicant, the unit, the amount and
/// the purpose.
type LoanParams = (ResidentId, UnitNumber, i64, Purpose);

impl Queries {
    /// `CheckProvidentFundLoan`.
    pub async fn provident_fund_loan(
        &self,
        caller: &Caller,
        r: proto::CheckProvidentFundLoanRequest,
        deadline: Instant,
    ) -> Result<proto::CheckProvidentFundLoanResponse, QueryError> {
        let (person, unit, amount_fen, purpose) = parse_provident_fund_loan(&r, &self.positions)?;
        let local = self.loan_rule.local_rules_apply(&unit);
        let mut needs = vec![Section::ProvidentFund, Section::Property];
        if local {
            needs.extend([Section::Household, Section::SocialSecurity]);
        }
        let lookup = Lookup {
            units: vec![unit.as_str().to_owned()],
            ..Lookup::of_person(
                caller,
                "CheckProvidentFundLoan",
                purpose,
                r.case_id,
                &person,
            )
        };
        let access = self.decide(&lookup, &needs, deadline).await?;
        if let Some(field) = missing_fund_field(&access) {
            let reason = format!(
                "the grant for {} with purpose {} (policy line {}) does not include \
                 provident-fund field {}, which CheckProvidentFundLoan reads",
                caller.requester,
                lookup.purpose,
                access.grant_line(),
                field.name()
            );
            return Err(self.deny(&lookup, reason, deadline).await);
        }
        self.wait_for(&r.min_positions, deadline).await?;

        let reads = loan_reads(&person, &unit, local);
        let read = self
            .read_audited(&lookup, &access, &needs, &reads, deadline)
            .await?;
        let today = CivilDate::today_in_china();
        let application = LoanApplication {
            person: &person,
            unit: &unit,
            amount_fen,
        };
        let result = check_provident_fund_loan(
            application,
            &read.records,
            &read.summaries.of(&person),
            &self.loan_rule,
            today,
        )?;
        let (eligible, blockers) = read.judged(&result.outcome);
        Ok(proto::CheckProvidentFundLoanResponse {
            eligible,
            blockers,
            limit: result.limit.as_ref().map(limit),
            consecutive_deposit_months: result.consecutive_deposit_months,
            deposit_months_required: result.deposit_months_required,
            checked_on: Some(date(today)),
        })
    }
}

/// What a loan check reads: the applicant's fund account and loans (with their household
/// and contributions when a local rule applies), and the unit's title and contracts.
fn loan_reads(person: &ResidentId, unit: &UnitNumber, local: bool) -> [SubjectRead; 2] {
    let mut person_types = vec![
        RecordType::ProvidentFundAccount,
        RecordType::ProvidentFundLoan,
    ];
    if local {
        person_types.push(RecordType::HouseholdRegistration);
    }
    [
        SubjectRead {
            subject: SubjectKey::person(person),
            types: person_types,
            contributions: local,
        },
        SubjectRead {
            subject: SubjectKey::unit(unit),
            types: vec![RecordType::PropertyTitle, RecordType::SaleContract],
            contributions: false,
        },
    ]
}

/// Checks a `CheckProvidentFundLoan` request field by field: the applicant, the unit, the
/// amount and the purpose, or every broken rule by field.
pub fn parse_provident_fund_loan(
    r: &proto::CheckProvidentFundLoanRequest,
    positions: &Positions,
) -> Result<LoanParams, Violations> {
    let mut v = Violations::default();
    let person = parse_person(&r.person_id, "person_id", &mut v);
    let unit = UnitNumber::parse(&r.property_unit_number)
        .map_err(|e| {
            v.add(
                "property_unit_number",
                format!("not a real-estate unit number: {e}"),
            )
        })
        .ok();
    if !(1..=MAX_LOAN_AMOUNT_FEN).contains(&r.amount_fen) {
        v.add(
            "amount_fen",
            format!(
                "must be 1 to {MAX_LOAN_AMOUNT_FEN} fen, not {}",
                r.amount_fen
            ),
        );
    }
    let purpose = parse_purpose(&r.purpose, &mut v);
    check_case_id(&r.case_id, &mut v);
    positions.check(&r.min_positions, "min_positions", &mut v);
    match (person, unit, purpose) {
        (Some(person), Some(unit), Some(purpose)) if v.is_empty() => {
            Ok((person, unit, r.amount_fen, purpose))
        }
        _ => Err(v),
    }
}

/// The provident-fund field a grant narrows away that the answer would show (the
/// account, its balance in the largest loan, the loans in the blockers), if any: the
/// answer is never more than the grant lets the requester see.
fn missing_fund_field(access: &Access) -> Option<Field> {
    [Field::FundAccount, Field::FundBalance, Field::FundLoans]
        .into_iter()
        .find(|f| !access.allows(*f))
}

fn limit(l: &LoanLimit) -> proto::LoanLimit {
    proto::LoanLimit {
        max_loan_fen: l.max_loan_fen,
        balance_fen: l.balance_fen,
        balance_multiple: l.balance_multiple,
        cap_fen: l.cap_fen,
        account: Some(proto::RecordVersion {
            record_key: l.account.key.as_str().to_owned(),
            version: l.account.version,
        }),
        bounded_by: l.bounded_by.as_str().to_owned(),
    }
}
