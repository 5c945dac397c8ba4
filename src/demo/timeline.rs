//! A case followed as the citizen's window would follow it: its events from `WatchCase`,
//! each stamped with when it arrived, so the demo can say how long govlink took from an
//! agency's action to the case moving on, and print the case's timeline at the end.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::Cases;
use crate::cases::plan::step_name;
use crate::proto::{
    self, Agency, Case, CaseEvent, Date, StepKind, case_event::Body, step_completed::By,
};
use crate::records::agency_slug;
/// The longest the demo waits for a case to move on after an agency acted.
const PATIENCE: Duration = Duration::from_secs(30);

/// Events received so far, with when each arrived.
type Received = Arc<Mutex<Vec<(Instant, CaseEvent)>>>;

/// A case being watched.
pub(super) struct Timeline {
    /// When the case was asked for: the zero of every time printed.
    started: Instant,
    received: Received,
    arrived: Arc<Notify>,
    watching: JoinHandle<()>,
    /// What govlink added after each agency action: (what, how long).
    added: Vec<(String, Duration)>,
}

impl Timeline {
    /// Watches `case_id` from its first event; `started` is when it was asked for.
    pub(super) async fn follow(
        cases: &mut Cases,
        case_id: &str,
        started: Instant,
    ) -> anyhow::Result<Timeline> {
        let mut stream = cases
            .watch_case(proto::WatchCaseRequest {
                case_id: case_id.to_owned(),
                after_sequence: 0,
            })
            .await?
            .into_inner();
        let received: Received = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (events, notify) = (Arc::clone(&received), Arc::clone(&arrived));
        let watching = tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                let mut events = events.lock().expect("timeline lock");
                events.push((Instant::now(), event));
                notify.notify_waiters();
            }
        });
        Ok(Timeline {
            started,
            received,
            arrived,
            watching,
            added: Vec::new(),
        })
    }

    /// Waits for the first event `wanted` says is the one; when it arrived.
    pub(super) async fn until(
        &self,
        what: &str,
        wanted: impl Fn(&Body) -> bool,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // Registered before looking, so an event arriving in between is not missed.
            let arrival = self.arrived.notified();
            let found = {
                let events = self.received.lock().expect("timeline lock");
                events
                    .iter()
                    .find(|(_, e)| e.body.as_ref().is_some_and(&wanted))
                    .map(|(at, _)| *at)
            };
            if let Some(at) = found {
                return Ok(at);
            }
            if timeout_at(deadline, arrival).await.is_err() {
                anyhow::bail!(
                    "demo check failed: the case never showed {what} within {PATIENCE:?}"
                );
            }
        }
    }

    /// Waits until step `kind` is done; says how long after `acted` (when an agency
    /// started the action that should complete it) the case showed it, and keeps that
    /// as time govlink added.
    pub(super) async fn step_done(
        &mut self,
        kind: StepKind,
        acted: Instant,
    ) -> anyhow::Result<Duration> {
        let id = step_name(kind);
        let at = self
            .until(
                &format!("{id} done"),
                |b| matches!(b, Body::StepCompleted(c) if c.step_id == id),
            )
            .await?;
        let took = at.saturating_duration_since(acted);
        self.added.push((id, took));
        Ok(took)
    }

    /// The case's timeline: each event with its time since the case was asked for, then
    /// each step's working-day allowance against the time it took, and the time govlink
    /// added between the agencies' actions and the case moving on.
    pub(super) fn print(&self, case: &Case, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
        let events = self.received.lock().expect("timeline lock");
        for (at, event) in events.iter() {
            let Some(body) = &event.body else { continue };
            let since = at.saturating_duration_since(self.started).as_secs_f64();
            writeln!(
                out,
                "   {since:>7.2}s  #{:<2} {}",
                event.sequence,
                describe(body)
            )?;
        }
        writeln!(out, "   Each step's deadline, and what it took:")?;
        for s in &case.steps {
            let agency = agency_slug(s.agency());
            let took = Duration::from_millis(u64::try_from(s.duration_ms).unwrap_or(0));
            let due = s
                .due_on
                .as_ref()
                .map_or_else(|| "never opened".to_owned(), |d| format!("due {}", day(d)));
            writeln!(
                out,
                "     {:<32} {agency:<16} {:>2} working days ({due}); done in {:.2}s",
                s.step_id,
                s.working_days,
                took.as_secs_f64()
            )?;
        }
        let total: Duration = self.added.iter().map(|(_, d)| *d).sum();
        let parts: Vec<String> = self
            .added
            .iter()
            .map(|(step, d)| format!("{step} {:.2}s", d.as_secs_f64()))
            .collect();
        writeln!(
            out,
            "   Time govlink added between the agencies' actions and the case moving on: \
             {:.2}s in all ({}).",
            total.as_secs_f64(),
            parts.join(", ")
        )?;
        Ok(())
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.watching.abort();
    }
}

/// An event in a few words.
fn describe(body: &Body) -> String {
    match body {
        Body::Opened(o) => format!(
            "opened by {} for {}, {} steps planned",
            o.opened_by,
            o.purpose,
            o.steps.len()
        ),
        Body::StepOpened(o) => format!(
            "{} opened, due {} (task {})",
            o.step_id,
            o.due_on.as_ref().map_or_else(String::new, day),
            o.task_id
        ),
        Body::StepCompleted(c) => match &c.by {
            Some(By::Record(r)) if r.record_key.is_empty() => {
                format!("{} done: {}", c.step_id, r.absence)
            }
            Some(By::Record(r)) => format!(
                "{} done by the record {} version {}",
                c.step_id, r.record_key, r.version
            ),
            Some(By::Task(t)) => {
                format!("{} done by its task, outcome \"{}\"", c.step_id, t.outcome)
            }
            None => format!("{} done", c.step_id),
        },
        Body::StepRejected(r) => format!("{} rejected: {}", r.step_id, r.reason),
        Body::StepOverdue(o) => format!("{} overdue", o.step_id),
        Body::StepDropped(d) => format!("{} dropped: {}", d.step_id, d.reason),
        Body::StepReopened(r) => format!("{} reopened: {}", r.step_id, r.reason),
        Body::StepPulledBack(b) if b.withdrawn_task_id.is_empty() => {
            format!("{} back to pending: {}", b.step_id, b.reason)
        }
        Body::StepPulledBack(b) => format!(
            "{} back to pending: {} (task {} withdrawn)",
            b.step_id, b.reason, b.withdrawn_task_id
        ),
        Body::Completed(_) => "case completed".into(),
        Body::Cancelled(c) => format!("case cancelled: {}", c.reason),
    }
}

/// A date as `YYYY-MM-DD`.
fn day(d: &Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

/// Each step of `case` with its agency, state and deadline, one line each.
pub(super) fn plan(case: &Case, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    for s in &case.steps {
        let state = s
            .state()
            .as_str_name()
            .trim_start_matches("STEP_STATE_")
            .to_ascii_lowercase();
        let when = match &s.due_on {
            Some(d) => format!("due {} ({} working days)", day(d), s.working_days),
            None => format!("{} working days once it opens", s.working_days),
        };
        writeln!(
            out,
            "   - {:<32} {:<16} {state:<8} {when}",
            s.step_id,
            agency_slug(Agency::try_from(s.agency).unwrap_or(Agency::Unspecified)),
        )?;
    }
    Ok(())
}
