//! The case engine: a member of the consumer group on `govlink.case-commands.v1`, so each
//! case has one writer at a time (the owner of its partition), applying its commands in
//! order. For each command: publish what an earlier attempt left in the case's outbox,
//! read the records the case depends on, decide, commit view and outbox together
//! (compare-and-set), publish the events to `govlink.cases.v1` and the tasks they open to
//! `govlink.tasks.<agency>.v1`, empty the outbox, and only then store the command's
//! offset. Redelivered commands change nothing (see `case.rs`).

use std::time::{Duration, SystemTime};

use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::calendar::WorkCalendar;
use super::case::{self, Context};
use super::plan;
use super::plan::WorkingDays;
use super::store::{CaseStore, CaseStoreError, StoredCase};
use crate::domain::CivilDate;
use crate::kafka::{PublishError, Publisher, Topics, at_least_once_consumer};
use crate::proto::{self, Case, CaseCommand, CaseEvent, RecordEvent, case_event};
use crate::resolver::store::{Store, StoreError, SubjectRead};
use crate::telemetry::events::{CaseChange, CaseChanged, RedisFailed};
use crate::telemetry::metrics::Telemetry;

/// How long a publish of the engine's events may take before the command is retried.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// The first wait before retrying a command that failed for a transient reason.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How the engine consumes.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The brokers and how to reach them.
    pub brokers: crate::kafka::Brokers,
    /// The consumer group the engines share.
    pub group_id: String,
    /// Topic names.
    pub topics: Topics,
    /// Working days each step kind allows.
    pub working_days: WorkingDays,
}

/// Why a command could not be applied now; it is tried again.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The case store failed.
    #[error(transparent)]
    Cases(#[from] CaseStoreError),
    /// The record store could not answer (unreachable, or rebuilding).
    #[error("record store: {0}")]
    Records(#[from] StoreError),
    /// The broker did not take an event or a task.
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
    /// The consumer failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// One case engine, not yet running.
pub struct Engine {
    config: EngineConfig,
    cases: CaseStore,
    records: Store,
    publisher: Publisher,
    calendar: WorkCalendar,
    /// Where cases opened, completed and cancelled are counted.
    telemetry: Telemetry,
}

impl Engine {
    /// An engine over these stores, publishing with `publisher`, counting in `telemetry`.
    pub fn new(
        config: EngineConfig,
        cases: CaseStore,
        records: Store,
        publisher: Publisher,
        calendar: WorkCalendar,
        telemetry: Telemetry,
    ) -> Engine {
        Engine {
            config,
            cases,
            records,
            publisher,
            calendar,
            telemetry,
        }
    }

    /// Counts the cases `events` opened, completed or cancelled (`case` as they left it).
    fn count(&self, case: &Case, events: &[CaseEvent]) {
        for e in events {
            let change = match &e.body {
                Some(case_event::Body::Opened(_)) => CaseChange::Opened,
                Some(case_event::Body::Completed(_)) => CaseChange::Completed(
                    Duration::from_millis(u64::try_from(case.duration_ms).unwrap_or(0)),
                ),
                Some(case_event::Body::Cancelled(_)) => CaseChange::Cancelled,
                _ => continue,
            };
            self.telemetry.emit(CaseChanged {
                case_id: &case.case_id,
                kind: case.kind(),
                change,
            });
        }
    }

    /// Applies commands until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EngineError> {
        let consumer: StreamConsumer =
            at_least_once_consumer(&self.config.brokers, "govlink-cases", &self.config.group_id)
                .create()?;
        consumer.subscribe(&[self.config.topics.case_commands().as_str()])?;
        tracing::info!(group = self.config.group_id, "case engine started");
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                m = consumer.recv() => m,
            };
            let message = match message {
                Ok(m) => m.detach(),
                Err(e) => {
                    tracing::warn!(error = %e, "consume error");
                    sleep(FIRST_BACKOFF).await;
                    continue;
                }
            };
            match message.payload().map(CaseCommand::decode) {
                Some(Ok(command)) => {
                    if !self.apply_until_done(&command, &shutdown).await {
                        break;
                    }
                }
                // Nothing can ever apply it; skipping it loses nothing a case had.
                _ => tracing::error!(
                    partition = message.partition(),
                    offset = message.offset(),
                    "not a case command; skipped"
                ),
            }
            let mut offsets = TopicPartitionList::new();
            offsets.add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )?;
            if let Err(e) = consumer.store_offsets(&offsets) {
                tracing::info!(error = %e, "offset not stored (partition revoked?)");
            }
        }
        tracing::info!("case engine stopped");
        Ok(())
    }

    /// Applies `command`, retrying transient failures; false on shutdown.
    async fn apply_until_done(&self, command: &CaseCommand, shutdown: &CancellationToken) -> bool {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.apply(command).await {
                Ok(()) => return true,
                Err(e) => {
                    // Redis failing is counted (and logged) as such; the rest is logged here.
                    let redis = match &e {
                        EngineError::Cases(CaseStoreError::Redis(_)) => true,
                        EngineError::Records(store) => !matches!(store, StoreError::NotReady(_)),
                        _ => false,
                    };
                    if redis {
                        self.telemetry.emit(RedisFailed {
                            component: "cases",
                            error: &e,
                        });
                    } else {
                        tracing::warn!(error = %e, case_id = command.case_id, "command not applied yet; retrying");
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One attempt at `command`.
    pub async fn apply(&self, command: &CaseCommand) -> Result<(), EngineError> {
        loop {
            let StoredCase { case, outbox } = self.cases.load(&command.case_id).await?;
            self.publish(&command.case_id, case.as_ref(), &outbox)
                .await?;
            // A leftover outbox means a crash after an earlier commit, perhaps before
            // its indexing too: redo that (otherwise the commit below indexes).
            if let (Some(case), false) = (&case, outbox.is_empty()) {
                self.cases.index(case).await?;
            }
            let records = self.records_of(case.as_ref(), command).await?;
            let now = command
                .at
                .and_then(|t| SystemTime::try_from(t).ok())
                .unwrap_or_else(SystemTime::now);
            let cx = Context {
                now,
                today: CivilDate::in_china_at(unix_secs(now)),
                calendar: &self.calendar,
                records: &records,
                working_days: &self.config.working_days,
            };
            let bodies = match case::decide(case.as_ref(), command, &cx) {
                Ok(bodies) => bodies,
                Err(refusal) => {
                    tracing::warn!(case_id = command.case_id, %refusal, "command refused");
                    return Ok(());
                }
            };
            if bodies.is_empty() {
                return Ok(());
            }
            let events = case::number(case.as_ref(), command, bodies);
            let expected = case.as_ref().map_or(0, |c| c.sequence);
            let next = events.iter().fold(case, |c, e| Some(case::apply(c, e)));
            let Some(next) = next else { return Ok(()) };
            if self.cases.commit(expected, &next, &events).await? {
                self.count(&next, &events);
                self.cases.index(&next).await?;
                return self.publish(&command.case_id, Some(&next), &events).await;
            }
            // Another writer moved the case meanwhile: decide again on what it left.
        }
    }

    /// Publishes `events` of a case and the tasks they open, then takes them out of the
    /// outbox.
    async fn publish(
        &self,
        case_id: &str,
        case: Option<&Case>,
        events: &[CaseEvent],
    ) -> Result<(), EngineError> {
        if events.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + PUBLISH_TIMEOUT;
        let topic = self.config.topics.cases();
        let mut pending = Vec::new();
        for e in events {
            let bytes = e.encode_to_vec();
            pending.push(
                self.publisher
                    .enqueue(&topic, case_id.as_bytes(), &bytes, &[], deadline)
                    .await?,
            );
            for task in case.map(|c| tasks_of(c, e)).unwrap_or_default() {
                self.cases.add_task(&task).await?;
                let topic = self.config.topics.tasks(task.agency());
                let bytes = task.encode_to_vec();
                pending.push(
                    self.publisher
                        .enqueue(&topic, task.task_id.as_bytes(), &bytes, &[], deadline)
                        .await?,
                );
            }
        }
        for p in pending {
            p.ack(deadline).await?;
        }
        self.cases.published(case_id, events).await?;
        Ok(())
    }

    /// The current records of the case's subjects (the open command's, before it opens).
    async fn records_of(
        &self,
        case: Option<&Case>,
        command: &CaseCommand,
    ) -> Result<Vec<RecordEvent>, EngineError> {
        let params = match (case, &command.body) {
            (Some(c), _) => c.params.clone(),
            (None, Some(proto::case_command::Body::Open(open))) => open.params.clone(),
            (None, _) => None,
        };
        let reads: Vec<SubjectRead> = plan::reads(&params.unwrap_or_default())
            .into_iter()
            .map(|(subject, types)| SubjectRead {
                subject,
                types,
                contributions: false,
            })
            .collect();
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        for data in self.records.read_subjects(&reads).await? {
            for stored in &data.records {
                match stored.decode() {
                    Ok(event) => records.push(event),
                    Err(e) => {
                        tracing::error!(key = %stored.key, error = %e, "stored record does not decode")
                    }
                }
            }
        }
        Ok(records)
    }
}

/// What an event hands to agencies: the task of a step opened or reopened, or the
/// withdrawal of tasks no longer to be worked on (a step pulled back, a case cancelled).
fn tasks_of(case: &Case, event: &CaseEvent) -> Vec<proto::Task> {
    let step = |id: &str| case.steps.iter().find(|s| s.step_id == id);
    let withdrawal = |step: &proto::Step, task_id: &str, reason: &str| proto::Task {
        task_id: task_id.to_owned(),
        withdrawn: true,
        withdrawn_reason: reason.to_owned(),
        ..task_for(case, step)
    };
    let Some(body) = event.body.as_ref() else {
        return Vec::new();
    };
    let (step_id, task_id, due_on) = match body {
        case_event::Body::StepOpened(o) => (&o.step_id, &o.task_id, o.due_on),
        case_event::Body::StepReopened(o) => (&o.step_id, &o.task_id, o.due_on),
        case_event::Body::StepPulledBack(b) if !b.withdrawn_task_id.is_empty() => {
            let reason = format!("the step went back to pending: {}", b.reason);
            return step(&b.step_id)
                .map(|s| withdrawal(s, &b.withdrawn_task_id, &reason))
                .into_iter()
                .collect();
        }
        case_event::Body::Cancelled(c) => {
            let reason = format!("the case was cancelled: {}", c.reason);
            return case
                .steps
                .iter()
                .filter(|s| s.state() == proto::StepState::Dropped && !s.task_id.is_empty())
                .map(|s| withdrawal(s, &s.task_id, &reason))
                .collect();
        }
        _ => return Vec::new(),
    };
    step(step_id)
        .map(|s| proto::Task {
            task_id: task_id.clone(),
            due_on,
            ..task_for(case, s)
        })
        .into_iter()
        .collect()
}

/// The task of `step` of `case` as it stands (its current task id and due date).
pub(crate) fn task_for(case: &Case, step: &proto::Step) -> proto::Task {
    proto::Task {
        task_id: step.task_id.clone(),
        case_id: case.case_id.clone(),
        case_kind: case.kind,
        step_id: step.step_id.clone(),
        step_kind: step.kind,
        agency: step.agency,
        due_on: step.due_on,
        params: case.params.clone(),
        purpose: case.purpose.clone(),
        withdrawn: false,
        withdrawn_reason: String::new(),
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
