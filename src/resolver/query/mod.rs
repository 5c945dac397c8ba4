//! The typed query layer behind the resolver's cross-agency lookups. Every lookup goes
//! through the same steps:
//!
//! wire parsing → requester + purpose → policy decision → (read-your-writes wait) →
//! store read → assembly → masking → audit → answer.
//!
//! A denied lookup is audited and refused; an allowed one is audited (broker-acknowledged)
//! before its answer leaves, and fails `UNAVAILABLE` if the audit cannot be written. Every
//! failure is a [`QueryError`], which becomes the caller's answer, counted, in one place
//! ([`QueryError::into_status`]).

mod accesses;
mod checks;
mod error;
mod loan;
mod person_token;
mod profile;
mod raw;
mod watch;

pub use accesses::{MAX_ACCESSES, MAX_PAGE_TOKEN_CHARS, page_token, parse_data_accesses};
pub use checks::{parse_property_transfer, parse_social_security_transfer};
pub use error::QueryError;
pub use loan::{MAX_LOAN_AMOUNT_FEN, parse_provident_fund_loan};
pub use raw::RAW_READ_PURPOSE;
pub use watch::{MAX_CURSOR_CHARS, Watch, WatchRequest, notice_cursor, parse_watch_data_accesses};

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::checks::{LoanRule, PurchaseRule};
use super::disputes::{Dispute, OpenDisputes, disputed};
use super::policy::{Access, Decision, Policy, Purpose, Section};
use super::positions::{Positions, Unmet};
use super::store::{Store, StoredRecord, by_deadline};
use crate::audit::AuditLog;
use crate::domain::{ResidentId, UnitNumber};
use crate::identity::{Caller, ON_BEHALF_OF_HEADER};
use crate::proto::{self, Position};
use crate::records::{SubjectKey, Violations, is_valid_record_id};
use crate::resolver::access::AccessIndex;

/// What the lookups share: the store, the policy, the audit trail.
#[derive(Clone)]
pub struct Queries {
    store: Store,
    positions: Positions,
    policy: Arc<Policy>,
    audit: AuditLog,
    accesses: AccessIndex,
    rules: Arc<[PurchaseRule]>,
    loan_rule: Arc<LoanRule>,
    access_retention: Duration,
    /// The open objections; none without a case store.
    disputes: Option<Arc<dyn OpenDisputes>>,
}

/// The parts of a lookup the audit records, gathered as the request is parsed.
struct Lookup<'a> {
    caller: &'a Caller,
    method: &'static str,
    purpose: Purpose,
    case_id: String,
    persons: Vec<ResidentId>,
    units: Vec<String>,
}

impl<'a> Lookup<'a> {
    /// `method` of `caller` about one `person` for `purpose`, within `case_id` (empty for
    /// none).
    fn of_person(
        caller: &'a Caller,
        method: &'static str,
        purpose: Purpose,
        case_id: String,
        person: &ResidentId,
    ) -> Lookup<'a> {
        Lookup {
            caller,
            method,
            purpose,
            case_id,
            persons: vec![person.clone()],
            units: Vec::new(),
        }
    }
}

impl Queries {
    /// The lookups over `store`, under `policy`, audited to `audit`.
    pub fn new(
        store: Store,
        positions: Positions,
        policy: Arc<Policy>,
        audit: AuditLog,
        accesses: AccessIndex,
        rules: Vec<PurchaseRule>,
        access_retention: Duration,
    ) -> Queries {
        Queries {
            store,
            positions,
            policy,
            audit,
            accesses,
            rules: rules.into(),
            loan_rule: Arc::new(LoanRule::default()),
            access_retention,
            disputes: None,
        }
    }

    /// These lookups with `rule` as the provident fund's loan rule instead of the default.
    pub fn with_loan_rule(mut self, rule: LoanRule) -> Queries {
        self.loan_rule = Arc::new(rule);
        self
    }

    /// The lookups, saying which records are disputed by the open objections of
    /// `disputes`.
    #[must_use]
    pub fn with_disputes(mut self, disputes: Arc<dyn OpenDisputes>) -> Queries {
        self.disputes = Some(disputes);
        self
    }

    /// The disputes that hold for `read` (record key → version read).
    async fn disputed(
        &self,
        read: &std::collections::BTreeMap<String, u64>,
        deadline: Instant,
    ) -> Result<std::collections::BTreeMap<String, Dispute>, QueryError> {
        tokio::time::timeout_at(deadline, disputed(self.disputes.as_ref(), read))
            .await
            .unwrap_or_else(|_| Err("no answer by the deadline".into()))
            .map_err(QueryError::Disputes)
    }

    /// `purpose` as a metric label: itself when the policy grants it to anyone, else
    /// `other`.
    pub fn purpose_label(&self, purpose: &str) -> String {
        self.policy.purpose_label(purpose)
    }

    /// `GetPersonProfile`.
    pub async fn person_profile(
        &self,
        caller: &Caller,
        r: proto::GetPersonProfileRequest,
        deadline: Instant,
    ) -> Result<proto::GetPersonProfileResponse, QueryError> {
        let (person, purpose) = parse_person_profile(&r, &self.positions)?;
        let lookup = Lookup::of_person(caller, "GetPersonProfile", purpose, r.case_id, &person);
        let access = self.decide(&lookup, &[], deadline).await?;
        self.wait_for(&r.min_positions, deadline).await?;
        // The entry names the sections the answer carries (present or empty), which the
        // decision already fixes: it is written while the store is read, not after.
        let read = profile::profile_read(&person, &access);
        let sections: Vec<Section> = access.sections().collect();
        let withheld: Vec<Section> = access.withheld().collect();
        // The open objections against the records shown are read right after them, still
        // while the entry is written.
        let answer = async {
            let reading = self.store.read_subjects(std::slice::from_ref(&read));
            let data = by_deadline(deadline, reading).await?.pop();
            let mut response = profile::assemble(&person, &access, data.unwrap_or_default())?;
            let held = self
                .disputed(&profile::versions_shown(&response), deadline)
                .await?;
            profile::mark_disputed(&mut response, &held);
            Ok(response)
        };
        let (answer, audited) = tokio::join!(
            answer,
            self.audit_allowed(&lookup, &access, &sections, &withheld, deadline),
        );
        audited?;
        answer
    }

    /// The policy's decision on `lookup`; a denial (no grant, a self-only grant used for
    /// someone else, or a grant without a section in `needs`) is audited and returned as
    /// [`QueryError::Denied`].
    async fn decide(
        &self,
        lookup: &Lookup<'_>,
        needs: &[Section],
        deadline: Instant,
    ) -> Result<Access, QueryError> {
        let requester = &lookup.caller.requester;
        let access = match self.policy.decide(requester, &lookup.purpose) {
            Decision::Allowed(access) => access,
            Decision::Denied(denial) => {
                return Err(self.deny(lookup, denial.to_string(), deadline).await);
            }
        };
        let grant = || {
            format!(
                "the grant for {requester} with purpose {} (policy line {})",
                lookup.purpose,
                access.grant_line()
            )
        };
        if access.self_only() {
            let citizen = lookup.caller.on_behalf_of.as_ref();
            let is_self = |p: &ResidentId| citizen.is_some_and(|c| c == p);
            // A check about several parties is the citizen's when the citizen is one of them.
            if !lookup.persons.iter().any(is_self) {
                let reason = match citizen {
                    None => format!(
                        "{} is self-only, and the call names no citizen ({ON_BEHALF_OF_HEADER})",
                        grant()
                    ),
                    Some(_) => {
                        format!("{} is self-only: it covers the citizen's own data", grant())
                    }
                };
                return Err(self.deny(lookup, reason, deadline).await);
            }
        }
        if let Some(missing) = needs.iter().find(|s| !access.allows_section(**s)) {
            let reason = format!(
                "{} does not include section {missing}, which {} reads",
                grant(),
                lookup.method
            );
            return Err(self.deny(lookup, reason, deadline).await);
        }
        Ok(access)
    }

    /// Audits a denial and returns the error to answer with; if the audit itself fails,
    /// that failure is the answer (a denial is never left unaudited either).
    async fn deny(&self, lookup: &Lookup<'_>, reason: String, deadline: Instant) -> QueryError {
        let entry = audited(lookup).denied(reason.as_str());
        match self.audit.record(entry, deadline).await {
            Ok(()) => QueryError::Denied(reason),
            Err(e) => QueryError::Audit(e),
        }
    }

    /// Audits an allowed lookup; the answer may leave once this returned `Ok`. Callers run
    /// it alongside their store read: the entry depends only on the decision, and an
    /// entry for a lookup whose read then failed over-reports an access, never hides one.
    async fn audit_allowed(
        &self,
        lookup: &Lookup<'_>,
        access: &Access,
        sections: &[Section],
        withheld: &[Section],
        deadline: Instant,
    ) -> Result<(), QueryError> {
        let mut entry = audited(lookup).allowed();
        entry.sections = sections.iter().map(|s| s.name().to_owned()).collect();
        entry.withheld = withheld.iter().map(|s| s.name().to_owned()).collect();
        entry.grant_line = u32::try_from(access.grant_line()).unwrap_or(u32::MAX);
        Ok(self.audit.record(entry, deadline).await?)
    }

    /// Waits until every position is materialized, or the deadline passes.
    async fn wait_for(&self, positions: &[Position], deadline: Instant) -> Result<(), QueryError> {
        self.positions
            .wait_for(positions, deadline)
            .await
            .map_err(|unmet| match unmet {
                Unmet::Late(position) => QueryError::NotMaterialized(position),
                Unmet::Invalid(violations) => QueryError::Invalid(violations),
            })
    }
}

/// Checks a `GetPersonProfile` request field by field: the person and the purpose, or
/// every broken rule by field.
pub fn parse_person_profile(
    r: &proto::GetPersonProfileRequest,
    positions: &Positions,
) -> Result<(ResidentId, Purpose), Violations> {
    let mut v = Violations::default();
    let person = parse_person(&r.person_id, "person_id", &mut v);
    let purpose = parse_purpose(&r.purpose, &mut v);
    check_case_id(&r.case_id, &mut v);
    positions.check(&r.min_positions, "min_positions", &mut v);
    match (person, purpose) {
        (Some(person), Some(purpose)) if v.is_empty() => Ok((person, purpose)),
        _ => Err(v),
    }
}

/// Checks the `subject` of a `ListSubjectRecords` request: its store key, or the broken
/// rule by field.
pub fn parse_subject(subject: Option<&proto::Subject>) -> Result<SubjectKey, Violations> {
    let mut v = Violations::default();
    let key = match subject {
        None => {
            v.add("subject", "is required");
            None
        }
        Some(subject) => match proto::SubjectKind::try_from(subject.kind) {
            Ok(proto::SubjectKind::Person) => {
                parse_person(&subject.id, "subject.id", &mut v).map(|id| SubjectKey::person(&id))
            }
            Ok(proto::SubjectKind::PropertyUnit) => UnitNumber::parse(&subject.id)
                .map(|unit| SubjectKey::unit(&unit))
                .map_err(|e| {
                    v.add("subject.id", format!("not a real-estate unit number: {e}"));
                })
                .ok(),
            _ => {
                v.add(
                    "subject.kind",
                    "must be SUBJECT_KIND_PERSON or SUBJECT_KIND_PROPERTY_UNIT",
                );
                None
            }
        },
    };
    key.filter(|_| v.is_empty()).ok_or(v)
}

/// The access `lookup` is, as the audit trail records it.
fn audited<'a>(lookup: &'a Lookup<'_>) -> crate::audit::Access<'a> {
    crate::audit::Access {
        requester: &lookup.caller.requester,
        on_behalf_of: lookup.caller.on_behalf_of.as_ref(),
        method: lookup.method,
        purpose: lookup.purpose.as_str(),
        case_id: &lookup.case_id,
        persons: lookup
            .persons
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        units: lookup.units.clone(),
    }
}

/// A stored record decoded; one that does not is [`QueryError::Corrupt`] naming its key.
fn decoded(stored: &StoredRecord) -> Result<proto::RecordEvent, QueryError> {
    stored
        .decode()
        .map_err(|e| QueryError::Corrupt(format!("stored record {}: {e}", stored.key)))
}

/// A resident ID from the wire, or a violation on `field`.
fn parse_person(id: &str, field: &str, v: &mut Violations) -> Option<ResidentId> {
    ResidentId::parse(id)
        .map_err(|e| v.add(field, format!("not a resident ID number: {e}")))
        .ok()
}

fn parse_purpose(purpose: &str, v: &mut Violations) -> Option<Purpose> {
    Purpose::parse(purpose)
        .map_err(|e| v.add("purpose", e.to_string()))
        .ok()
}

/// A case id is optional; when given it has the shape of a record id.
fn check_case_id(case_id: &str, v: &mut Violations) {
    if !case_id.is_empty() && !is_valid_record_id(case_id) {
        v.add(
            "case_id",
            "must be 1 to 64 characters of A-Z a-z 0-9 . _ : - (or empty)",
        );
    }
}
