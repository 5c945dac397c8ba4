//! The admin HTTP server on the real broker and Redis: metrics that move as publishes,
//! lookups, dead letters and cases happen (read from the exposition, as Prometheus
//! would), liveness, and readiness that follows Redis going away and coming back.

use std::time::Duration;

use crate::faults::RedisServer;
use crate::helpers::*;
use govlink::identity::AsRequester;
use govlink::identity::Requester;
use govlink::proto::{self, Agency};

/// The app's metrics once `done` says they show what the test waits for.
async fn metrics_when(app: &TestApp, what: &str, done: impl Fn(&str) -> bool) -> String {
    let admin = app.admin.expect("the app serves admin http");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = http_get(admin, "/metrics").await;
        assert_eq!(code, 200);
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics never showed {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn metrics_move_with_publishes_lookups_dead_letters_and_cases() {
    let app = spawn_app().await;
    let (code, body) = http_get(app.admin.unwrap(), "/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let before = metrics_when(&app, "every family", |t| t.contains("# EOF")).await;
    // The families whose series are known in advance are there before anything happened.
    let known = [
        "govlink_publishes_total",
        "govlink_publish_duration_seconds",
        "govlink_producer_queue_depth",
        "govlink_producer_in_flight",
        "govlink_records_applied_total",
        "govlink_audit_writes_total",
        "govlink_cases_total",
        "govlink_case_duration_seconds",
        "govlink_cases_open",
        "govlink_case_steps_open",
        "govlink_case_steps_overdue",
    ];
    for name in known {
        assert!(govlink::telemetry::metrics::NAMES.contains(&name), "{name}");
        let family = name.trim_end_matches("_total");
        assert!(
            before.contains(&format!("# TYPE {family} ")),
            "{name} is not exposed:\n{before}"
        );
    }

    // Three records acknowledged, one refused for a field.
    let mut last = None;
    for version in 1..=3 {
        let ack = app
            .police()
            .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                meta: meta("m-1", version),
                record: Some(household(&alice(), proto::HouseholdStatus::Registered)),
            })
            .await
            .unwrap()
            .into_inner();
        last = Some(position(&ack));
    }
    app.police()
        .publish_identity(proto::PublishIdentityRequest {
            meta: meta("m-2", 1),
            record: Some(proto::Identity {
                person_id: "123".into(),
                ..identity(&alice())
            }),
        })
        .await
        .unwrap_err();
    // Two lookups allowed (waiting for the last publish), one denied.
    let window = |requester| {
        proto::resolver_client::ResolverClient::with_interceptor(
            app.channel.clone(),
            AsRequester::new(&Requester::parse(requester).unwrap(), None),
        )
    };
    for _ in 0..2 {
        window("housing/transfer-window")
            .get_person_profile(proto::GetPersonProfileRequest {
                person_id: alice(),
                purpose: "property-transfer".into(),
                case_id: String::new(),
                min_positions: last.clone().into_iter().collect(),
            })
            .await
            .unwrap();
    }
    window("housing/unknown-desk")
        .get_person_profile(proto::GetPersonProfileRequest {
            person_id: alice(),
            purpose: "property-transfer".into(),
            case_id: String::new(),
            min_positions: Vec::new(),
        })
        .await
        .unwrap_err();
    // An event nobody can read, straight onto the record topic.
    let housing = app.topics.records(Agency::Housing);
    send_raw(&housing, "housing/property_title/x", &[0xff, 0xff], None).await;

    let text = metrics_when(&app, "the dead letter", |t| {
        metric(t, r#"govlink_dead_letters_total{reason="undecodable"}"#) == 1.0
    })
    .await;
    let m = |series: &str| metric(&text, series);
    assert_eq!(
        m(r#"govlink_publishes_total{agency="public-security",outcome="ok"}"#),
        3.0
    );
    assert_eq!(
        m(r#"govlink_publishes_total{agency="public-security",outcome="invalid_argument"}"#),
        1.0
    );
    assert_eq!(
        m(r#"govlink_publish_duration_seconds_count{agency="public-security"}"#),
        4.0
    );
    assert_eq!(
        m(
            r#"govlink_lookups_total{method="GetPersonProfile",purpose="property-transfer",decision="allowed"}"#
        ),
        2.0
    );
    assert_eq!(
        m(
            r#"govlink_lookups_total{method="GetPersonProfile",purpose="property-transfer",decision="denied"}"#
        ),
        1.0
    );
    assert_eq!(
        m(r#"govlink_lookup_duration_seconds_count{method="GetPersonProfile"}"#),
        3.0
    );
    // Version 3 was applied; 1 and 2 may have been applied or found older.
    let applied = m(r#"govlink_records_applied_total{outcome="applied"}"#);
    let stale = m(r#"govlink_records_applied_total{outcome="stale"}"#);
    assert!(
        applied >= 1.0 && applied + stale == 3.0,
        "{applied} + {stale}"
    );
    assert_eq!(m(r#"govlink_audit_writes_total{outcome="written"}"#), 3.0);
    assert_eq!(m(r#"govlink_audit_writes_total{outcome="failed"}"#), 0.0);
    assert!(!text.contains(&alice()), "no resident ID in any label");

    // A household move opened and completed by the records.
    let mut cases = proto::cases_client::CasesClient::with_interceptor(
        app.channel.clone(),
        AsRequester::new(
            &Requester::parse("public-security/move-window").unwrap(),
            None,
        ),
    );
    cases
        .open_case(household_move("metrics-move", &bea()))
        .await
        .unwrap();
    metrics_when(&app, "the case opened", |t| {
        metric(
            t,
            r#"govlink_cases_total{kind="household-move",change="opened"}"#,
        ) == 1.0
    })
    .await;
    app.police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("bea-move", 1),
            record: Some(proto::HouseholdRegistration {
                region_code: "310104".into(),
                property_unit_number: String::new(),
                ..household(&bea(), proto::HouseholdStatus::Registered)
            }),
        })
        .await
        .unwrap();
    let text = metrics_when(&app, "the case completed", |t| {
        metric(
            t,
            r#"govlink_cases_total{kind="household-move",change="completed"}"#,
        ) == 1.0
    })
    .await;
    assert_eq!(
        metric(
            &text,
            r#"govlink_case_duration_seconds_count{kind="household-move"}"#
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn readiness_follows_redis_going_away_and_coming_back() {
    let mut redis = RedisServer::start().await;
    let settings = govlink::config::Settings {
        redis: Some(redis.url()),
        ready_max_lag_events: 1,
        ..test_settings()
    };
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;
    let admin = app.admin.unwrap();
    let ready_within = async |want: u16| readyz_answers(admin, want, Duration::from_secs(30)).await;
    let body = ready_within(200).await;
    for check in [
        "ok broker and topics",
        "ok redis",
        "ok record store caught up",
    ] {
        assert!(body.contains(check), "{body}");
    }

    redis.kill();
    let body = ready_within(503).await;
    assert!(body.contains("not ready: redis: "), "{body}");
    redis.restart().await;
    let body = ready_within(200).await;
    assert!(body.contains("ok redis"), "{body}");

    // Redis answers but takes no writes: records published meanwhile wait to be
    // materialized, more of them than the bound allows.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "60000", "WRITE"])
        .query_async(&mut conn)
        .await
        .unwrap();
    for version in 1..=3 {
        app.police()
            .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                meta: meta("while-paused", version),
                record: Some(household(&alice(), proto::HouseholdStatus::Registered)),
            })
            .await
            .unwrap();
    }
    let body = ready_within(503).await;
    assert!(
        body.contains("not ready: record store caught up: ")
            && body.contains("events behind the topics (ready_max_lag_events is 1)"),
        "{body}"
    );
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut conn)
        .await
        .unwrap();
    ready_within(200).await;
    app.stop().await;
}

/// The page as a real browser renders it (Debian's Chromium, headless; scripts/test.sh
/// installs it when missing).
async fn rendered(url: &str) -> String {
    let profile = std::env::temp_dir().join(unique("chromium"));
    let mut chromium = std::process::Command::new(
        std::env::var("GOVLINK_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into()),
    );
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url]);
    let output = tokio::task::spawn_blocking(move || chromium.output())
        .await
        .unwrap()
        .expect("chromium runs (scripts/test.sh installs Debian's chromium)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// The page as rendered once everything in `shown` is in it.
async fn page_showing(url: &str, shown: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let page = rendered(url).await;
        if shown.iter().all(|s| page.contains(s)) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the status page never showed {shown:?}:\n{page}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn the_status_page_shows_live_figures_in_a_browser() {
    let app = spawn_app().await;
    let url = format!("http://{}/", app.admin.unwrap());
    let publish = async |from: u64, to: u64| {
        let mut last = None;
        for version in from..=to {
            let ack = app
                .police()
                .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                    meta: meta("page-1", version),
                    record: Some(household(&alice(), proto::HouseholdStatus::Registered)),
                })
                .await
                .unwrap()
                .into_inner();
            last = Some(position(&ack));
        }
        proto::resolver_client::ResolverClient::with_interceptor(
            app.channel.clone(),
            AsRequester::new(&Requester::parse("housing/transfer-window").unwrap(), None),
        )
        .get_person_profile(proto::GetPersonProfileRequest {
            person_id: alice(),
            purpose: "property-transfer".into(),
            case_id: String::new(),
            min_positions: last.into_iter().collect(),
        })
        .await
        .unwrap();
    };
    publish(1, 2).await;
    let topic = format!(
        "id=\"messages-{}\">",
        app.topics.records(Agency::PublicSecurity)
    );
    let page = page_showing(
        &url,
        &[
            "id=\"published-public-security\">2<",
            "id=\"ready\" class=\"ok\">ready<",
            "id=\"lookups-total\">1<",
            "id=\"lookups-allowed\">1<",
            &topic,
            "id=\"dead-letters-total\">0<",
            "id=\"cases-open-household-move\">0<",
            "http-equiv=\"refresh\"",
        ],
    )
    .await;
    assert!(!page.contains(&alice()), "no resident ID on the page");

    // More happens: the next samples show it, without anybody reloading by hand.
    publish(3, 5).await;
    page_showing(
        &url,
        &[
            "id=\"published-public-security\">5<",
            "id=\"lookups-total\">2<",
        ],
    )
    .await;
    app.stop().await;
}
