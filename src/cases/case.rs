//! A case as an event-sourced aggregate: [`decide`] turns a command into the events it
//! causes, given the case as its events left it and what the engine read (the time, the
//! calendar, the current records); [`apply`] folds an event into the case. Both are pure,
//! so the engine, a rebuild of the views and the tests fold the same way.
//!
//! Every command is idempotent by the state it meets: completing a done step, opening an
//! opened case, cancelling a cancelled one or proving a proved step decides nothing. A
//! command redelivered after a crash (applied, but its offset not committed) therefore
//! changes nothing the second time, which is what makes processing exactly-once in
//! effect without broker transactions.

use std::time::SystemTime;

use crate::domain::CivilDate;
use crate::proto::{
    self, Agency, Case, CaseCommand, CaseEvent, CaseState, RecordEvent, Step, StepState,
    case_command, case_event, step,
};
use crate::records::agency_slug;

use super::calendar::WorkCalendar;
use super::plan::{self, Condition};

/// What a command meets besides the case.
pub struct Context<'a> {
    /// When the command is applied.
    pub now: SystemTime,
    /// Today's date in China, for deadlines.
    pub today: CivilDate,
    /// Working days and holidays.
    pub calendar: &'a WorkCalendar,
    /// The current records of the case's subjects ([`plan::reads`]).
    pub records: &'a [RecordEvent],
    /// Working days each step kind allows.
    pub working_days: &'a plan::WorkingDays,
}

/// Why a command cannot be applied. The case is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The command names a case that was never opened.
    #[error("no such case")]
    NoSuchCase,
    /// An open command without parameters of a known kind.
    #[error("the case parameters name no case kind")]
    NoKind,
    /// The task is not one of the case's.
    #[error("no such task in this case")]
    NoSuchTask,
    /// The task belongs to another agency's step.
    #[error("the task belongs to {owner}, not {caller}")]
    WrongAgency {
        /// The step's agency.
        owner: &'static str,
        /// The agency that tried.
        caller: &'static str,
    },
}

/// The events `command` causes on `case` (`None` before it is opened), in order, not yet
/// numbered: [`number`] gives them their sequence.
pub fn decide(
    case: Option<&Case>,
    command: &CaseCommand,
    cx: &Context<'_>,
) -> Result<Vec<case_event::Body>, Refusal> {
    use case_command::Body as C;
    let Some(body) = &command.body else {
        return Ok(Vec::new());
    };
    let case = match (case, body) {
        (Some(_), C::Open(_)) => return Ok(Vec::new()),
        (None, C::Open(open)) => return open_case(&command.case_id, open, cx),
        (None, _) => return Err(Refusal::NoSuchCase),
        (Some(case), _) => case,
    };
    if is_closed(case) {
        return Ok(Vec::new());
    }
    let mut events = Vec::new();
    match body {
        C::Open(_) => {}
        C::CompleteTask(done) => events.extend(task_completed(case, done)?),
        C::RejectTask(rejected) => {
            events.extend(task_rejected(case, rejected)?);
            // An objection rejected is answered: the case closes with its step rejected.
            if case.kind() == proto::CaseKind::DataObjection && !events.is_empty() {
                events.push(case_event::Body::Completed(proto::CaseCompleted {}));
                return Ok(events);
            }
        }
        C::RecordChanged(_) => events.extend(reopened(case, cx)),
        C::CheckDeadlines(_) => {
            // The periodic check also looks at the records: a record change whose
            // command never reached the case (the bridge could not send it) is noticed
            // here at the latest. A step it reopens has a new due date, so overdue is
            // judged on the case after the reopening.
            events.extend(reopened(case, cx));
            let now = folded(case, &command.case_id, &events, cx.now);
            events.extend(overdue(&now, cx.today));
        }
        C::Cancel(cancel) => {
            return Ok(vec![case_event::Body::Cancelled(proto::CaseCancelled {
                reason: cancel.reason.clone(),
                by: cancel.by.clone(),
            })]);
        }
    }
    let next = folded(case, &command.case_id, &events, cx.now);
    events.extend(advance(next, cx));
    Ok(events)
}

/// The completion a `CompleteTask` command causes: none when its step is done already.
fn task_completed(
    case: &Case,
    done: &proto::CompleteTaskCommand,
) -> Result<Option<case_event::Body>, Refusal> {
    let step = task_step(case, &done.task_id, done.agency())?;
    if step.state() == StepState::Done {
        return Ok(None);
    }
    Ok(Some(case_event::Body::StepCompleted(
        proto::StepCompleted {
            step_id: step.step_id.clone(),
            by: Some(proto::step_completed::By::Task(proto::TaskOutcome {
                task_id: done.task_id.clone(),
                outcome: done.outcome.clone(),
                note: done.note.clone(),
            })),
        },
    )))
}

/// The rejection a `RejectTask` command causes: only while its step is open.
fn task_rejected(
    case: &Case,
    rejected: &proto::RejectTaskCommand,
) -> Result<Option<case_event::Body>, Refusal> {
    let step = task_step(case, &rejected.task_id, rejected.agency())?;
    if step.state() != StepState::Open {
        return Ok(None);
    }
    Ok(Some(case_event::Body::StepRejected(proto::StepRejected {
        step_id: step.step_id.clone(),
        task_id: rejected.task_id.clone(),
        reason: rejected.reason.clone(),
    })))
}

/// The steps of `case` that are open past their due date on `today` and not yet marked
/// overdue.
fn overdue(case: &Case, today: CivilDate) -> Vec<case_event::Body> {
    case.steps
        .iter()
        .filter(|s| {
            let due = s.due_on.as_ref().and_then(civil);
            s.state() == StepState::Open && !s.overdue && due.is_some_and(|d| d < today)
        })
        .map(|s| {
            case_event::Body::StepOverdue(proto::StepOverdue {
                step_id: s.step_id.clone(),
                due_on: s.due_on,
            })
        })
        .collect()
}

/// `case` after `events`, applied at `at`.
fn folded(case: &Case, case_id: &str, events: &[case_event::Body], at: SystemTime) -> Case {
    events.iter().fold(case.clone(), |case, e| {
        apply_body(Some(case), case_id, e, at)
    })
}

/// Numbers `bodies` after the case's last event.
pub fn number(
    case: Option<&Case>,
    command: &CaseCommand,
    bodies: Vec<case_event::Body>,
) -> Vec<CaseEvent> {
    let first = case.map_or(1, |c| c.sequence + 1);
    bodies
        .into_iter()
        .zip(first..)
        .map(|(body, sequence)| CaseEvent {
            case_id: command.case_id.clone(),
            sequence,
            command_id: command.command_id.clone(),
            at: command.at,
            body: Some(body),
        })
        .collect()
}

/// The case after `event`.
pub fn apply(case: Option<Case>, event: &CaseEvent) -> Case {
    let at = event
        .at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut case = match &event.body {
        Some(body) => apply_body(case, &event.case_id, body, at),
        None => case.unwrap_or_default(),
    };
    case.sequence = event.sequence;
    case
}

fn open_case(
    case_id: &str,
    open: &proto::OpenCaseCommand,
    cx: &Context<'_>,
) -> Result<Vec<case_event::Body>, Refusal> {
    let params = open.params.clone().unwrap_or_default();
    let kind = plan::kind_of(&params).ok_or(Refusal::NoKind)?;
    let steps = plan::steps_of(kind)
        .iter()
        .map(|spec| Step {
            step_id: plan::step_name(spec.kind),
            kind: spec.kind as i32,
            agency: plan::step_agency(spec, &params) as i32,
            state: StepState::Pending as i32,
            after: spec.after.iter().map(|k| plan::step_name(*k)).collect(),
            working_days: cx.working_days.of(spec) as i32,
            ..Default::default()
        })
        .collect();
    let opened = case_event::Body::Opened(proto::CaseOpened {
        kind: kind as i32,
        params: Some(params),
        opened_by: open.opened_by.clone(),
        purpose: open.purpose.clone(),
        request_id: open.request_id.clone(),
        steps,
    });
    let case = apply_body(None, case_id, &opened, cx.now);
    let mut events = vec![opened];
    events.extend(advance(case, cx));
    Ok(events)
}

/// What follows from the case as it stands: steps the records prove, steps whose
/// predecessors are done, and the case's completion, until nothing more follows.
fn advance(mut case: Case, cx: &Context<'_>) -> Vec<case_event::Body> {
    use case_event::Body as E;
    let params = case.params.clone().unwrap_or_default();
    let mut events = Vec::new();
    loop {
        // What the records prove first, so a step they prove never opens as a task. Only
        // a step whose predecessors are done may be proved: none is done (nor worked on)
        // while a step it comes after is not.
        let proved = case.steps.iter().find_map(|s| {
            let waiting = matches!(
                s.state(),
                StepState::Pending | StepState::Open | StepState::Rejected
            );
            if !waiting || !predecessors_done(&case, s) {
                return None;
            }
            match plan::evaluate(s.kind(), &params, cx.records) {
                Condition::Holds(proof) => Some(E::StepCompleted(proto::StepCompleted {
                    step_id: s.step_id.clone(),
                    by: Some(proto::step_completed::By::Record(proof)),
                })),
                _ => None,
            }
        });
        let mut next = proved.or_else(|| {
            let s = case
                .steps
                .iter()
                .find(|s| s.state() == StepState::Pending && predecessors_done(&case, s))?;
            Some(E::StepOpened(proto::StepOpened {
                step_id: s.step_id.clone(),
                due_on: Some(wire(cx.calendar.deadline(cx.today, s.working_days as u32))),
                task_id: task_id(&case.case_id, s),
            }))
        });
        if next.is_none() && case.steps.iter().all(|s| s.state() == StepState::Done) {
            next = Some(E::Completed(proto::CaseCompleted {}));
        }
        let Some(event) = next else { return events };
        case = apply_body(Some(case), "", &event, cx.now);
        events.push(event);
        if is_closed(&case) {
            return events;
        }
    }
}

/// What a record change takes back: a done step that a record proved and that the
/// records no longer prove opens again, and every step after it (transitively) goes back
/// to pending, its task withdrawn: nothing is worked on, nor stays done, while a step it
/// comes after is not done. Steps are in plan order, so one pass sees each step after
/// the steps it comes after.
fn reopened(case: &Case, cx: &Context<'_>) -> Vec<case_event::Body> {
    use case_event::Body as E;
    let params = case.params.clone().unwrap_or_default();
    let mut not_done: Vec<&str> = Vec::new();
    let mut events = Vec::new();
    for s in &case.steps {
        if let Some(first) = s.after.iter().find(|a| not_done.contains(&a.as_str())) {
            not_done.push(&s.step_id);
            if s.state() != StepState::Pending {
                events.push(E::StepPulledBack(proto::StepPulledBack {
                    step_id: s.step_id.clone(),
                    reason: format!("{first} is no longer done"),
                    withdrawn_task_id: match s.state() {
                        StepState::Open | StepState::Rejected => s.task_id.clone(),
                        _ => String::new(),
                    },
                }));
            }
        } else if s.state() == StepState::Done
            && matches!(s.completed_by, Some(step::CompletedBy::Record(_)))
            && plan::evaluate(s.kind(), &params, cx.records) == Condition::Open
        {
            not_done.push(&s.step_id);
            events.push(E::StepReopened(proto::StepReopened {
                step_id: s.step_id.clone(),
                reason: "the records no longer prove it".into(),
                due_on: Some(wire(cx.calendar.deadline(cx.today, s.working_days as u32))),
                task_id: task_id(&case.case_id, s),
            }));
        }
    }
    events
}

fn apply_body(case: Option<Case>, case_id: &str, body: &case_event::Body, at: SystemTime) -> Case {
    use case_event::Body as E;
    let mut case = case.unwrap_or_default();
    let stamp = Some(prost_types::Timestamp::from(at));
    let find = |case: &mut Case, id: &str| case.steps.iter().position(|s| s.step_id == id);
    match body {
        E::Opened(o) => {
            case = Case {
                case_id: case_id.to_owned(),
                kind: o.kind,
                params: o.params.clone(),
                state: CaseState::Open as i32,
                steps: o.steps.clone(),
                opened_by: o.opened_by.clone(),
                purpose: o.purpose.clone(),
                opened_at: stamp,
                ..Default::default()
            };
        }
        E::StepOpened(o) => open_step(&mut case, &o.step_id, o.due_on, &o.task_id, stamp),
        E::StepReopened(o) => open_step(&mut case, &o.step_id, o.due_on, &o.task_id, stamp),
        E::StepCompleted(c) => {
            if let Some(i) = find(&mut case, &c.step_id) {
                let s = &mut case.steps[i];
                s.set_state(StepState::Done);
                s.done_at = stamp;
                s.duration_ms = millis_since(s.opened_at.as_ref(), at);
                s.rejection.clear();
                s.completed_by = c.by.clone().map(|by| match by {
                    proto::step_completed::By::Record(r) => step::CompletedBy::Record(r),
                    proto::step_completed::By::Task(t) => step::CompletedBy::Task(t),
                });
            }
            settle_waiting(&mut case);
        }
        E::StepRejected(r) => {
            if let Some(i) = find(&mut case, &r.step_id) {
                case.steps[i].set_state(StepState::Rejected);
                case.steps[i].rejection.clone_from(&r.reason);
            }
            settle_waiting(&mut case);
        }
        E::StepPulledBack(b) => {
            if let Some(i) = find(&mut case, &b.step_id) {
                let s = &mut case.steps[i];
                s.set_state(StepState::Pending);
                (s.due_on, s.opened_at, s.done_at, s.completed_by) = (None, None, None, None);
                (s.duration_ms, s.overdue) = (0, false);
                s.rejection.clear();
                s.task_id.clear();
            }
            settle_waiting(&mut case);
        }
        E::StepOverdue(o) => {
            if let Some(i) = find(&mut case, &o.step_id) {
                case.steps[i].overdue = true;
            }
        }
        E::StepDropped(d) => {
            if let Some(i) = find(&mut case, &d.step_id) {
                case.steps[i].set_state(StepState::Dropped);
            }
        }
        E::Completed(_) => close(&mut case, CaseState::Completed, at),
        E::Cancelled(_) => {
            for s in &mut case.steps {
                if s.state() != StepState::Done {
                    s.set_state(StepState::Dropped);
                }
            }
            close(&mut case, CaseState::Cancelled, at);
        }
    }
    case
}

/// Step `step_id` open (again) as task `task_id`, due on `due_on`: what an earlier
/// opening or completion left is cleared.
fn open_step(
    case: &mut Case,
    step_id: &str,
    due_on: Option<proto::Date>,
    task_id: &str,
    opened_at: Option<prost_types::Timestamp>,
) {
    if let Some(s) = case.steps.iter_mut().find(|s| s.step_id == step_id) {
        s.set_state(StepState::Open);
        s.due_on = due_on;
        task_id.clone_into(&mut s.task_id);
        s.tasks_issued += 1;
        s.opened_at = opened_at;
        (s.done_at, s.completed_by, s.duration_ms, s.overdue) = (None, None, 0, false);
    }
}

/// NEEDS_ACTION while a step is rejected, naming each; OPEN again once none is.
fn settle_waiting(case: &mut Case) {
    let waiting: Vec<String> = case
        .steps
        .iter()
        .filter(|s| s.state() == StepState::Rejected)
        .map(|s| {
            format!(
                "{} ({}): {}",
                s.step_id,
                agency_slug(s.agency()),
                s.rejection
            )
        })
        .collect();
    case.waiting_for = waiting.join("; ");
    case.set_state(if waiting.is_empty() {
        CaseState::Open
    } else {
        CaseState::NeedsAction
    });
}

fn close(case: &mut Case, state: CaseState, at: SystemTime) {
    case.set_state(state);
    case.waiting_for.clear();
    case.closed_at = Some(at.into());
    case.duration_ms = millis_since(case.opened_at.as_ref(), at);
}

fn is_closed(case: &Case) -> bool {
    matches!(case.state(), CaseState::Completed | CaseState::Cancelled)
}

fn predecessors_done(case: &Case, step: &Step) -> bool {
    step.after.iter().all(|id| {
        case.steps
            .iter()
            .any(|s| s.step_id == *id && s.state() == StepState::Done)
    })
}

/// The step whose current task is `task_id`, if `agency` may act on it.
fn task_step<'c>(case: &'c Case, task_id: &str, agency: Agency) -> Result<&'c Step, Refusal> {
    let step = case
        .steps
        .iter()
        .find(|s| {
            !s.task_id.is_empty()
                && s.task_id == task_id
                && matches!(
                    s.state(),
                    StepState::Open | StepState::Rejected | StepState::Done
                )
        })
        .ok_or(Refusal::NoSuchTask)?;
    if step.agency() != agency {
        return Err(Refusal::WrongAgency {
            owner: agency_slug(step.agency()),
            caller: agency_slug(agency),
        });
    }
    Ok(step)
}

/// The id of the task a step opens with now: the case, the step and how many tasks it
/// had, so a reopened step's task is a new one. (A view stored before steps counted
/// their tasks counts 0: its current task's number is the count then.)
fn task_id(case_id: &str, step: &Step) -> String {
    let current = step
        .task_id
        .rsplit_once('.')
        .and_then(|(_, n)| n.parse::<u32>().ok())
        .unwrap_or(0);
    let issued = step.tasks_issued.max(current);
    format!("{case_id}/{}.{}", step.step_id, issued + 1)
}

fn millis_since(from: Option<&prost_types::Timestamp>, to: SystemTime) -> i64 {
    from.and_then(|t| SystemTime::try_from(*t).ok())
        .and_then(|from| to.duration_since(from).ok())
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(i64::MAX))
}

fn wire(date: CivilDate) -> proto::Date {
    proto::Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

fn civil(date: &proto::Date) -> Option<CivilDate> {
    CivilDate::new(
        date.year,
        u32::try_from(date.month).ok()?,
        u32::try_from(date.day).ok()?,
    )
    .ok()
}

#[cfg(test)]
#[path = "case_tests.rs"]
mod tests;
