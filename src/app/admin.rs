//! The admin HTTP server of a process: bound at build time (so tests learn its port),
//! fed by what the roles put in `Parts`.

use super::*;
use crate::admin::AdminServer;
use crate::admin::sample::Sources;

/// What a process is, as the status page names it.
fn role_name(role: Role) -> String {
    match role {
        Role::Adapter(agency) => format!("adapter {}", crate::records::agency_slug(agency)),
        Role::Resolver => "resolver".into(),
        Role::Cases => "cases".into(),
        Role::Dev => "dev".into(),
    }
}

/// The admin server of a process of `role`, unless `admin_addr` turns it off.
pub(super) async fn bind(
    settings: &Settings,
    role: Role,
    parts: &Parts,
    kafka: &Kafka,
    publisher: &Publisher,
    store: Option<&Store>,
) -> Result<Option<AdminServer>, AppError> {
    let Some(addr) = settings
        .admin_addr()
        .map_err(|e| AppError::Config(e.to_string()))?
    else {
        return Ok(None);
    };
    // Redis is checked where the role uses it.
    let uses_redis = !matches!(role, Role::Adapter(_));
    // A connection of its own: the admin reads must not queue behind the materializer's
    // writes (a Redis that answers reads but blocks writes is a lag, not an outage).
    let store = match (store, settings.redis_link()) {
        (Some(Store::Redis(_)), Some(link)) => Some(Store::Redis(
            RedisStore::connect(&link, &settings.redis_prefix).await?,
        )),
        (store, _) => store.cloned(),
    };
    let sources = Sources {
        telemetry: parts.telemetry.clone(),
        broker: std::sync::Arc::new(crate::admin::sample::broker_client(&kafka.brokers)?),
        topics: kafka.topics.all(),
        record_topics: kafka.topics.all_records(),
        publisher: publisher.clone(),
        store,
        materialized: parts.readiness.as_ref().map(|(_, ready)| ready.clone()),
        redis: settings.redis_link().filter(|_| uses_redis),
        cases: parts.case_store.clone(),
        max_lag: i64::try_from(settings.ready_max_lag_events).unwrap_or(i64::MAX),
    };
    let server = AdminServer::bind(addr, role_name(role), sources)
        .await
        .map_err(|e| AppError::Config(format!("admin_addr {addr}: {e}")))?;
    Ok(Some(server))
}
