//! What the access policy lets a caller do with a case, and see of it: a case is acted on
//! as a lookup is made, by a grant of the case's purpose that covers what the case's plan
//! reads; a self-only grant only for a citizen who is a party to the case. What the grant
//! shows of the parameters is masked as a lookup's answer is.

use super::listing::parties;
use crate::identity::Caller;
use crate::proto::{self, Case, CaseParams, case_params};
use crate::resolver::policy::{Access, Decision, MaskKind, Policy, Purpose, Section};

/// The policy's decision on `caller` acting on a case of `purpose` about `params`, as
/// for a lookup: a grant of the purpose, which, if self-only, is used by a citizen
/// who is a party to the case, and which includes every section the case's plan
/// reads. The grant's access, or why not.
pub(super) fn decide(
    policy: &Policy,
    caller: &Caller,
    purpose: &str,
    params: Option<&CaseParams>,
) -> Result<Access, String> {
    let requester = &caller.requester;
    let denied = || format!("the access policy grants {requester} no purpose {purpose:?}");
    let slug = Purpose::parse(purpose).map_err(|_| denied())?;
    let Decision::Allowed(access) = policy.decide(requester, &slug) else {
        return Err(denied());
    };
    let grant = || {
        format!(
            "the grant for {requester} with purpose {purpose} (policy line {})",
            access.grant_line()
        )
    };
    if access.self_only() {
        let party = caller.on_behalf_of.as_ref().is_some_and(|citizen| {
            parties(params)
                .iter()
                .any(|p| p.eq_ignore_ascii_case(citizen.as_str()))
        });
        if !party {
            return Err(format!(
                "{} is self-only: the citizen it acts for must be a party to the case",
                grant()
            ));
        }
    }
    if let Some(missing) = sections_read(params)
        .iter()
        .find(|s| !access.allows_section(**s))
    {
        return Err(format!(
            "{} does not include section {missing}, which the case's plan reads",
            grant()
        ));
    }
    Ok(access)
}

/// `r` narrowed to the only person whose cases `caller` may see, when every grant
/// of its requester is self-only (a citizen portal): those are the cases naming the
/// citizen it acts for. `None` when it may see none (no grant, no citizen, or
/// another person asked for).
pub(super) fn scoped(
    policy: &Policy,
    caller: &Caller,
    mut r: proto::ListCasesRequest,
) -> Option<proto::ListCasesRequest> {
    let mut granted =
        policy
            .grants()
            .iter()
            .filter_map(|g| match policy.decide(&caller.requester, &g.purpose) {
                Decision::Allowed(access) => Some(access.self_only()),
                Decision::Denied(_) => None,
            });
    let first = granted.next()?;
    if !(first && granted.all(|self_only| self_only)) {
        return Some(r);
    }
    let citizen = caller.on_behalf_of.as_ref()?.as_str();
    if r.person_id.is_empty() {
        r.person_id = citizen.to_owned();
    }
    r.person_id.eq_ignore_ascii_case(citizen).then_some(r)
}

/// The profile sections a case's plan reads the records of: derived from what the plan
/// reads, so a grant keeps up with the plan.
fn sections_read(params: Option<&CaseParams>) -> Vec<Section> {
    let mut sections: Vec<Section> = params
        .map(super::plan::reads)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(_, types)| types)
        .map(Section::of_record)
        .collect();
    // An objection reads its record's type, whatever subjects it is filed under (known
    // only once the record is read, after the decision).
    if let Some(case_params::Kind::DataObjection(o)) = params.and_then(|p| p.kind.as_ref())
        && let Ok(key) = crate::records::RecordKey::parse(&o.record_key)
    {
        sections.push(Section::of_record(key.record_type()));
    }
    sections.sort_by_key(|s| s.name());
    sections.dedup();
    sections
}

/// `case` as the grant shows it: the resident IDs it names masked unless unmasked.
pub(super) fn masked(mut case: Case, access: &Access) -> Case {
    if let Some(params) = &mut case.params {
        mask_params(params, access);
    }
    case
}

/// Masks the resident IDs of `params` as `access` shows them.
pub(super) fn mask_params(params: &mut CaseParams, access: &Access) {
    let show = |id: &mut String| *id = access.show(MaskKind::ResidentId, id).into_owned();
    match &mut params.kind {
        Some(case_params::Kind::PropertyTransfer(p)) => {
            p.seller_ids.iter_mut().for_each(show);
            p.buyer_ids.iter_mut().for_each(show);
        }
        Some(case_params::Kind::SocialSecurityTransfer(p)) => show(&mut p.person_id),
        Some(case_params::Kind::ProvidentFundTransfer(p)) => show(&mut p.person_id),
        Some(case_params::Kind::HouseholdMove(p)) => show(&mut p.person_id),
        Some(case_params::Kind::ProvidentFundLoan(p)) => show(&mut p.person_id),
        Some(case_params::Kind::DataObjection(p)) => {
            show(&mut p.person_id);
            // Subjects name residents too (`p:<id>`).
            for subject in &mut p.subjects {
                if let Some(id) = subject.strip_prefix("p:") {
                    *subject = format!("p:{}", access.show(MaskKind::ResidentId, id));
                }
            }
        }
        None => {}
    }
}
