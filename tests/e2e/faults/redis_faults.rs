//! Redis flushed and Redis unreachable, each on a redis-server of the test's own.

use std::time::Duration;

use govlink::app::Role;
use govlink::proto::GetRecordRequest;
use tonic::Code;

use super::*;

/// Everything in one app on the test's own Redis, a stream of 600 publishes over 40
/// records, and an empty model.
async fn scenario_on(redis: &RedisServer) -> (TestApp, Vec<Op>, Model) {
    let settings = govlink::config::Settings {
        redis: Some(redis.url()),
        ..test_settings()
    };
    let app = spawn_app_with(settings, Role::Dev).await;
    (app, stream(&mut Rng::seeded(), 40, 600), Model::default())
}

#[tokio::test]
async fn a_flushed_store_is_detected_and_rebuilt_and_never_answers_a_wrong_not_found() {
    let redis = RedisServer::start().await;
    let (app, ops, mut model) = scenario_on(&redis).await;
    publish_all(&app.channel, &ops[..300], 16, &mut model).await;
    let before = check(&app.channel, &model, Duration::from_secs(30)).await;
    assert_eq!((before.lost, before.regressed), (0, 0));
    let known = model
        .acked
        .iter()
        .find(|(_, (_, deleted))| !deleted)
        .map(|(record, _)| *record)
        .expect("some record is live");

    redis.flushall().await;
    // Right after the flush: not a wrong NOT_FOUND, but UNAVAILABLE until rebuilt.
    let answer = app
        .resolver_as("public-security/records", None)
        .get_record(GetRecordRequest {
            record_key: record_key(known),
            min_positions: vec![],
        })
        .await;
    match answer {
        Err(s) => assert_eq!(s.code(), Code::Unavailable, "{s:?}"),
        // Only if the rebuild already finished (the store is back).
        Ok(r) => assert!(r.into_inner().record.is_some()),
    }
    publish_all(&app.channel, &ops[300..], 16, &mut model).await;
    let report = check(&app.channel, &model, Duration::from_secs(60)).await;
    conclude("redis flushed", &model, &report);
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_store_delays_materializing_but_loses_nothing() {
    let mut redis = RedisServer::start().await;
    let (app, ops, mut model) = scenario_on(&redis).await;
    publish_all(&app.channel, &ops[..200], 16, &mut model).await;

    redis.kill();
    publish_all(&app.channel, &ops[200..400], 16, &mut model).await;
    let mut request = tonic::Request::new(GetRecordRequest {
        record_key: record_key(0),
        min_positions: vec![],
    });
    request.set_timeout(Duration::from_secs(10));
    let status = app
        .resolver_as("public-security/records", None)
        .get_record(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart().await;

    publish_all(&app.channel, &ops[400..], 16, &mut model).await;
    let report = check(&app.channel, &model, Duration::from_secs(60)).await;
    conclude("redis unreachable", &model, &report);
    app.stop().await;
}

/// The case store's Redis dies (killed): GetCase, Tasks.Ack and a task stream answer
/// `UNAVAILABLE` naming the case store, and each failure is counted in
/// `govlink_redis_errors_total` as the case engine's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_store_that_died_answers_unavailable_and_each_failure_is_counted() {
    use govlink::proto::{AckTaskRequest, GetCaseRequest, StreamTasksRequest};
    let mut redis = RedisServer::start().await;
    let settings = govlink::config::Settings {
        redis: Some(redis.url()),
        ..test_settings()
    };
    let app = spawn_app_with(settings, Role::Dev).await;
    let admin = app.admin.expect("admin http");
    let case_errors = async || {
        let (_, text) = http_get(admin, "/metrics").await;
        metric(&text, r#"govlink_redis_errors_total{component="cases"}"#)
    };
    assert_eq!(case_errors().await, 0.0);
    redis.kill();
    let unavailable = |status: &tonic::Status| {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(
            status.message(),
            "the case store is unavailable; retry later",
            "{status:?}"
        );
    };

    let get = GetCaseRequest {
        case_id: "case-1".into(),
    };
    let refused = cases_as(&app, "housing/transfer-window")
        .get_case(get)
        .await
        .unwrap_err();
    unavailable(&refused);
    assert_eq!(case_errors().await, 1.0, "GetCase's failed read is counted");

    let mut registry = tasks_as(&app, "housing/records");
    let ack = AckTaskRequest {
        task_id: "case-1/registration.1".into(),
    };
    let refused = registry.ack(ack).await.unwrap_err();
    unavailable(&refused);
    assert_eq!(
        case_errors().await,
        2.0,
        "Tasks.Ack's failed read is counted"
    );

    let mut stream = registry
        .stream(StreamTasksRequest::default())
        .await
        .expect("an integration may open its task stream")
        .into_inner();
    let refused = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream answers within 10 s")
        .unwrap_err();
    unavailable(&refused);
    assert_eq!(
        case_errors().await,
        3.0,
        "a stream's failed read is counted"
    );
    app.stop().await;
}
