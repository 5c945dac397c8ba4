//! The `Objections` gRPC service: a citizen (through a self-only requester) or a window
//! files an objection against the current version of a record; it becomes a case of
//! kind `data-objection`, whose one step is the owning agency's task. The request is
//! checked field by field, the policy decides the purpose `data-objection` (a self-only
//! grant only for the citizen the record is about), the decision is audited, and the
//! record is read as stored once the caller's publishes are materialized: an unknown
//! record or another version is refused naming the field.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::audit::Action;
use super::calls::{Calls, Shared};
use super::error::{CaseError, fields_valid};
use super::grants::{self, masked};
use super::service::case_id_of;
use crate::domain::ResidentId;
use crate::identity::Caller;
use crate::proto::{self, CaseParams, CaseState, case_command, case_params};
use crate::records::{RecordKey, RecordType, Violations, subjects_of};
use crate::resolver::Positions;
use crate::resolver::disputes::OpenDisputes as _;
use crate::resolver::store::{Store, by_deadline};

/// The purpose an objection is filed and read under.
pub const PURPOSE: &str = "data-objection";
/// The most fields one objection may dispute.
const MAX_FIELDS: usize = 16;
/// The longest note, in characters.
const MAX_NOTE: usize = 500;
/// How often a filing looks whether its objection is indexed yet.
const INDEX_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The `Objections` service.
pub struct ObjectionsService {
    calls: Calls,
    positions: Positions,
    /// The record store: the disputed record is read from it.
    records: Store,
}

impl ObjectionsService {
    /// The service over what it shares with `Cases` and `Tasks`, reading `records`.
    pub fn new(shared: Shared, positions: Positions, records: Store) -> ObjectionsService {
        ObjectionsService {
            calls: Calls::new(shared, "case call"),
            positions,
            records,
        }
    }

    async fn file(
        &self,
        caller: Caller,
        r: proto::FileObjectionRequest,
        until: Instant,
    ) -> Result<proto::FileObjectionResponse, CaseError> {
        let agency = caller.requester.agency;
        let mut violations = validate_file_objection(&r);
        self.positions
            .check(&r.min_positions, "min_positions", &mut violations);
        fields_valid(violations, agency)?;
        let key = RecordKey::parse(&r.record_key).map_err(|e| invalid("record_key", e, agency))?;
        let person = ResidentId::parse(&r.person_id)
            .map_err(|e| invalid("person_id", e.to_string(), agency))?;
        let mut params = proto::DataObjectionParams {
            record_key: key.as_str().to_owned(),
            version: r.version,
            disputed_fields: r.disputed_fields.clone(),
            note: r.note.clone(),
            person_id: person.as_str().to_owned(),
            subjects: Vec::new(),
        };
        let case_id = case_id_of(&caller.requester, &r.request_id);
        let wrapped = |p: &proto::DataObjectionParams| CaseParams {
            kind: Some(case_params::Kind::DataObjection(p.clone())),
        };
        let decided = wrapped(&params);
        let action = Action {
            requester: &caller.requester,
            on_behalf_of: caller.on_behalf_of.as_ref(),
            method: "FileObjection",
            case_id: &case_id,
            purpose: PURPOSE,
            params: Some(&decided),
        };
        let decision = grants::decide(&self.calls.policy, &caller, PURPOSE, Some(&decided));
        let access = self.calls.audited(&action, decision, until).await?;
        if self.calls.load(&case_id).await?.is_none() {
            self.positions
                .wait_for_call(&r.min_positions, until)
                .await?;
            params.subjects = self
                .disputed(&key, r.version, &person, agency, until)
                .await?;
            let open = proto::OpenCaseCommand {
                kind: proto::CaseKind::DataObjection as i32,
                params: Some(wrapped(&params)),
                opened_by: caller.requester.to_string(),
                purpose: PURPOSE.to_owned(),
                request_id: r.request_id,
            };
            self.calls
                .send(&case_id, case_command::Body::Open(open), until)
                .await?;
        }
        let case = self.calls.applied(&case_id, until, Some).await?;
        self.indexed(&case, until).await?;
        Ok(proto::FileObjectionResponse {
            case: Some(masked(case, &access)),
        })
    }

    /// Once the engine indexed the objection of `case` as open (or it closed): a lookup
    /// made after the answer sees the record disputed (read-your-writes).
    async fn indexed(&self, case: &proto::Case, until: Instant) -> Result<(), CaseError> {
        let Some(case_params::Kind::DataObjection(o)) =
            case.params.as_ref().and_then(|p| p.kind.as_ref())
        else {
            return Ok(());
        };
        let keys = [o.record_key.clone()];
        loop {
            let open = self
                .calls
                .cases
                .of_records(&keys)
                .await
                .map_err(|e| unavailable(format!("open objections: {e}")))?;
            if open.iter().any(|d| d.objection_id == case.case_id) {
                return Ok(());
            }
            let now = self.calls.load(&case.case_id).await?;
            if now.is_none_or(|c| matches!(c.state(), CaseState::Completed | CaseState::Cancelled))
            {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(CaseError::NotApplied);
            }
            tokio::time::sleep(INDEX_POLL).await;
        }
    }

    /// The subjects of record `key`, once it is seen to be live at `version` and about
    /// `person`; otherwise the field that is wrong.
    async fn disputed(
        &self,
        key: &RecordKey,
        version: u64,
        person: &ResidentId,
        agency: proto::Agency,
        until: Instant,
    ) -> Result<Vec<String>, CaseError> {
        let stored = by_deadline(until, self.records.get(key))
            .await
            .map_err(unavailable)?
            .ok_or_else(|| invalid("record_key", "no live record has this key", agency))?;
        if stored.version != version {
            return Err(invalid(
                "version",
                format!(
                    "the record is at version {}: an objection is against the current version",
                    stored.version
                ),
                agency,
            ));
        }
        let event = stored.decode().map_err(|e| unavailable(e.to_string()))?;
        let subjects: Vec<String> = event
            .payload
            .as_ref()
            .map(subjects_of)
            .unwrap_or_default()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let about = format!("p:{}", person.as_str());
        if !subjects.contains(&about) {
            return Err(invalid(
                "person_id",
                "the record is not about this person",
                agency,
            ));
        }
        Ok(subjects)
    }
}

#[tonic::async_trait]
impl proto::objections_server::Objections for ObjectionsService {
    #[tracing::instrument(skip_all, fields(rpc = "FileObjection"))]
    async fn file_objection(
        &self,
        request: Request<proto::FileObjectionRequest>,
    ) -> Result<Response<proto::FileObjectionResponse>, Status> {
        self.calls
            .answer(request, |caller, r, until| self.file(caller, r, until))
            .await
    }
}

fn unavailable(e: impl std::fmt::Display) -> CaseError {
    CaseError::Answered(Status::unavailable(format!(
        "the record store cannot answer: {e}; retry later"
    )))
}

fn invalid(field: &str, why: impl Into<String>, agency: proto::Agency) -> CaseError {
    let mut violations = Violations::default();
    violations.add(field, why);
    CaseError::Invalid { violations, agency }
}

/// Checks a `FileObjection` request field by field: every broken rule, by field. The
/// record itself (that it exists at this version) is checked once it is read.
pub fn validate_file_objection(r: &proto::FileObjectionRequest) -> Violations {
    let mut v = Violations::default();
    if !super::validate::valid_token(&r.request_id) {
        v.add(
            "request_id",
            "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -",
        );
    }
    let key = RecordKey::parse(&r.record_key)
        .map_err(|e| v.add("record_key", format!("not a record key: {e}")))
        .ok();
    if r.version == 0 {
        v.add("version", "must be the record's current version (from 1)");
    }
    if r.disputed_fields.is_empty() {
        v.add("disputed_fields", "must name at least one disputed field");
    } else if r.disputed_fields.len() > MAX_FIELDS {
        v.add_too_long("disputed_fields", format!("at most {MAX_FIELDS} fields"));
    } else if let Some(message) = key.as_ref().and_then(|k| payload_message(k.record_type())) {
        for (i, field) in r.disputed_fields.iter().enumerate() {
            if message.get_field_by_name(field).is_none() {
                v.add(
                    format!("disputed_fields[{i}]"),
                    format!("{} records have no field {field:?}", message.name()),
                );
            } else if r.disputed_fields[..i].contains(field) {
                v.add(format!("disputed_fields[{i}]"), "named twice");
            }
        }
    }
    let chars = r.note.chars().count();
    if chars == 0 {
        v.add("note", "must say what is wrong (1 to 500 characters)");
    } else if chars > MAX_NOTE {
        v.add_too_long("note", format!("at most {MAX_NOTE} characters"));
    }
    if let Err(e) = ResidentId::parse(&r.person_id) {
        v.add("person_id", format!("not a resident ID: {e}"));
    }
    v
}

/// The payload message of records of `record_type`.
fn payload_message(record_type: RecordType) -> Option<MessageDescriptor> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    let pool = POOL
        .get_or_init(|| DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET).ok())
        .as_ref()?;
    let name = match record_type {
        RecordType::Enrollment => "Enrollment",
        RecordType::ContributionPeriod => "ContributionPeriod",
        RecordType::TransferOutCertificate => "TransferOutCertificate",
        RecordType::Identity => "Identity",
        RecordType::HouseholdRegistration => "HouseholdRegistration",
        RecordType::PropertyTitle => "PropertyTitle",
        RecordType::SaleContract => "SaleContract",
        RecordType::ProvidentFundAccount => "ProvidentFundAccount",
        RecordType::ProvidentFundLoan => "ProvidentFundLoan",
    };
    pool.get_message_by_name(&format!("govlink.v1.{name}"))
}

#[cfg(test)]
#[path = "objections_tests.rs"]
mod tests;
