//! The case engine's part of a process: the engine and the `Cases`, `Tasks` and
//! `Objections` services
//! (`cases`, and `dev` with Redis), and the bridge from the materializer's record changes
//! to the cases they concern (wherever a materializer runs with Redis).

use super::*;
use crate::cases::store::CaseStore;
use crate::cases::{
    bridge::RecordBridge, calendar::WorkCalendar, engine, objections::ObjectionsService,
    service::CasesService, service::Shared, tasks::TasksService,
};

/// What the case engine reads besides its own store.
pub(super) struct CaseInputs {
    /// The records its plans read.
    pub(super) records: Store,
    /// How far `records` has materialized: an opening waits for the caller's publishes.
    pub(super) positions: Positions,
    /// Who may open and read which cases.
    pub(super) policy: std::sync::Arc<Policy>,
    /// The trail every case action is recorded in.
    pub(super) audit: AuditLog,
}

/// The case store under the deployment's Redis prefix.
pub(super) async fn connect(link: &RedisLink, settings: &Settings) -> Result<CaseStore, AppError> {
    Ok(CaseStore::connect(link, &settings.redis_prefix).await?)
}

/// `govlink cases`: the engine and the services, reading the records the resolvers keep.
pub(super) async fn standalone(
    parts: &mut Parts,
    settings: &Settings,
    kafka: &Kafka,
    publisher: &Publisher,
) -> Result<(), AppError> {
    let link = settings.redis_link().ok_or_else(|| {
        AppError::Config(
            "the case engine keeps cases in Redis: set --redis or GOVLINK_REDIS".into(),
        )
    })?;
    let audit = parts.audit_log(settings, kafka, publisher, "cases").await?;
    let records = Store::Redis(RedisStore::connect(&link, &settings.redis_prefix).await?);
    // The resolvers materialize; this process only reads how far they got.
    let positions = Positions::growing(
        records.clone(),
        kafka.partitions.clone(),
        kafka.brokers.clone(),
    );
    let poller = positions.clone();
    parts.supervise("position poller", move |stop| async move {
        poller.poll(stop).await;
        Ok(())
    });
    let inputs = CaseInputs {
        records,
        positions,
        policy: std::sync::Arc::new(load_policy(settings, Role::Cases)?),
        audit,
    };
    let case_store = connect(&link, settings).await?;
    parts.case_store = Some(case_store.clone());
    engine_and_services(parts, settings, kafka, publisher, case_store, inputs)
}

/// Record changes the materializer applied, sent on to the cases they concern.
pub(super) fn bridge(
    parts: &mut Parts,
    kafka: &Kafka,
    publisher: &Publisher,
    case_store: CaseStore,
    changes: tokio::sync::broadcast::Receiver<crate::resolver::AppliedChange>,
    ready: tokio::sync::watch::Receiver<bool>,
) {
    let bridge = RecordBridge::new(
        changes,
        ready,
        case_store,
        publisher.clone(),
        kafka.topics.clone(),
    );
    parts.supervise("record changes to cases", move |stop| bridge.run(stop));
}

/// The case engine and the `Cases`, `Tasks` and `Objections` services.
pub(super) fn engine_and_services(
    parts: &mut Parts,
    settings: &Settings,
    kafka: &Kafka,
    publisher: &Publisher,
    case_store: CaseStore,
    inputs: CaseInputs,
) -> Result<(), AppError> {
    let CaseInputs {
        records,
        positions,
        policy,
        audit,
    } = inputs;
    run_engine(
        parts,
        settings,
        kafka,
        publisher,
        &case_store,
        records.clone(),
    )?;
    // Case and task calls are charged to the requester at the lookup rate, in one bucket
    // per requester for both services of this process, which also bound its streams.
    let admission = crate::cases::admission::Admission::new(crate::limits::Rate::new(
        settings.lookup_rate_per_requester,
        settings.lookup_burst,
    ));
    let shared = Shared {
        cases: case_store,
        publisher: publisher.clone(),
        topics: kafka.topics.clone(),
        policy,
        audit,
        telemetry: parts.telemetry.clone(),
        admission,
        max_wait: settings.request_timeout(),
        stop: parts.streams.clone(),
    };
    let tasks = TasksService::new(shared.clone());
    let objections = ObjectionsService::new(shared.clone(), positions.clone(), records);
    let service = CasesService::new(shared, positions);
    let source = parts.source;
    serve!(
        parts,
        crate::proto::tasks_server::TasksServer::with_interceptor(tasks, move |request| {
            source.identify(request)
        })
    );
    serve!(
        parts,
        crate::proto::objections_server::ObjectionsServer::with_interceptor(
            objections,
            move |request| source.identify(request)
        )
    );
    serve!(
        parts,
        crate::proto::cases_server::CasesServer::with_interceptor(service, move |request| {
            source.identify(request)
        })
    );
    Ok(())
}

/// Runs the case engine and its companions under supervision: the engine applying case
/// commands and record changes, the relisting of older stores' lists, and the deadline
/// checks.
fn run_engine(
    parts: &mut Parts,
    settings: &Settings,
    kafka: &Kafka,
    publisher: &Publisher,
    case_store: &CaseStore,
    records: Store,
) -> Result<(), AppError> {
    let calendar = calendar(settings)?;
    let engine = engine::Engine::new(
        engine::EngineConfig {
            brokers: kafka.brokers.clone(),
            group_id: crate::kafka::Groups::new(settings.consumer_group.clone()).case_engine(),
            topics: kafka.topics.clone(),
            working_days: settings
                .working_days()
                .map_err(|e| AppError::Config(e.to_string()))?,
        },
        case_store.clone(),
        records,
        publisher.clone(),
        calendar,
        parts.telemetry.clone(),
    );
    parts.supervise("case engine", move |stop| async move {
        engine.run(stop).await.map_err(|e| e.to_string())
    });
    let relisted = case_store.clone();
    parts.supervise("case lists", move |stop| {
        crate::cases::relist::run(relisted, stop)
    });
    let (clock, every) = (case_store.clone(), settings.case_deadline_check());
    let (sender, topics) = (publisher.clone(), kafka.topics.clone());
    parts.supervise("case deadlines", move |stop| {
        crate::cases::deadlines::run(clock, sender, topics, every, stop)
    });
    Ok(())
}

/// The working-day calendar: the configured file, or the built-in one; a calendar that
/// does not list this year's holidays is warned about.
fn calendar(settings: &Settings) -> Result<WorkCalendar, AppError> {
    let calendar = match &settings.calendar {
        Some(path) => WorkCalendar::load(std::path::Path::new(path))
            .map_err(|e| AppError::Config(e.to_string()))?,
        None => WorkCalendar::embedded()
            .map_err(|e| AppError::Config(format!("built-in calendar: {e}")))?,
    };
    let this_year = crate::domain::CivilDate::today_in_china().year();
    if !calendar.covers(this_year) {
        tracing::warn!(
            year = this_year,
            "the working-day calendar does not list this year's holidays: only weekends \
             count as rest days until it does"
        );
    }
    Ok(calendar)
}
