//! The `Tasks` gRPC service: how agency systems receive their steps and carry them out.
//! Only the agencies' record systems (the policy's integrations) call it; the caller's
//! agency is the requester's (from the transport), and a task of another agency is
//! refused. A stream first sends every task not yet acknowledged, so a system that
//! reconnects misses none, then each new one as it opens.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::audit::{self, Action};
use super::calls::{Calls, Shared};
use super::error::{CaseError, fields_valid};
use super::polled::{Polled, Source};
use super::store::CaseStore;
use crate::audit::AuditLog;
use crate::identity::{Caller, Requester};
use crate::proto::{self, Case, CaseState, Step, StepState, Task, case_command};
use crate::records::{Violations, agency_slug};

/// How long a stream waits for the audit trail to take a task's entry.
const AUDIT_WAIT: Duration = Duration::from_secs(10);

/// The `Tasks` service.
pub struct TasksService {
    calls: Calls,
}

impl TasksService {
    /// The service over what it shares with `Cases`.
    pub fn new(shared: Shared) -> TasksService {
        TasksService {
            calls: Calls::new(shared, "task call"),
        }
    }

    /// The case and step of `task_id`, if the step is the requester's agency's; `method`
    /// is recorded in the audit trail either way. A malformed id is `INVALID_ARGUMENT`
    /// naming `task_id`; the task need not be the step's current one (a withdrawn task is
    /// still acknowledged): see [`current`].
    async fn owned(
        &self,
        requester: &Requester,
        method: &'static str,
        task_id: &str,
        until: Instant,
    ) -> Result<(Case, Step), CaseError> {
        let id = TaskId::parse(task_id).map_err(|violations| CaseError::Invalid {
            violations,
            agency: requester.agency,
        })?;
        let case = self
            .calls
            .load(id.case_id)
            .await?
            .ok_or(CaseError::NotFound("no such task: its case does not exist"))?;
        let step = case
            .steps
            .iter()
            .find(|s| s.step_id == id.step_id)
            .cloned()
            .ok_or(CaseError::NotFound(
                "no such task: its case has no such step",
            ))?;
        let decision = match self.calls.policy.integration(requester) {
            Err(not) => Err(not.to_string()),
            Ok(()) if step.agency() != requester.agency => Err(format!(
                "the task belongs to {}",
                agency_slug(step.agency())
            )),
            Ok(()) => Ok(()),
        };
        let action = Action::on_case(requester, None, method, &case);
        self.calls.audited(&action, decision, until).await?;
        Ok((case, step))
    }

    /// Lets `requester` open a task stream if it is an integration (an agency's record
    /// system); otherwise audits the attempt and refuses it.
    async fn integration(&self, requester: &Requester, until: Instant) -> Result<(), CaseError> {
        let Err(not) = self.calls.policy.integration(requester) else {
            return Ok(());
        };
        let action = Action {
            requester,
            on_behalf_of: None,
            method: "Tasks.Stream",
            case_id: "",
            purpose: "tasks",
            params: None,
        };
        self.calls
            .audited(&action, Err(not.to_string()), until)
            .await
    }

    /// Sends `body` for the case of `step` unless `applied` already holds, then answers
    /// with the step once it does.
    async fn act(
        &self,
        case: &Case,
        step: &Step,
        body: case_command::Body,
        until: Instant,
        applied: impl Fn(&Step) -> bool,
    ) -> Result<Step, CaseError> {
        if !applied(step) {
            self.calls.send(&case.case_id, body, until).await?;
        }
        let step_id = &step.step_id;
        self.calls
            .applied(&case.case_id, until, |c| {
                c.steps
                    .into_iter()
                    .find(|s| s.step_id == *step_id)
                    .filter(|s| applied(s))
            })
            .await
    }
}

type TaskStream = Polled<Task>;

/// An agency's tasks not yet acknowledged, each sent once per stream and audited before
/// it is sent.
struct Pending {
    cases: CaseStore,
    trail: AuditLog,
    requester: Requester,
    /// The tasks this stream sent already (and whether as a withdrawal), of those the
    /// store still keeps for the agency.
    sent: BTreeSet<(String, bool)>,
    /// The count of changes of the agency's tasks as last read (none yet: a new stream
    /// reads them all): a poll that finds it unchanged reads nothing more.
    seen: Option<u64>,
}

impl Source for Pending {
    type Item = Task;

    async fn next(&mut self) -> Result<(Vec<Task>, bool), CaseError> {
        let agency = self.requester.agency;
        if let Some(seen) = self.seen {
            let changes = self
                .cases
                .task_changes(agency)
                .await
                .map_err(CaseError::Store)?;
            if changes == seen {
                return Ok((Vec::new(), false));
            }
        }
        let snapshot = self
            .cases
            .task_snapshot(agency)
            .await
            .map_err(CaseError::Store)?;
        let tasks = snapshot.tasks;
        // What this stream sent and the agency has since acknowledged (or the engine
        // dropped) is gone from the kept tasks: forgotten here too, so a long-lived
        // stream remembers no more than the agency's tasks outstanding.
        let kept: BTreeSet<(&str, bool)> = tasks
            .iter()
            .map(|t| (t.task_id.as_str(), t.withdrawn))
            .collect();
        self.sent
            .retain(|(id, withdrawn)| kept.contains(&(id.as_str(), *withdrawn)));
        let mut new = Vec::new();
        for task in tasks {
            let sent = (task.task_id.clone(), task.withdrawn);
            if self.sent.contains(&sent) {
                continue;
            }
            let action = Action {
                requester: &self.requester,
                on_behalf_of: None,
                method: "Tasks.Stream",
                case_id: &task.case_id,
                purpose: &task.purpose,
                params: task.params.as_ref(),
            };
            audit::record(&self.trail, &action, None, Instant::now() + AUDIT_WAIT).await?;
            self.sent.insert(sent);
            new.push(task);
        }
        self.seen = Some(snapshot.changes);
        Ok((new, false))
    }
}

#[tonic::async_trait]
impl proto::tasks_server::Tasks for TasksService {
    type StreamStream = TaskStream;

    #[tracing::instrument(skip_all, fields(rpc = "Tasks.Stream"))]
    async fn stream(
        &self,
        request: Request<proto::StreamTasksRequest>,
    ) -> Result<Response<TaskStream>, Status> {
        self.calls
            .answer(request, |caller, _, until| self.open_stream(caller, until))
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "Tasks.Ack"))]
    async fn ack(
        &self,
        request: Request<proto::AckTaskRequest>,
    ) -> Result<Response<proto::AckTaskResponse>, Status> {
        self.calls
            .answer(request, |caller, r, until| {
                self.acknowledge(caller, r, until)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "Tasks.Complete"))]
    async fn complete(
        &self,
        request: Request<proto::CompleteTaskRequest>,
    ) -> Result<Response<Step>, Status> {
        self.calls
            .answer(request, |caller, r, until| {
                self.complete_task(caller, r, until)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "Tasks.Reject"))]
    async fn reject(
        &self,
        request: Request<proto::RejectTaskRequest>,
    ) -> Result<Response<Step>, Status> {
        self.calls
            .answer(request, |caller, r, until| {
                self.reject_task(caller, r, until)
            })
            .await
    }
}

/// The calls, each once its caller is admitted.
impl TasksService {
    /// `Tasks.Stream`: the requester's agency's tasks, as they open.
    async fn open_stream(&self, caller: Caller, until: Instant) -> Result<TaskStream, CaseError> {
        let requester = caller.requester;
        self.integration(&requester, until).await?;
        let slot = self.calls.slot(&requester)?;
        let pending = Pending {
            cases: self.calls.cases.clone(),
            trail: self.calls.audit.clone(),
            requester,
            sent: BTreeSet::new(),
            seen: None,
        };
        Ok(self.calls.stream(pending, slot))
    }

    /// `Tasks.Ack`: the task is no longer sent again to its agency.
    async fn acknowledge(
        &self,
        caller: Caller,
        r: proto::AckTaskRequest,
        until: Instant,
    ) -> Result<proto::AckTaskResponse, CaseError> {
        self.owned(&caller.requester, "Tasks.Ack", &r.task_id, until)
            .await?;
        self.calls
            .cases
            .ack_task(caller.requester.agency, &r.task_id)
            .await
            .map_err(CaseError::Store)?;
        Ok(proto::AckTaskResponse {})
    }

    /// `Tasks.Complete`: the step once done by the task (a repeat with the same
    /// outcome finds it done).
    async fn complete_task(
        &self,
        caller: Caller,
        r: proto::CompleteTaskRequest,
        until: Instant,
    ) -> Result<Step, CaseError> {
        let agency = caller.requester.agency;
        fields_valid(validate_complete_task(&r), agency)?;
        let (case, step) = self
            .owned(&caller.requester, "Tasks.Complete", &r.task_id, until)
            .await?;
        current(&case, &step, &r.task_id)?;
        if let Some(proto::step::CompletedBy::Task(done)) = &step.completed_by
            && step.state() == StepState::Done
            && done.outcome != r.outcome
        {
            return Err(CaseError::Precondition(
                format!(
                    "the task was already completed with another outcome ({:?}); a step is \
                     completed once",
                    done.outcome
                )
                .into(),
            ));
        }
        let body = case_command::Body::CompleteTask(proto::CompleteTaskCommand {
            task_id: r.task_id,
            agency: agency as i32,
            outcome: r.outcome,
            note: r.note,
        });
        let done = |s: &Step| s.state() == StepState::Done;
        self.act(&case, &step, body, until, done).await
    }

    /// `Tasks.Reject`: the step once rejected (or done after all).
    async fn reject_task(
        &self,
        caller: Caller,
        r: proto::RejectTaskRequest,
        until: Instant,
    ) -> Result<Step, CaseError> {
        let agency = caller.requester.agency;
        fields_valid(validate_reject_task(&r), agency)?;
        let (case, step) = self
            .owned(&caller.requester, "Tasks.Reject", &r.task_id, until)
            .await?;
        current(&case, &step, &r.task_id)?;
        if step.state() == StepState::Done {
            return Err(CaseError::Precondition("the step is already done".into()));
        }
        let body = case_command::Body::RejectTask(proto::RejectTaskCommand {
            task_id: r.task_id,
            agency: agency as i32,
            reason: r.reason,
        });
        let rejected = |s: &Step| matches!(s.state(), StepState::Rejected | StepState::Done);
        self.act(&case, &step, body, until, rejected).await
    }
}

/// Checks a `Tasks.Complete` request's outcome and note (its task id is checked when the
/// task is looked up).
pub fn validate_complete_task(r: &proto::CompleteTaskRequest) -> Violations {
    let mut violations = Violations::default();
    if !(1..=100).contains(&r.outcome.chars().count()) {
        violations.add("outcome", "must be 1 to 100 characters");
    }
    if r.note.chars().count() > 500 {
        violations.add("note", "must be at most 500 characters");
    }
    violations
}

/// Checks a `Tasks.Reject` request's reason (its task id is checked when the task is
/// looked up).
pub fn validate_reject_task(r: &proto::RejectTaskRequest) -> Violations {
    let mut violations = Violations::default();
    if r.reason.trim().is_empty() || r.reason.chars().count() > 500 {
        violations.add("reason", "must be 1 to 500 characters");
    }
    violations
}

/// A task id as the engine makes them: `<case id>/<step id>.<n>`, the step's n-th task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskId<'a> {
    /// The case.
    pub case_id: &'a str,
    /// The step, by its kind's name.
    pub step_id: &'a str,
    /// Which of the step's tasks, from 1.
    pub number: u32,
}

impl<'a> TaskId<'a> {
    /// `text` as a task id, or the violation naming `task_id`.
    pub fn parse(text: &'a str) -> Result<TaskId<'a>, Violations> {
        let refuse = || {
            let mut v = Violations::default();
            v.add(
                "task_id",
                "must be a task id from the task stream: <case id>/<step>.<number>",
            );
            v
        };
        let (case_id, rest) = text.split_once('/').ok_or_else(refuse)?;
        let (step_id, number) = rest.rsplit_once('.').ok_or_else(refuse)?;
        // Digits only, no leading zero: one spelling per task.
        let digits = !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && !number.starts_with('0');
        let number = number
            .parse::<u32>()
            .ok()
            .filter(|_| digits)
            .ok_or_else(refuse)?;
        let known_step = (1..=64).contains(&step_id.len())
            && step_id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if super::service::validate_case_id(case_id).is_empty() && known_step {
            Ok(TaskId {
                case_id,
                step_id,
                number,
            })
        } else {
            Err(refuse())
        }
    }
}

/// `FAILED_PRECONDITION` unless `task_id` is the current task of `step` in an open case
/// (or a completed one's, for a harmless repeat): a withdrawn or replaced task, or any
/// task of a cancelled case, can no longer be carried out.
fn current(case: &Case, step: &Step, task_id: &str) -> Result<(), CaseError> {
    let done_by_it = step.state() == StepState::Done && step.task_id == task_id;
    match case.state() {
        CaseState::Cancelled => {
            return Err(CaseError::Precondition(
                "the case was cancelled: its tasks were withdrawn".into(),
            ));
        }
        CaseState::Completed if !done_by_it => {
            return Err(CaseError::Precondition(
                "the case is completed: this task is no longer needed".into(),
            ));
        }
        _ => {}
    }
    if step.task_id == task_id {
        return Ok(());
    }
    let number = |id: &str| TaskId::parse(id).map_or(0, |t| t.number);
    if number(task_id) > step.tasks_issued.max(number(&step.task_id)) {
        return Err(CaseError::NotFound(
            "no such task: the step has had no such task",
        ));
    }
    Err(CaseError::Precondition(
        if step.task_id.is_empty() {
            format!(
                "the task was withdrawn: step {} went back to pending until the steps it \
             comes after are done again",
                step.step_id
            )
        } else {
            format!(
                "the task was withdrawn: step {} is now task {}",
                step.step_id, step.task_id
            )
        }
        .into(),
    ))
}
