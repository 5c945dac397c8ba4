//! Resolver processes killed with SIGKILL in the middle of materializing.

use std::time::Duration;

use govlink::app::Role;
use govlink::proto::Agency;

use super::*;

/// How many publishes run at once here: one. A resolver that takes over resumes from
/// its group's committed offset, and Tansu 0.6.0 cannot serve a fetch that starts inside
/// a multi-record producer batch; one publish at a time keeps every producer batch at one
/// record. (Apache Kafka serves such fetches; concurrency does not matter there.)
const CONCURRENCY: usize = 1;

/// Settings whose materializer writes small batches, so a kill lands mid-stream.
fn small_batches() -> govlink::config::Settings {
    govlink::config::Settings {
        materializer_batch: 20,
        ..test_settings()
    }
}

#[tokio::test]
async fn a_resolver_killed_mid_batch_and_restarted_loses_nothing() {
    let settings = small_batches();
    let adapter = spawn_app_with(settings.clone(), Role::Adapter(Agency::PublicSecurity)).await;
    let mut resolver = Process::start(&settings, "resolver").await;
    let mut rng = Rng::seeded();
    let ops = stream(&mut rng, 60, 600);
    let mut model = Model::default();
    let redis = redis_url();
    let killer = async {
        wait_materialized(&redis, &settings.redis_prefix, 100).await;
        resolver.kill();
    };
    tokio::join!(
        publish_all(&adapter.channel, &ops, CONCURRENCY, &mut model),
        killer
    );
    // Tansu 0.6.0 drops a dead member only when another joins after the dead one's
    // session expired (Apache Kafka drops it on its own): restart like a supervisor
    // with a back-off past the session timeout.
    tokio::time::sleep(SESSION_EXPIRY).await;
    let resolver = Process::start(&settings, "resolver").await;
    let report = check(
        &resolver.channel_as("public-security/records").await,
        &model,
        Duration::from_secs(60),
    )
    .await;
    conclude("resolver SIGKILL", &model, &report);
    adapter.stop().await;
}

#[tokio::test]
async fn two_resolvers_share_the_work_and_one_takes_over_when_the_other_is_killed() {
    let settings = small_batches();
    let adapter = spawn_app_with(settings.clone(), Role::Adapter(Agency::PublicSecurity)).await;
    let mut first = Process::start(&settings, "resolver").await;
    let second = Process::start(&settings, "resolver").await;
    let mut rng = Rng::seeded();
    let ops = stream(&mut rng, 60, 600);
    let mut model = Model::default();
    let redis = redis_url();
    let killer = async {
        wait_materialized(&redis, &settings.redis_prefix, 150).await;
        first.kill();
    };
    tokio::join!(
        publish_all(&adapter.channel, &ops, CONCURRENCY, &mut model),
        killer
    );
    // The survivor gets the dead one's partitions at the next rebalance. Apache Kafka
    // starts it when the dead member's session expires; Tansu 0.6.0 only when another
    // member joins after that, so a replacement joins (as a supervisor would start one).
    tokio::time::sleep(SESSION_EXPIRY).await;
    let _replacement = Process::start(&settings, "resolver").await;
    let report = check(
        &second.channel_as("public-security/records").await,
        &model,
        Duration::from_secs(90),
    )
    .await;
    conclude("two resolvers, one SIGKILLed", &model, &report);
    adapter.stop().await;
}
