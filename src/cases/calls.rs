//! What every call of the `Cases` and `Tasks` services goes through, written once for
//! both: the caller admitted by its rate, the call's deadline, and its answer (a
//! [`CaseError`] becomes a status, counted, in one place); the audit entry before any
//! action; a command sent and the case waited for until the engine applied it; and the
//! polled server streams, a bounded number per requester.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::admission::{Admission, StreamSlot};
use super::audit::{self, Action};
use super::commands::{self, Commands};
use super::error::CaseError;
use super::polled::{self, Polled, Source};
use super::store::CaseStore;
use crate::audit::AuditLog;
use crate::grpc::{caller_of, deadline};
use crate::identity::{Caller, Requester};
use crate::kafka::{Publisher, Topics};
use crate::proto::{Case, case_command};
use crate::resolver::policy::Policy;
use crate::telemetry::metrics::Telemetry;

/// What the `Cases` and `Tasks` services of a process share: the case store they read,
/// where they publish commands, who may call and for what, and where every action is
/// recorded and counted.
#[derive(Clone)]
pub struct Shared {
    /// The case store both services read.
    pub cases: CaseStore,
    /// Where commands are published.
    pub publisher: Publisher,
    /// The topics, the command topic among them.
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

/// One service's side of [`Shared`]: what its calls go through.
pub(super) struct Calls {
    /// The case store.
    pub(super) cases: CaseStore,
    /// Grants the case purposes, and lists the integrations.
    pub(super) policy: Arc<Policy>,
    /// Where every action is recorded before it is taken.
    pub(super) audit: AuditLog,
    /// Where refusals and failures are counted.
    pub(super) telemetry: Telemetry,
    commands: Commands,
    /// Each requester's calls per second and open streams, shared by both services.
    admission: Arc<Admission>,
    /// The longest a call waits for the engine.
    max_wait: Duration,
    /// Ends the streams at shutdown.
    stop: CancellationToken,
    /// What a refused rate names the calls ("case call", "task call").
    calls: &'static str,
}

impl Calls {
    /// The calls of one service over `shared`, named `calls` when the rate refuses one.
    pub(super) fn new(shared: Shared, calls: &'static str) -> Calls {
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
        Calls {
            cases,
            policy,
            audit,
            telemetry,
            commands: Commands { publisher, topics },
            admission,
            max_wait,
            stop,
            calls,
        }
    }

    /// Answers `request`: its caller, once admitted by its rate (see
    /// [`crate::grpc::admit_requester`]), its message and its deadline go to `run`; what
    /// `run` fails with becomes the status, counted.
    pub(super) async fn answer<R, A, F>(
        &self,
        request: Request<R>,
        run: impl FnOnce(Caller, R, Instant) -> F,
    ) -> Result<Response<A>, Status>
    where
        F: Future<Output = Result<A, CaseError>>,
    {
        let answer = match self.caller(&request) {
            Ok(caller) => {
                let until = deadline(&request, self.max_wait);
                run(caller, request.into_inner(), until).await
            }
            Err(e) => Err(e),
        };
        answer
            .map(Response::new)
            .map_err(|e| e.status(&self.telemetry))
    }

    /// The caller, once its call is admitted by its rate.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, CaseError> {
        let caller = caller_of(request)?;
        self.admission
            .call(&caller.requester, &self.telemetry, self.calls)?;
        Ok(caller)
    }

    /// Records `action` as `decision` has it, allowed or (with the reason) denied, before
    /// anything else happens: what was allowed, or [`CaseError::Denied`].
    pub(super) async fn audited<T>(
        &self,
        action: &Action<'_>,
        decision: Result<T, String>,
        until: Instant,
    ) -> Result<T, CaseError> {
        let denied = decision.as_ref().err().map(String::as_str);
        audit::record(&self.audit, action, denied, until).await?;
        decision.map_err(CaseError::Denied)
    }

    /// The case `case_id`, if it exists.
    pub(super) async fn load(&self, case_id: &str) -> Result<Option<Case>, CaseError> {
        self.cases
            .load(case_id)
            .await
            .map(|s| s.case)
            .map_err(CaseError::Store)
    }

    /// Puts `body` on the command topic for case `case_id`, taken by the broker by
    /// `until`.
    pub(super) async fn send(
        &self,
        case_id: &str,
        body: case_command::Body,
        until: Instant,
    ) -> Result<(), CaseError> {
        self.commands
            .send(case_id, body, until)
            .await
            .map_err(CaseError::NotTaken)
    }

    /// What `look` finds in case `case_id` once the engine applied what the call waits
    /// for (see [`commands::applied`]).
    pub(super) async fn applied<T>(
        &self,
        case_id: &str,
        until: Instant,
        look: impl Fn(Case) -> Option<T>,
    ) -> Result<T, CaseError> {
        commands::applied(&self.cases, case_id, until, look).await
    }

    /// A slot for one more open stream of `requester` (see [`Admission::stream`]).
    pub(super) fn slot(&self, requester: &Requester) -> Result<StreamSlot, CaseError> {
        self.admission.stream(requester)
    }

    /// The server stream of what `source` yields, holding `slot` while it is open and
    /// ending at shutdown.
    pub(super) fn stream<S: Source>(&self, source: S, slot: StreamSlot) -> Polled<S::Item> {
        polled::stream(source, slot, self.stop.clone(), self.telemetry.clone())
    }
}
