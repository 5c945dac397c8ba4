//! The resolver's part of a process: the record store, the materializer, read-your-writes
//! positions, the lookups with their policy and audit trail, and (with a case store) the
//! record bridge and, in `dev`, the case engine.

use super::*;

/// The resolver: its store, materializer, read-your-writes view and lookups.
pub(super) async fn resolver(
    parts: &mut Parts,
    settings: &Settings,
    role: Role,
    kafka: &Kafka,
    publisher: &Publisher,
) -> Result<Store, AppError> {
    let store = record_store(settings, role).await?;
    let positions = Positions::growing(
        store.clone(),
        kafka.partitions.clone(),
        kafka.brokers.clone(),
    );
    let materializer = Materializer::new(
        materializer_config(settings, kafka),
        store.clone(),
        kafka.topics.clone(),
        publisher.clone(),
        positions.clone(),
        parts.telemetry.clone(),
    );
    parts.readiness = Some((
        <ResolverServer<ResolverService> as NamedService>::NAME,
        materializer.readiness(),
    ));
    let (changes, ready) = (materializer.subscribe(), materializer.readiness());
    parts.supervise("materializer", move |stop| async move {
        materializer.run(stop).await.map_err(|e| e.to_string())
    });
    let poller = positions.clone();
    parts.supervise("position poller", move |stop| async move {
        poller.poll(stop).await;
        Ok(())
    });
    let (mut queries, policy, audit) =
        queries(parts, settings, role, kafka, publisher, &store, &positions).await?;
    let case_store = match settings.redis_link() {
        Some(link) => Some(cases::connect(&link, settings).await?),
        // Without Redis, `dev` (and `demo`) keep their cases in memory, like their records.
        None if role == Role::Dev => Some(CaseStore::Memory(MemoryCaseStore::new())),
        None => None,
    };
    parts.case_store.clone_from(&case_store);
    if let Some(case_store) = case_store {
        // The open objections the cases keep: lookups say which records are disputed.
        queries = queries.with_disputes(std::sync::Arc::new(case_store.clone()));
        cases::bridge(parts, kafka, publisher, case_store.clone(), changes, ready);
        if role == Role::Dev {
            let inputs = cases::CaseInputs {
                records: store.clone(),
                positions: positions.clone(),
                policy,
                audit,
            };
            cases::engine_and_services(parts, settings, kafka, publisher, case_store, inputs)?;
        }
    }
    let service = ResolverService::new(
        queries,
        settings.request_timeout(),
        crate::limits::Rate::new(settings.lookup_rate_per_requester, settings.lookup_burst),
        parts.telemetry.clone(),
        parts.streams.clone(),
    );
    let source = parts.source;
    serve!(
        parts,
        ResolverServer::with_interceptor(service, move |request| source.identify(request))
    );
    Ok(store)
}

/// The record store: Redis when configured, else (`dev`, `demo` only) in memory.
async fn record_store(settings: &Settings, role: Role) -> Result<Store, AppError> {
    Ok(match (settings.redis_link(), role) {
        (Some(link), _) => {
            tracing::info!(redis = %link, "using redis");
            Store::Redis(RedisStore::connect(&link, &settings.redis_prefix).await?)
        }
        (None, Role::Dev) => Store::Memory(MemoryStore::new()),
        (None, _) => {
            return Err(AppError::Config(
                "no Redis configured: set --redis or GOVLINK_REDIS".into(),
            ));
        }
    })
}

/// The cross-agency lookups: the policy, the audit trail (its writer and checkpoints)
/// and the per-person access index materialized from it.
async fn queries(
    parts: &mut Parts,
    settings: &Settings,
    role: Role,
    kafka: &Kafka,
    publisher: &Publisher,
    store: &Store,
    positions: &Positions,
) -> Result<(Queries, std::sync::Arc<Policy>, AuditLog), AppError> {
    let policy = load_policy(settings, role)?;
    let audit = parts
        .audit_log(settings, kafka, publisher, "resolver")
        .await?;
    let index = match settings.redis_link() {
        Some(link) => AccessIndex::redis(&link, &settings.redis_prefix).await?,
        None => AccessIndex::memory(),
    };
    let trust = ChainTrust::of_tls(
        settings
            .tls_files()
            .map_err(|e| AppError::Config(e.to_string()))?
            .as_ref(),
    )
    .map_err(|e| AppError::Config(format!("access index: {e}")))?;
    let config = IndexerConfig {
        brokers: kafka.brokers.clone(),
        group_prefix: settings.consumer_group.clone(),
        retention: settings.access_retention(),
        trust,
    };
    let indexer = AccessIndexer::new(
        config,
        &kafka.topics,
        index.clone(),
        store.clone(),
        parts.telemetry.clone(),
    );
    parts.supervise("access indexer", move |stop| indexer.run(stop));
    let policy = std::sync::Arc::new(policy);
    let queries = Queries::new(
        store.clone(),
        positions.clone(),
        policy.clone(),
        audit.clone(),
        index,
        settings.purchase_rules.clone(),
        settings.access_retention(),
    )
    .with_loan_rule(settings.provident_fund_loan.clone());
    Ok((queries, policy, audit))
}

/// The access policy: the configured file, or in `dev` the example one.
pub(super) fn load_policy(settings: &Settings, role: Role) -> Result<Policy, AppError> {
    Ok(match (&settings.policy, role) {
        (Some(path), _) => {
            Policy::load(std::path::Path::new(path)).map_err(|e| match e.line() {
                Some(_) => AppError::Config(format!("policy {path}: {e}")),
                None => AppError::Config(e.to_string()),
            })?
        }
        (None, Role::Dev) => {
            tracing::info!("using the example access policy (deploy/policy.toml)");
            Policy::parse(EXAMPLE_POLICY)
                .map_err(|e| AppError::Config(format!("built-in policy: {e}")))?
        }
        (None, _) => {
            return Err(AppError::Config(
                "no access policy configured: set policy (GOVLINK_POLICY or --policy) to a \
                 policy file such as deploy/policy.toml"
                    .into(),
            ));
        }
    })
}

/// The example policy `dev` and `demo` use when none is configured.
const EXAMPLE_POLICY: &str = include_str!("../../deploy/policy.toml");

/// How this deployment's materializers consume.
pub(crate) fn materializer_config(settings: &Settings, kafka: &Kafka) -> MaterializerConfig {
    MaterializerConfig {
        brokers: kafka.brokers.clone(),
        group_id: settings.consumer_group.clone(),
        source: format!("{}|{}", settings.topic_prefix, settings.consumer_group),
        batch_size: settings.materializer_batch,
        linger: Duration::from_millis(settings.materializer_linger_ms),
    }
}
