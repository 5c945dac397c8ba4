//! Raw reads (`GetRecord`, `ListSubjectRecords`): an agency's record system reads its own
//! agency's records as published, unmasked, e.g. to reconcile them with its database.
//!
//! Only the policy's integrations may, and only their own agency's records: a window or
//! the citizen portal reads through the policy (profiles and checks), never raw. Every
//! raw read, allowed or refused, is an entry of the audit trail naming the persons and
//! units the records are about, so the citizen finds it in `ListDataAccesses` as they find
//! lookups.

use tokio::time::Instant;

use super::{Lookup, Queries, QueryError, audited, parse_subject};
use crate::domain::{ResidentId, UnitNumber};
use crate::identity::Caller;
use crate::proto::{self, RecordEvent, SubjectKind};
use crate::records::{RecordKey, Violations, agency_slug};
use crate::resolver::policy::Purpose;
use crate::resolver::store::{StoredRecord, by_deadline};

/// The purpose raw reads are audited under: the agency's own records.
pub const RAW_READ_PURPOSE: &str = "own-records";

impl Queries {
    /// `GetRecord`: the latest version of one of the caller's agency's records.
    pub async fn record(
        &self,
        caller: &Caller,
        r: proto::GetRecordRequest,
        deadline: Instant,
    ) -> Result<proto::GetRecordResponse, QueryError> {
        let mut v = Violations::default();
        let key = RecordKey::parse(&r.record_key)
            .map_err(|e| v.add("record_key", e))
            .ok();
        self.positions
            .check(&r.min_positions, "min_positions", &mut v);
        let Some(key) = key.filter(|_| v.is_empty()) else {
            return Err(QueryError::Invalid(v));
        };
        let mut lookup = raw_lookup(caller, "GetRecord");
        self.admit_raw(&lookup, Some(key.record_type().agency()), deadline)
            .await?;
        self.wait_for(&r.min_positions, deadline).await?;
        let stored = by_deadline(deadline, self.store.get(&key)).await?;
        let record = stored.as_ref().map(decode).transpose()?;
        if let Some(record) = &record {
            subjects_of(&mut lookup, std::slice::from_ref(record));
        }
        // A read of nothing is audited too: it says the system asked.
        self.audit_raw(&lookup, deadline).await?;
        match record {
            Some(record) => Ok(proto::GetRecordResponse {
                record: Some(record),
            }),
            None => Err(QueryError::NotFound(
                "no such record (never published, or deleted)",
            )),
        }
    }

    /// `ListSubjectRecords`: the latest version of each of the caller's agency's records
    /// about one subject.
    pub async fn subject_records(
        &self,
        caller: &Caller,
        r: proto::ListSubjectRecordsRequest,
        deadline: Instant,
    ) -> Result<proto::ListSubjectRecordsResponse, QueryError> {
        let (key, mut v) = match parse_subject(r.subject.as_ref()) {
            Ok(key) => (Some(key), Violations::default()),
            Err(v) => (None, v),
        };
        self.positions
            .check(&r.min_positions, "min_positions", &mut v);
        let Some(key) = key.filter(|_| v.is_empty()) else {
            return Err(QueryError::Invalid(v));
        };
        let mut lookup = raw_lookup(caller, "ListSubjectRecords");
        named_subject(&mut lookup, r.subject.as_ref());
        self.admit_raw(&lookup, None, deadline).await?;
        self.wait_for(&r.min_positions, deadline).await?;
        let stored = by_deadline(deadline, self.store.subject_records(&key)).await?;
        let own = caller.requester.agency;
        let records = stored
            .iter()
            .filter(|s| s.key.record_type().agency() == own)
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        subjects_of(&mut lookup, &records);
        self.audit_raw(&lookup, deadline).await?;
        Ok(proto::ListSubjectRecordsResponse { records })
    }

    /// Lets a raw read through if its caller is an integration and, for a record of
    /// `owner`, of the owner's agency; otherwise audits the refusal and returns it.
    async fn admit_raw(
        &self,
        lookup: &Lookup<'_>,
        owner: Option<crate::proto::Agency>,
        deadline: Instant,
    ) -> Result<(), QueryError> {
        let requester = &lookup.caller.requester;
        let refusal = match (self.policy.integration(requester), owner) {
            (Err(not), _) => not.to_string(),
            (Ok(()), Some(owner)) if owner != requester.agency => format!(
                "raw records are their agency's own: {requester} reads {}'s records; {}'s are \
                 read through the policy (GetPersonProfile and the checks)",
                agency_slug(requester.agency),
                agency_slug(owner)
            ),
            (Ok(()), _) => return Ok(()),
        };
        Err(self.deny(lookup, refusal, deadline).await)
    }

    /// Audits an allowed raw read; the records may leave once this returned `Ok`.
    async fn audit_raw(&self, lookup: &Lookup<'_>, deadline: Instant) -> Result<(), QueryError> {
        let entry = audited(lookup).allowed();
        Ok(self.audit.record(entry, deadline).await?)
    }
}

/// The audit's view of a raw read by `caller`, before the subjects are known.
fn raw_lookup<'a>(caller: &'a Caller, method: &'static str) -> Lookup<'a> {
    Lookup {
        caller,
        method,
        purpose: Purpose::parse(RAW_READ_PURPOSE).expect("a valid purpose"),
        case_id: String::new(),
        persons: Vec::new(),
        units: Vec::new(),
    }
}

/// Adds the subject a `ListSubjectRecords` request names (already validated).
fn named_subject(lookup: &mut Lookup<'_>, subject: Option<&proto::Subject>) {
    if let Some(subject) = subject {
        add_subject(lookup, subject);
    }
}

/// Adds the persons and units `records` are about, each once.
fn subjects_of(lookup: &mut Lookup<'_>, records: &[RecordEvent]) {
    for subject in records.iter().flat_map(|r| &r.subjects) {
        add_subject(lookup, subject);
    }
}

fn add_subject(lookup: &mut Lookup<'_>, subject: &proto::Subject) {
    match SubjectKind::try_from(subject.kind) {
        Ok(SubjectKind::Person) => {
            if let Ok(person) = ResidentId::parse(&subject.id)
                && !lookup.persons.contains(&person)
            {
                lookup.persons.push(person);
            }
        }
        Ok(SubjectKind::PropertyUnit) => {
            if let Ok(unit) = UnitNumber::parse(&subject.id) {
                let unit = unit.as_str().to_owned();
                if !lookup.units.contains(&unit) {
                    lookup.units.push(unit);
                }
            }
        }
        _ => {}
    }
}

fn decode(stored: &StoredRecord) -> Result<RecordEvent, QueryError> {
    // The key names a record id: not for the log line `Corrupt` becomes.
    stored
        .decode()
        .map_err(|e| QueryError::Corrupt(format!("a stored record does not decode: {e}")))
}
