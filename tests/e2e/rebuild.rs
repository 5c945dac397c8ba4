//! `govlink rebuild`: the store is cleared and rebuilt from the topics while a resolver
//! keeps running; what the store held that the topics do not say is gone afterwards.

use govlink::proto::{GetRecordRequest, Position};
use redis::AsyncCommands;

use crate::helpers::*;

async fn version(app: &TestApp, id: &str, after: &[Position]) -> u64 {
    let mut request = tonic::Request::new(GetRecordRequest {
        record_key: format!("public-security/household_registration/{id}"),
        min_positions: after.to_vec(),
    });
    request.set_timeout(std::time::Duration::from_secs(30));
    app.resolver_as("public-security/records", None)
        .get_record(request)
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .version
}

#[tokio::test]
async fn govlink_rebuild_clears_the_store_and_rebuilds_it_with_the_running_resolver() {
    let app = spawn_app().await;
    let mut after = Vec::new();
    for (id, v) in [("h-1", 3), ("h-2", 1), ("h-1", 2), ("h-3", 5)] {
        after.push(publish_household_at(&app, id, v).await);
    }
    assert_eq!(version(&app, "h-1", &after).await, 3);
    let before = generation(&app.settings.redis_prefix).await;

    // Something the topics do not say: a version nobody published.
    let prefix = &app.settings.redis_prefix;
    let mut redis = redis().await;
    let _: () = redis
        .set(
            format!("{prefix}rec:household_registration:h-2"),
            format!("b99p:{}\t", alice()),
        )
        .await
        .unwrap();

    let output = govlink_command(&app.settings, "rebuild")
        .output()
        .expect("govlink rebuild runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("rebuilt the record store: "), "{stdout}");
    assert!(stdout.contains(" events from "), "{stdout}");
    let after_rebuild = generation(prefix).await;
    assert_ne!(after_rebuild, before, "a new generation");

    // The running resolver joined the new generation: what it answers comes from the
    // topics, and new publishes still reach it.
    assert_eq!(
        version(&app, "h-2", &after).await,
        1,
        "the foreign version is gone"
    );
    assert_eq!(version(&app, "h-1", &after).await, 3);
    let later = publish_household_at(&app, "h-3", 6).await;
    assert_eq!(version(&app, "h-3", &[later]).await, 6);
    app.stop().await;
}
