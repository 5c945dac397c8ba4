//! What a `Cases` request must be, field by field: every broken rule, by field; and a
//! case's parameters in their one spelling.

use crate::domain::{DivisionCode, ResidentId, UnitNumber};
use crate::proto::{self, CaseParams, case_params};
use crate::records::{MAX_REPEATED, Violations};
use crate::resolver::policy::Purpose;

pub(super) fn valid_token(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Checks an `OpenCase` request field by field: every broken rule, by field.
pub fn validate_open_case(r: &proto::OpenCaseRequest) -> Violations {
    let mut violations = Violations::default();
    if !valid_token(&r.request_id) {
        violations.add(
            "request_id",
            "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -",
        );
    }
    if Purpose::parse(&r.purpose).is_err() {
        violations.add(
            "purpose",
            "must be a lowercase slug such as property-transfer",
        );
    }
    let none = CaseParams::default();
    validate_params(r.params.as_ref().unwrap_or(&none), &mut violations);
    violations
}

/// Checks a `ListCases` request's filters: every broken rule, by field.
pub fn validate_list_cases(r: &proto::ListCasesRequest) -> Violations {
    let mut violations = Violations::default();
    if r.limit > 500 {
        violations.add("limit", "must be at most 500");
    }
    if !r.person_id.is_empty() && ResidentId::parse(&r.person_id).is_err() {
        violations.add("person_id", "not a resident ID number");
    }
    violations
}

/// Checks a `CancelCase` request's reason (its case id is checked as any case id is).
pub fn validate_cancel_case(r: &proto::CancelCaseRequest) -> Violations {
    let mut violations = Violations::default();
    if r.reason.trim().is_empty() || r.reason.chars().count() > 500 {
        violations.add("reason", "must be 1 to 500 characters");
    }
    violations
}

/// Checks the case id a `GetCase`, `WatchCase` or `CancelCase` request names.
pub fn validate_case_id(case_id: &str) -> Violations {
    let mut violations = Violations::default();
    if !valid_token(case_id) {
        violations.add("case_id", "must be a case id returned by OpenCase");
    }
    violations
}

/// Valid parameters with every identifier in its one spelling (uppercase unit numbers and
/// check characters), so the case, its tasks and its subjects never depend on how the
/// caller typed them. Run after [`validate_open_case`] accepted them.
pub(crate) fn normalised(mut params: CaseParams) -> CaseParams {
    let person = |id: &mut String| {
        if let Ok(p) = ResidentId::parse(id) {
            *id = p.as_str().to_owned();
        }
    };
    match &mut params.kind {
        Some(case_params::Kind::PropertyTransfer(p)) => {
            if let Ok(unit) = UnitNumber::parse(&p.unit_number) {
                p.unit_number = unit.as_str().to_owned();
            }
            p.seller_ids.iter_mut().for_each(person);
            p.buyer_ids.iter_mut().for_each(person);
        }
        Some(case_params::Kind::SocialSecurityTransfer(p)) => person(&mut p.person_id),
        Some(case_params::Kind::ProvidentFundTransfer(p)) => person(&mut p.person_id),
        Some(case_params::Kind::HouseholdMove(p)) => person(&mut p.person_id),
        Some(case_params::Kind::ProvidentFundLoan(p)) => {
            person(&mut p.person_id);
            if let Ok(unit) = UnitNumber::parse(&p.unit_number) {
                p.unit_number = unit.as_str().to_owned();
            }
        }
        Some(case_params::Kind::DataObjection(p)) => person(&mut p.person_id),
        None => {}
    }
    params
}

/// Every field of the parameters, checked as records are: all violations, by field.
fn validate_params(params: &CaseParams, v: &mut Violations) {
    match &params.kind {
        None => v.add("params", "must name the case kind and its parameters"),
        Some(case_params::Kind::PropertyTransfer(p)) => validate_property_transfer(p, v),
        Some(case_params::Kind::SocialSecurityTransfer(p)) => {
            validate_social_security_transfer(p, v)
        }
        Some(case_params::Kind::ProvidentFundTransfer(p)) => validate_provident_fund_transfer(p, v),
        Some(case_params::Kind::HouseholdMove(p)) => validate_household_move(p, v),
        Some(case_params::Kind::ProvidentFundLoan(p)) => validate_provident_fund_loan(p, v),
        Some(case_params::Kind::DataObjection(_)) => v.add(
            "params.data_objection",
            "an objection is filed with Objections.FileObjection, not OpenCase",
        ),
    }
}

/// A sale's parameters: the unit, the contract, and the sellers and buyers, at least one
/// of each, a bounded number, nobody on both sides.
fn validate_property_transfer(p: &proto::PropertyTransferParams, v: &mut Violations) {
    let field = |name: &str| format!("params.property_transfer.{name}");
    if let Err(e) = UnitNumber::parse(&p.unit_number) {
        v.add(
            field("unit_number"),
            format!("not a real-estate unit number: {e}"),
        );
    }
    if !valid_token(&p.contract_number) {
        v.add(
            field("contract_number"),
            "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -",
        );
    }
    let mut bounded = true;
    for (name, ids) in [("seller_ids", &p.seller_ids), ("buyer_ids", &p.buyer_ids)] {
        if ids.is_empty() {
            v.add(field(name), "must name at least one person");
        }
        // As many parties as a sale contract may name; more are not checked one
        // by one (nor against each other: that work grows with the product).
        if ids.len() > MAX_REPEATED {
            v.add_too_long(
                field(name),
                format!(
                    "must have at most {MAX_REPEATED} entries, not {}",
                    ids.len()
                ),
            );
            bounded = false;
            continue;
        }
        for (i, id) in ids.iter().enumerate() {
            check_person(v, &format!("{}[{i}]", field(name)), id);
        }
    }
    if bounded
        && p.seller_ids
            .iter()
            .any(|s| p.buyer_ids.iter().any(|b| b.eq_ignore_ascii_case(s)))
    {
        v.add(field("buyer_ids"), "nobody may both sell and buy");
    }
}

/// A social-security transfer's parameters: the person, the insurance, and two different
/// regions.
fn validate_social_security_transfer(p: &proto::SocialSecurityTransferParams, v: &mut Violations) {
    let field = |name: &str| format!("params.social_security_transfer.{name}");
    check_person(v, &field("person_id"), &p.person_id);
    if p.insurance_type() == proto::InsuranceType::Unspecified {
        v.add(field("insurance_type"), "must be set");
    }
    check_regions(v, field, &p.from_region_code, &p.to_region_code);
}

/// A provident-fund transfer's parameters: the person and two different regions.
fn validate_provident_fund_transfer(p: &proto::ProvidentFundTransferParams, v: &mut Violations) {
    let field = |name: &str| format!("params.provident_fund_transfer.{name}");
    check_person(v, &field("person_id"), &p.person_id);
    check_regions(v, field, &p.from_region_code, &p.to_region_code);
}

/// A household move's parameters: the person and the region moved to.
fn validate_household_move(p: &proto::HouseholdMoveParams, v: &mut Violations) {
    let field = |name: &str| format!("params.household_move.{name}");
    check_person(v, &field("person_id"), &p.person_id);
    check_region(v, &field("to_region_code"), &p.to_region_code);
}

/// The largest loan a case may carry, as `CheckProvidentFundLoan` accepts it.
const MAX_LOAN_FEN: i64 = crate::resolver::query::MAX_LOAN_AMOUNT_FEN;

/// A loan application's parameters: the applicant, the unit and an amount the check
/// accepts.
fn validate_provident_fund_loan(p: &proto::ProvidentFundLoanParams, v: &mut Violations) {
    let field = |name: &str| format!("params.provident_fund_loan.{name}");
    check_person(v, &field("person_id"), &p.person_id);
    if let Err(e) = UnitNumber::parse(&p.unit_number) {
        v.add(
            field("unit_number"),
            format!("not a real-estate unit number: {e}"),
        );
    }
    if !(1..=MAX_LOAN_FEN).contains(&p.amount_fen) {
        v.add(
            field("amount_fen"),
            format!("must be 1 to {MAX_LOAN_FEN} fen, not {}", p.amount_fen),
        );
    }
}

/// The `from_region_code` and `to_region_code` named by `field`: each a division code,
/// and not the same.
fn check_regions(v: &mut Violations, field: impl Fn(&str) -> String, from: &str, to: &str) {
    check_region(v, &field("from_region_code"), from);
    check_region(v, &field("to_region_code"), to);
    if from == to {
        v.add(field("to_region_code"), "must differ from from_region_code");
    }
}

/// Adds a violation of `field` unless `id` is a resident ID number.
fn check_person(v: &mut Violations, field: &str, id: &str) {
    if let Err(e) = ResidentId::parse(id) {
        v.add(field, format!("not a resident ID number: {e}"));
    }
}

/// Adds a violation of `field` unless `code` is an administrative division code.
fn check_region(v: &mut Violations, field: &str, code: &str) {
    if let Err(e) = DivisionCode::parse(code) {
        v.add(field, format!("not an administrative division code: {e}"));
    }
}
