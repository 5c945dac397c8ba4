//! The `Cases` gRPC service: validates a request field by field, checks that the access
//! policy grants the requester the case's purpose, puts the command on the command topic
//! and answers once the engine applied it (the caller sees its own writes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::admission::Admission;
use super::audit::{self, Action};
use super::commands::{Commands, applied};
use super::grants::{self, masked};
use super::listing;
use super::polled::{self, Polled, Source};
use super::store::CaseStore;
use super::validate::normalised;
pub use super::validate::{
    validate_cancel_case, validate_case_id, validate_list_cases, validate_open_case,
};
use crate::audit::AuditLog;
use crate::grpc::caller_of;
use crate::grpc::{deadline, refuse_fields};
use crate::identity::Caller;
use crate::identity::Requester;
use crate::kafka::{Publisher, Topics};
use crate::proto::{self, Case, CaseState, case_command};
use crate::resolver::Positions;
use crate::resolver::policy::{Access, Policy};
use crate::telemetry::metrics::Telemetry;
/// What the `Cases` and `Tasks` services of a process share: the case store they read,
/// where they publish commands, who may call and for what, and where every action is
/// recorded and counted.
#[derive(Clone)]
pub struct Shared {
    pub cases: CaseStore,
    pub publisher: Publisher,
    pub topics: Topics,
    /// Grants the case purposes, and lists the integrations (the only callers of `Tasks`).
    pub policy: Arc<Policy>,
    /// Where every action is recorded before it is taken.
    pub audit: AuditLog,
    /// Where refusals are counted.
    pub telemetry: Telemetry,
    /// Each requester's calls per second and open streams, one bucket for both services.
    pub admission: Arc<Admission>,
    /// The longest a call waits for its command to be applied (`request_timeout_ms`).
    pub max_wait: Duration,
    /// Ends the streams and watches at shutdown.
    pub stop: CancellationToken,
}

/// The `Cases` service.
pub struct CasesService {
    cases: CaseStore,
    commands: Commands,
    policy: Arc<Policy>,
    /// How far the record store has materialized: an opening waits for the caller's
    /// publishes before the engine plans on the records.
    positions: Positions,
    max_wait: Duration,
    /// Ends the watches at shutdown.
    stop: CancellationToken,
    /// Where every action is recorded before it is taken.
    audit: AuditLog,
    /// Where refusals are counted.
    telemetry: Telemetry,
    /// Each requester's calls per second and open streams, shared with `Tasks`.
    admission: Arc<Admission>,
    /// Seen once that the store lists every case by person, work list, kind and state
    /// (see [`CaseStore::lists_current`]); it stays so.
    lists_current: AtomicBool,
}

impl CasesService {
    /// A service over the case store, sending commands with `publisher`; an opening
    /// waits for its `min_positions` in `positions`, a call waits at most `max_wait` for
    /// the engine, and watches end when `stop` is cancelled.
    /// The service over what it shares with `Tasks`, waiting for the caller's publishes
    /// to be materialized (`positions`) before an opening is planned.
    pub fn new(shared: Shared, positions: Positions) -> CasesService {
        let Shared {
            cases,
            publisher,
            topics,
            policy,
            audit,
            telemetry,
            admission,
            max_wait,
            stop,
        } = shared;
        CasesService {
            cases,
            commands: Commands { publisher, topics },
            policy,
            positions,
            max_wait,
            stop,
            audit,
            telemetry,
            admission,
            lists_current: AtomicBool::new(false),
        }
    }

    /// The caller, once its call is admitted by its rate (see [`admit_requester`]).
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = caller_of(request)?;
        self.admission
            .call(&caller.requester, &self.telemetry, "case call")?;
        Ok(caller)
    }

    /// Decides `action` by the policy for `caller` and records it, allowed or denied,
    /// before anything else happens; what the grant shows, if allowed.
    async fn check(
        &self,
        caller: &Caller,
        action: &Action<'_>,
        until: Instant,
    ) -> Result<Access, Status> {
        match grants::decide(&self.policy, caller, action.purpose, action.params) {
            Ok(access) => {
                audit::record(&self.audit, action, None, until).await?;
                Ok(access)
            }
            Err(reason) => {
                audit::record(&self.audit, action, Some(&reason), until).await?;
                Err(Status::permission_denied(reason))
            }
        }
    }

    async fn load(&self, case_id: &str) -> Result<Option<Case>, Status> {
        self.cases
            .load(case_id)
            .await
            .map(|s| s.case)
            .map_err(store_unavailable)
    }

    /// Whether the store lists every case by person, work list, kind and state; read
    /// until it does, then remembered.
    async fn lists_current(&self) -> Result<bool, Status> {
        if self.lists_current.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let current = self
            .cases
            .lists_current()
            .await
            .map_err(store_unavailable)?;
        self.lists_current.store(current, Ordering::Relaxed);
        Ok(current)
    }

    /// The case once `done` holds.
    async fn wait(
        &self,
        case_id: &str,
        until: Instant,
        done: impl Fn(&Case) -> bool,
    ) -> Result<Case, Status> {
        applied(&self.cases, case_id, until, |c| done(&c).then_some(c)).await
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

    async fn next(&mut self) -> Result<(Vec<proto::CaseEvent>, bool), Status> {
        let unavailable = |e: super::store::CaseStoreError| {
            tracing::warn!(error = %e, "case store unavailable");
            Status::unavailable("the case store is unavailable")
        };
        // Whether it is closed first: the history read after it then holds every event
        // (read the other way round, a case closing in between would lose its last one).
        let stored = self.cases.load(&self.case_id).await.map_err(unavailable)?;
        let closed = stored.case.is_some_and(|c| is_closed(&c));
        let history = self
            .cases
            .history(&self.case_id, self.after)
            .await
            .map_err(unavailable)?;
        if let Some(last) = history.last() {
            self.after = last.sequence;
        }
        let mut history = history;
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
        let (caller, until) = (self.caller(&request)?, deadline(&request, self.max_wait));
        let r = request.into_inner();
        let slot = self.admission.stream(&caller.requester)?;
        let (case, access) = self
            .readable(&caller, "WatchCase", &r.case_id, until)
            .await?;
        let history = History {
            cases: self.cases.clone(),
            case_id: case.case_id,
            after: r.after_sequence,
            access,
        };
        Ok(Response::new(polled::stream(
            history,
            slot,
            self.stop.clone(),
        )))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListCases"))]
    async fn list_cases(
        &self,
        request: Request<proto::ListCasesRequest>,
    ) -> Result<Response<proto::ListCasesResponse>, Status> {
        let (caller, until) = (self.caller(&request)?, deadline(&request, self.max_wait));
        let r = request.into_inner();
        let violations = validate_list_cases(&r);
        if !violations.is_empty() {
            return Err(refuse_fields(
                &violations,
                &self.telemetry,
                caller.requester.agency,
            ));
        }
        let limit = if r.limit == 0 { 100 } else { r.limit as usize };
        let Some(r) = grants::scoped(&self.policy, &caller, r) else {
            return Ok(Response::new(proto::ListCasesResponse::default()));
        };
        let found = listing::list(&self.cases, &r, limit, self.lists_current().await?, |c| {
            grants::decide(&self.policy, &caller, &c.purpose, c.params.as_ref()).ok()
        })
        .await
        .map_err(store_unavailable)?;
        // Every case returned is in the trail before the answer leaves; the entries are
        // written together (the audit writer batches them), not one round trip each.
        let entries = found.cases.iter().map(|(case, _)| {
            let action = Action {
                requester: &caller.requester,
                on_behalf_of: caller.on_behalf_of.as_ref(),
                method: "ListCases",
                case_id: &case.case_id,
                purpose: &case.purpose,
                params: case.params.as_ref(),
            };
            async move { audit::record(&self.audit, &action, None, until).await }
        });
        futures::future::try_join_all(entries).await?;
        let cases = found
            .cases
            .into_iter()
            .map(|(case, access)| masked(case, &access))
            .collect();
        let truncated = found.truncated;
        Ok(Response::new(proto::ListCasesResponse { cases, truncated }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "OpenCase"))]
    async fn open_case(
        &self,
        request: Request<proto::OpenCaseRequest>,
    ) -> Result<Response<proto::OpenCaseResponse>, Status> {
        let (caller, until) = (self.caller(&request)?, deadline(&request, self.max_wait));
        let r = request.into_inner();
        let mut violations = validate_open_case(&r);
        self.positions
            .check(&r.min_positions, "min_positions", &mut violations);
        if !violations.is_empty() {
            return Err(refuse_fields(
                &violations,
                &self.telemetry,
                caller.requester.agency,
            ));
        }
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
        if self.load(&case_id).await?.is_none() {
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
            self.commands
                .send_for_call(&case_id, case_command::Body::Open(open), until)
                .await?;
        }
        let case = self.wait(&case_id, until, |_| true).await?;
        Ok(Response::new(proto::OpenCaseResponse {
            case: Some(masked(case, &access)),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetCase"))]
    async fn get_case(
        &self,
        request: Request<proto::GetCaseRequest>,
    ) -> Result<Response<Case>, Status> {
        let (caller, until) = (self.caller(&request)?, deadline(&request, self.max_wait));
        let case_id = request.into_inner().case_id;
        let (case, access) = self.readable(&caller, "GetCase", &case_id, until).await?;
        Ok(Response::new(masked(case, &access)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "CancelCase"))]
    async fn cancel_case(
        &self,
        request: Request<proto::CancelCaseRequest>,
    ) -> Result<Response<Case>, Status> {
        let (caller, until) = (self.caller(&request)?, deadline(&request, self.max_wait));
        let r = request.into_inner();
        let violations = validate_cancel_case(&r);
        if !violations.is_empty() {
            return Err(refuse_fields(
                &violations,
                &self.telemetry,
                caller.requester.agency,
            ));
        }
        let (case, access) = self
            .readable(&caller, "CancelCase", &r.case_id, until)
            .await?;
        match case.state() {
            CaseState::Completed => {
                return Err(Status::failed_precondition(
                    "the case is completed: a completed case cannot be cancelled",
                ));
            }
            CaseState::Cancelled => {
                return Err(Status::failed_precondition("the case is already cancelled"));
            }
            _ => {}
        }
        let cancel = proto::CancelCaseCommand {
            reason: r.reason,
            by: caller.requester.to_string(),
        };
        self.commands
            .send_for_call(&case.case_id, case_command::Body::Cancel(cancel), until)
            .await?;
        let cancelled = self.wait(&case.case_id, until, is_closed).await?;
        Ok(Response::new(masked(cancelled, &access)))
    }
}

impl CasesService {
    /// The case, if it exists and the policy lets `caller` act on it (see
    /// [`grants::decide`]), with what the grant shows; `method` is recorded in the
    /// audit trail either way.
    async fn readable(
        &self,
        caller: &Caller,
        method: &'static str,
        case_id: &str,
        until: Instant,
    ) -> Result<(Case, Access), Status> {
        let violations = validate_case_id(case_id);
        if !violations.is_empty() {
            return Err(refuse_fields(
                &violations,
                &self.telemetry,
                caller.requester.agency,
            ));
        }
        let case = self
            .load(case_id)
            .await?
            .ok_or_else(|| Status::not_found("no such case"))?;
        let action = Action {
            requester: &caller.requester,
            on_behalf_of: caller.on_behalf_of.as_ref(),
            method,
            case_id: &case.case_id,
            purpose: &case.purpose,
            params: case.params.as_ref(),
        };
        let access = self.check(caller, &action, until).await?;
        Ok((case, access))
    }
}

fn store_unavailable(e: super::store::CaseStoreError) -> Status {
    tracing::warn!(error = %e, "case store unavailable");
    Status::unavailable("the case store is unavailable; retry later")
}

fn is_closed(case: &Case) -> bool {
    matches!(case.state(), CaseState::Completed | CaseState::Cancelled)
}

/// A case's id: derived from who opened it and their request id, so opening again with
/// the same request id finds the same case.
fn case_id_of(requester: &Requester, request_id: &str) -> String {
    let digest = Sha256::digest(format!("{requester}\n{request_id}"));
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("case-{hex}")
}
