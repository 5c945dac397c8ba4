//! Every case action is in the same audit trail as lookups: an entry names the requester,
//! the method, the case and its purpose, and the persons and units the case is about,
//! allowed or denied. It is written before the action is taken (or the refusal sent), so
//! nothing is done that the trail does not show.

use tokio::time::Instant;

use super::error::CaseError;
use crate::audit::{Access, AuditLog};
use crate::domain::ResidentId;
use crate::identity::Requester;
use crate::proto::{Case, CaseParams, case_params};

/// What an entry says of one action.
pub(crate) struct Action<'a> {
    /// Who acts.
    pub requester: &'a Requester,
    /// The citizen it acts for, when it said so.
    pub on_behalf_of: Option<&'a ResidentId>,
    /// The gRPC method, e.g. "OpenCase" or "Tasks.Complete".
    pub method: &'static str,
    /// The case acted on.
    pub case_id: &'a str,
    /// The case's purpose.
    pub purpose: &'a str,
    /// What the case is about.
    pub params: Option<&'a CaseParams>,
}

impl<'a> Action<'a> {
    /// `requester`'s (for `on_behalf_of`) call of `method` on `case`.
    pub(crate) fn on_case(
        requester: &'a Requester,
        on_behalf_of: Option<&'a ResidentId>,
        method: &'static str,
        case: &'a Case,
    ) -> Action<'a> {
        Action {
            requester,
            on_behalf_of,
            method,
            case_id: &case.case_id,
            purpose: &case.purpose,
            params: case.params.as_ref(),
        }
    }
}

/// Records `action`, allowed or (with the reason) denied; [`CaseError::NotAudited`] if
/// the trail cannot take it, and then the action must not happen.
pub(crate) async fn record(
    audit: &AuditLog,
    action: &Action<'_>,
    denied: Option<&str>,
    until: Instant,
) -> Result<(), CaseError> {
    let (persons, units) = subjects(action.params);
    let access = Access {
        requester: action.requester,
        on_behalf_of: action.on_behalf_of,
        method: action.method,
        purpose: action.purpose,
        case_id: action.case_id,
        persons,
        units,
    };
    let entry = match denied {
        Some(reason) => access.denied(reason),
        None => access.allowed(),
    };
    audit
        .record(entry, until)
        .await
        .map_err(|error| CaseError::NotAudited {
            method: action.method,
            error,
        })
}

/// The resident IDs and unit numbers a case is about.
fn subjects(params: Option<&CaseParams>) -> (Vec<String>, Vec<String>) {
    match params.and_then(|p| p.kind.as_ref()) {
        Some(case_params::Kind::PropertyTransfer(p)) => (
            p.seller_ids.iter().chain(&p.buyer_ids).cloned().collect(),
            vec![p.unit_number.clone()],
        ),
        Some(case_params::Kind::SocialSecurityTransfer(p)) => (vec![p.person_id.clone()], vec![]),
        Some(case_params::Kind::ProvidentFundTransfer(p)) => (vec![p.person_id.clone()], vec![]),
        Some(case_params::Kind::HouseholdMove(p)) => (vec![p.person_id.clone()], vec![]),
        Some(case_params::Kind::ProvidentFundLoan(p)) => {
            (vec![p.person_id.clone()], vec![p.unit_number.clone()])
        }
        Some(case_params::Kind::DataObjection(p)) => (
            vec![p.person_id.clone()],
            p.subjects
                .iter()
                .filter_map(|s| s.strip_prefix("u:").map(str::to_owned))
                .collect(),
        ),
        None => (vec![], vec![]),
    }
}
