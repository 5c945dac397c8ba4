//! The `Cases` gRPC service: validates a request field by field, checks that the access
//! policy grants the requester the case's purpose, puts the command on the command topic
//! and answers once the engine applied it (the caller sees its own writes).

use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::audit::Action;
use super::calls::Calls;
pub use super::calls::Shared;
use super::error::{CaseError, fields_valid};
use super::grants::{self, masked};
use super::listing;
use super::polled::{Polled, Source};
use super::store::CaseStore;
use super::validate::normalised;
pub use super::validate::{
    validate_cancel_case, validate_case_id, validate_list_cases, validate_open_case,
};
use crate::identity::{Caller, Requester};
use crate::proto::{self, Case, CaseState, case_command};
use crate::resolver::Positions;
use crate::resolver::policy::Access;

/// The `Cases` service.
pub struct CasesService {
    calls: Calls,
    /// How far the record store has materialized: an opening waits for the caller's
    /// publishes before the engine plans on the records.
    positions: Positions,
    /// Seen once that the store lists every case by person, work list, kind and state
    /// (see [`CaseStore::lists_current`]); it stays so.
    lists_current: AtomicBool,
}

impl CasesService {
    /// The service over what it shares with `Tasks`, waiting for the caller's publishes
    /// to be materialized (`positions`) before an opening is planned.
    pub fn new(shared: Shared, positions: Positions) -> CasesService {
        CasesService {
            calls: Calls::new(shared, "case call"),
            positions,
            lists_current: AtomicBool::new(false),
        }
    }

    /// Decides `action` by the policy for `caller` and records it, allowed or denied,
    /// before anything else happens; what the grant shows, if allowed.
    async fn check(
        &self,
        caller: &Caller,
        action: &Action<'_>,
        until: Instant,
    ) -> Result<Access, CaseError> {
        let decision = grants::decide(&self.calls.policy, caller, action.purpose, action.params);
        self.calls.audited(action, decision, until).await
    }

    /// The case, if it exists and the policy lets `caller` act on it (see
    /// [`grants::decide`]), with what the grant shows; `method` is recorded in the audit
    /// trail either way.
    async fn readable(
        &self,
        caller: &Caller,
        method: &'static str,
        case_id: &str,
        until: Instant,
    ) -> Result<(Case, Access), CaseError> {
        fields_valid(validate_case_id(case_id), caller.requester.agency)?;
        let case = self
            .calls
            .load(case_id)
            .await?
            .ok_or(CaseError::NotFound("no such case"))?;
        let on_behalf_of = caller.on_behalf_of.as_ref();
        let action = Action::on_case(&caller.requester, on_behalf_of, method, &case);
        let access = self.check(caller, &action, until).await?;
        Ok((case, access))
    }

    /// Whether the store lists every case by person, work list, kind and state; read
    /// until it does, then remembered.
    async fn lists_current(&self) -> Result<bool, CaseError> {
        if self.lists_current.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let current = self
            .calls
            .cases
            .lists_current()
            .await
            .map_err(CaseError::Store)?;
        self.lists_current.store(current, Ordering::Relaxed);
        Ok(current)
    }

    /// The case once `done` holds.
    async fn wait(
        &self,
        case_id: &str,
        until: Instant,
        done: impl Fn(&Case) -> bool,
    ) -> Result<Case, CaseError> {
        self.calls
            .applied(case_id, until, |c| done(&c).then_some(c))
            .await
    }
}

type EventStream = Polled<proto::CaseEvent>;

/// A case's events after a sequence number, as they are committed.
struct History {
    cases: CaseStore,
    case_id: String,
    after: u64,
    /// What the watcher's grant shows of the parameters an opening carries.
    access: Access,
}

impl Source for History {
    type Item = proto::CaseEvent;

    async fn next(&mut self) -> Result<(Vec<proto::CaseEvent>, bool), CaseError> {
        // Whether it is closed first: the history read after it then holds every event
        // (read the other way round, a case closing in between would lose its last one).
        let stored = self
            .cases
            .load(&self.case_id)
            .await
            .map_err(CaseError::WatchedStore)?;
        let closed = stored.case.is_some_and(|c| is_closed(&c));
        let mut history = self
            .cases
            .history(&self.case_id, self.after)
            .await
            .map_err(CaseError::WatchedStore)?;
        if let Some(last) = history.last() {
            self.after = last.sequence;
        }
        for event in &mut history {
            if let Some(proto::case_event::Body::Opened(opened)) = &mut event.body
                && let Some(params) = &mut opened.params
            {
                grants::mask_params(params, &self.access);
            }
        }
        Ok((history, closed))
    }
}

#[tonic::async_trait]
impl proto::cases_server::Cases for CasesService {
    type WatchCaseStream = EventStream;

    #[tracing::instrument(skip_all, fields(rpc = "WatchCase"))]
    async fn watch_case(
        &self,
        request: Request<proto::WatchCaseRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.calls
            .answer(request, |caller, r, until| self.watch(caller, r, until))
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListCases"))]
    async fn list_cases(
        &self,
        request: Request<proto::ListCasesRequest>,
    ) -> Result<Response<proto::ListCasesResponse>, Status> {
        self.calls
            .answer(request, |caller, r, until| self.list(caller, r, until))
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "OpenCase"))]
    async fn open_case(
        &self,
        request: Request<proto::OpenCaseRequest>,
    ) -> Result<Response<proto::OpenCaseResponse>, Status> {
        self.calls
            .answer(request, |caller, r, until| self.open(caller, r, until))
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetCase"))]
    async fn get_case(
        &self,
        request: Request<proto::GetCaseRequest>,
    ) -> Result<Response<Case>, Status> {
        self.calls
            .answer(request, |caller, r, until| async move {
                let (case, access) = self.readable(&caller, "GetCase", &r.case_id, until).await?;
                Ok(masked(case, &access))
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "CancelCase"))]
    async fn cancel_case(
        &self,
        request: Request<proto::CancelCaseRequest>,
    ) -> Result<Response<Case>, Status> {
        self.calls
            .answer(request, |caller, r, until| self.cancel(caller, r, until))
            .await
    }
}

/// The calls, each once its caller is admitted.
impl CasesService {
    /// `WatchCase`: the case's events after the sequence asked for, as they come.
    async fn watch(
        &self,
        caller: Caller,
        r: proto::WatchCaseRequest,
        until: Instant,
    ) -> Result<EventStream, CaseError> {
        let slot = self.calls.slot(&caller.requester)?;
        let (case, access) = self
            .readable(&caller, "WatchCase", &r.case_id, until)
            .await?;
        let history = History {
            cases: self.calls.cases.clone(),
            case_id: case.case_id,
            after: r.after_sequence,
            access,
        };
        Ok(self.calls.stream(history, slot))
    }

    /// `ListCases`: the cases the caller may see that pass the filters, each audited.
    async fn list(
        &self,
        caller: Caller,
        r: proto::ListCasesRequest,
        until: Instant,
    ) -> Result<proto::ListCasesResponse, CaseError> {
        fields_valid(validate_list_cases(&r), caller.requester.agency)?;
        let limit = if r.limit == 0 { 100 } else { r.limit as usize };
        let Some(r) = grants::scoped(&self.calls.policy, &caller, r) else {
            return Ok(proto::ListCasesResponse::default());
        };
        let lists_current = self.lists_current().await?;
        let found = listing::list(&self.calls.cases, &r, limit, lists_current, |c| {
            grants::decide(&self.calls.policy, &caller, &c.purpose, c.params.as_ref()).ok()
        })
        .await
        .map_err(CaseError::Store)?;
        // Every case returned is in the trail before the answer leaves; the entries are
        // written together (the audit writer batches them), not one round trip each.
        let on_behalf_of = caller.on_behalf_of.as_ref();
        let entries = found.cases.iter().map(|(case, _)| {
            let action = Action::on_case(&caller.requester, on_behalf_of, "ListCases", case);
            async move { self.calls.audited(&action, Ok(()), until).await }
        });
        futures::future::try_join_all(entries).await?;
        let cases = found
            .cases
            .into_iter()
            .map(|(case, access)| masked(case, &access))
            .collect();
        let truncated = found.truncated;
        Ok(proto::ListCasesResponse { cases, truncated })
    }

    /// `OpenCase`: the case of the caller's request id, opened unless it was already.
    async fn open(
        &self,
        caller: Caller,
        r: proto::OpenCaseRequest,
        until: Instant,
    ) -> Result<proto::OpenCaseResponse, CaseError> {
        let mut violations = validate_open_case(&r);
        self.positions
            .check(&r.min_positions, "min_positions", &mut violations);
        fields_valid(violations, caller.requester.agency)?;
        let params = normalised(r.params.unwrap_or_default());
        let case_id = case_id_of(&caller.requester, &r.request_id);
        let action = Action {
            requester: &caller.requester,
            on_behalf_of: caller.on_behalf_of.as_ref(),
            method: "OpenCase",
            case_id: &case_id,
            purpose: &r.purpose,
            params: Some(&params),
        };
        let access = self.check(&caller, &action, until).await?;
        if self.calls.load(&case_id).await?.is_none() {
            // The engine plans on the records as stored when it applies the opening: not
            // before what the caller published is there.
            self.positions
                .wait_for_call(&r.min_positions, until)
                .await?;
            let open = proto::OpenCaseCommand {
                kind: super::plan::kind_of(&params).map_or(0, |k| k as i32),
                params: Some(params),
                opened_by: caller.requester.to_string(),
                purpose: r.purpose,
                request_id: r.request_id,
            };
            let open = case_command::Body::Open(open);
            self.calls.send(&case_id, open, until).await?;
        }
        let case = self.wait(&case_id, until, |_| true).await?;
        Ok(proto::OpenCaseResponse {
            case: Some(masked(case, &access)),
        })
    }

    /// `CancelCase`: the case once cancelled, unless it is closed already.
    async fn cancel(
        &self,
        caller: Caller,
        r: proto::CancelCaseRequest,
        until: Instant,
    ) -> Result<Case, CaseError> {
        fields_valid(validate_cancel_case(&r), caller.requester.agency)?;
        let (case, access) = self
            .readable(&caller, "CancelCase", &r.case_id, until)
            .await?;
        match case.state() {
            CaseState::Completed => {
                return Err(CaseError::Precondition(
                    "the case is completed: a completed case cannot be cancelled".into(),
                ));
            }
            CaseState::Cancelled => {
                return Err(CaseError::Precondition(
                    "the case is already cancelled".into(),
                ));
            }
            _ => {}
        }
        let cancel = proto::CancelCaseCommand {
            reason: r.reason,
            by: caller.requester.to_string(),
        };
        let cancel = case_command::Body::Cancel(cancel);
        self.calls.send(&case.case_id, cancel, until).await?;
        let cancelled = self.wait(&case.case_id, until, is_closed).await?;
        Ok(masked(cancelled, &access))
    }
}

fn is_closed(case: &Case) -> bool {
    matches!(case.state(), CaseState::Completed | CaseState::Cancelled)
}

/// A case's id: derived from who opened it and their request id, so opening again with
/// the same request id finds the same case.
pub(super) fn case_id_of(requester: &Requester, request_id: &str) -> String {
    let digest = Sha256::digest(format!("{requester}\n{request_id}"));
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("case-{hex}")
}
