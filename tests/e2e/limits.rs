//! Limits against the real broker and Redis: a publish over its agency's rate and a
//! lookup over its requester's rate are refused whole with `RESOURCE_EXHAUSTED` and a
//! `RetryInfo` (nothing published, nothing answered, nothing audited) and pass once the
//! delay is waited (the lookup burst over mutual TLS, the requester that of its
//! certificate); an oversized batch and an overlong field are refused naming the
//! field; every refusal is counted by limit.

use std::collections::BTreeSet;
use std::time::Duration;

use govlink::proto::{
    self, GetPersonProfileRequest, GetRecordRequest, HousingBatchItem, PublishHousingBatchRequest,
    housing_batch_item,
};
use rdkafka::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::*;

/// The delay a rate-limit refusal says to wait, checked to be one.
pub fn retry_delay(status: &Status, limit: &str) -> Duration {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(limit), "{}", status.message());
    let retry = status
        .get_details_retry_info()
        .expect("a RESOURCE_EXHAUSTED from a rate limit carries RetryInfo");
    let delay = retry.retry_delay.expect("RetryInfo holds a delay");
    assert!(delay > Duration::ZERO, "{delay:?}");
    delay
}

/// The value of a `govlink_limited_requests_total` series of the app.
async fn limited(app: &TestApp, limit: &str, agency: &str) -> f64 {
    let (code, text) = http_get(app.admin.expect("admin http"), "/metrics").await;
    assert_eq!(code, 200);
    metric(
        &text,
        &format!(r#"govlink_limited_requests_total{{limit="{limit}",agency="{agency}"}}"#),
    )
}

fn titles(ids: impl IntoIterator<Item = String>) -> PublishHousingBatchRequest {
    let owner = alice();
    PublishHousingBatchRequest {
        items: ids
            .into_iter()
            .map(|id| HousingBatchItem {
                meta: meta(&id, 1),
                record: Some(housing_batch_item::Record::PropertyTitle(title(&[(
                    &owner, 10_000,
                )]))),
            })
            .collect(),
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every record id on `topic` once `expected` are all there, and what else arrived in a
/// further second.
async fn record_ids_on(topic: &str, partitions: i32, expected: &BTreeSet<String>) -> Vec<String> {
    let consumer = from_beginning(topic, partitions);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut settle = None;
    loop {
        let until = settle.unwrap_or(deadline);
        match tokio::time::timeout_at(until, consumer.recv()).await {
            Ok(Ok(m)) => {
                let key = String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap();
                seen.push(key.rsplit('/').next().unwrap_or_default().to_owned());
            }
            Ok(Err(e)) => panic!("consume error: {e}"),
            Err(_) if settle.is_some() => return seen,
            Err(_) => panic!("{topic}: only {seen:?} after 60 s"),
        }
        if settle.is_none() && expected.iter().all(|id| seen.contains(id)) {
            settle = Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
    }
}

#[tokio::test]
async fn publishes_over_the_agency_rate_or_batch_size_are_refused_whole_and_counted() {
    let mut settings = test_settings();
    settings.max_batch = 10;
    settings.publish_rate_per_agency = 1;
    settings.publish_burst = 10;
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;

    // Oversized: refused on its size, naming `items`, before it takes any of the rate.
    let refused = app
        .housing()
        .publish_batch(titles(ids("big", 11)))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&refused),
        [(
            "items".to_owned(),
            "must have at most 10 items, not 11".to_owned()
        )]
    );
    assert_eq!(limited(&app, "batch_size", "housing").await, 1.0);

    // A full bucket pays for a full batch (the oversized one took nothing) ...
    let first = app
        .housing()
        .publish_batch(titles(ids("ok", 10)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.acks.len(), 10);
    // ... and is then empty: at one record a second, five more take about five seconds.
    let refused = app
        .housing()
        .publish_batch(titles(ids("refused", 5)))
        .await
        .unwrap_err();
    let wait = retry_delay(&refused, "publish rate limit of housing");
    assert!(wait <= Duration::from_secs(5), "{wait:?}");
    assert_eq!(limited(&app, "publish_rate", "housing").await, 1.0);
    // Another agency has a bucket of its own.
    app.police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("h-1", 1),
            record: Some(household(&alice(), proto::HouseholdStatus::Registered)),
        })
        .await
        .unwrap();

    // After the delay it says, the same amount passes.
    tokio::time::sleep(wait).await;
    let later = app
        .housing()
        .publish_batch(titles(ids("later", 5)))
        .await
        .unwrap()
        .into_inner();

    // None of the refused records is on the topic, nor in the store.
    let expected: BTreeSet<String> = ids("ok", 10).into_iter().chain(ids("later", 5)).collect();
    let topic = app.topics.records(proto::Agency::Housing);
    let on_topic = record_ids_on(&topic, app.settings.partitions, &expected).await;
    assert_eq!(
        on_topic.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{on_topic:?}"
    );
    assert_eq!(on_topic.len(), expected.len(), "{on_topic:?}");
    let after: Vec<_> = later.acks.iter().map(position).collect();
    let get = |id: &str| GetRecordRequest {
        record_key: format!("housing/property_title/{id}"),
        min_positions: after.clone(),
    };
    let mut housing = app.resolver_as("housing/records", None);
    housing.get_record(get("later-4")).await.unwrap();
    for id in ids("refused", 5) {
        let status = housing.get_record(get(&id)).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{id}: {status:?}");
    }

    // A field over the contract's length is refused naming it, and counted.
    let mut long = household(&bea(), proto::HouseholdStatus::Registered);
    long.address = "路".repeat(257);
    let refused = app
        .police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("h-2", 1),
            record: Some(long),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&refused),
        [(
            "record.address".to_owned(),
            "must be at most 256 characters".to_owned()
        )]
    );
    assert_eq!(limited(&app, "field_length", "public-security").await, 1.0);
    assert_eq!(limited(&app, "publish_rate", "public-security").await, 0.0);

    // A case naming more parties than a contract may: refused naming the field, counted
    // for the requester's agency.
    let window = govlink::identity::Requester::parse("housing/transfer-window").unwrap();
    let mut cases = govlink::proto::cases_client::CasesClient::with_interceptor(
        app.channel.clone(),
        govlink::identity::AsRequester::new(&window, None),
    );
    let sellers: Vec<String> = (0..65)
        .map(|i| person(&format!("110105198001{i:05}")))
        .collect();
    let refused = cases
        .open_case(sale_between("too-many", UNIT, sellers, vec![bea()]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        violations(&refused)
            .iter()
            .any(|(field, _)| field.ends_with("seller_ids")),
        "{refused:?}"
    );
    assert_eq!(limited(&app, "field_length", "housing").await, 1.0);
    app.stop().await;
}

#[tokio::test]
async fn lookups_over_the_requester_rate_are_refused_unanswered_and_unaudited() {
    // Over mutual TLS: the bucket is the certificate's requester's.
    let mut settings = secured_settings(&fresh_certs());
    settings.lookup_rate_per_requester = 1;
    settings.lookup_burst = 2;
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;
    let admin = app.admin.expect("admin http");
    let audited = || async move {
        let (_, text) = http_get(admin, "/metrics").await;
        metric(&text, r#"govlink_audit_writes_total{outcome="written"}"#)
    };
    let window = app.channel_as("housing/transfer-window").await;
    let as_window = || resolver_as(window.clone(), "housing/transfer-window", None);
    let ack = govlink::proto::public_security_adapter_client::PublicSecurityAdapterClient::new(
        app.channel_as("public-security/records").await,
    )
    .publish_identity(proto::PublishIdentityRequest {
        meta: meta("i-1", 1),
        record: Some(identity(&alice())),
    })
    .await
    .unwrap()
    .into_inner();
    let profile = || GetPersonProfileRequest {
        person_id: alice(),
        purpose: "property-transfer".into(),
        case_id: String::new(),
        min_positions: vec![position(&ack)],
    };
    // Once the identity is materialized, asked by a requester of its own (each has its
    // own bucket), the lookups below are answered from the store at once.
    let warm_up = GetPersonProfileRequest {
        purpose: "household-move".into(),
        ..profile()
    };
    let move_window = app.channel_as("public-security/move-window").await;
    resolver_as(move_window, "public-security/move-window", None)
        .get_person_profile(warm_up)
        .await
        .unwrap();
    let before = audited().await;

    // Five at once against a burst of two: every call is admitted or refused as it
    // arrives, so the first two are answered and the others refused (unless a second
    // passed between them).
    let calls = (0..5).map(|_| {
        let mut client = as_window();
        let request = profile();
        async move { client.get_person_profile(request).await }
    });
    let results = futures::future::join_all(calls).await;
    let answered = results.iter().filter(|r| r.is_ok()).count();
    let delays: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|s| retry_delay(s, "lookup rate limit of requester housing/transfer-window"))
        .collect();
    assert!(answered >= 2 && !delays.is_empty(), "{results:?}");
    assert_eq!(answered + delays.len(), 5);
    // A refused call read nothing: only the answered ones are in the audit trail.
    assert_eq!(audited().await, before + answered as f64);
    let (_, text) = http_get(admin, "/metrics").await;
    assert_eq!(
        metric(
            &text,
            r#"govlink_limited_requests_total{limit="lookup_rate",agency="housing"}"#
        ),
        delays.len() as f64
    );
    assert_eq!(
        metric(
            &text,
            r#"govlink_lookups_total{method="GetPersonProfile",purpose="property-transfer",decision="limited"}"#
        ),
        delays.len() as f64
    );

    // Another requester is not held back by this one.
    let other = GetPersonProfileRequest {
        purpose: "social-security-transfer".into(),
        ..profile()
    };
    let social = app.channel_as("social-security/transfer-window").await;
    resolver_as(social, "social-security/transfer-window", None)
        .get_person_profile(other)
        .await
        .unwrap();

    // Once the longest delay has passed, a call is answered again.
    tokio::time::sleep(delays.into_iter().max().unwrap()).await;
    as_window().get_person_profile(profile()).await.unwrap();
    app.stop().await;
}
