//! The resolver side: events reach Redis by version, whatever the order, and lookups see
//! them; events that cannot be used go to the dead-letter topic.

use std::time::Duration;

use govlink::kafka::Brokers;
use govlink::proto::{
    self, Agency, GetRecordRequest, ListSubjectRecordsRequest, Position, Subject, SubjectKind,
    record_event::Payload,
};
use rdkafka::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use redis::AsyncCommands;
use tonic::Code;

use crate::helpers::*;

async fn get(
    app: &TestApp,
    key: &str,
    after: &[Position],
) -> Result<proto::RecordEvent, tonic::Status> {
    app.records_reader(key)
        .get_record(GetRecordRequest {
            record_key: key.into(),
            min_positions: after.to_vec(),
        })
        .await
        .map(|r| r.into_inner().record.expect("a found record is returned"))
}

async fn list(
    app: &TestApp,
    kind: SubjectKind,
    id: &str,
    after: &[Position],
) -> Vec<proto::RecordEvent> {
    // Each agency's system sees its own records of the subject; together, all of them.
    let mut all = Vec::new();
    for agency in govlink::records::AGENCIES {
        let requester = format!("{}/records", govlink::records::agency_slug(agency));
        all.extend(
            app.resolver_as(&requester, None)
                .list_subject_records(ListSubjectRecordsRequest {
                    subject: Some(Subject {
                        kind: kind as i32,
                        id: id.into(),
                    }),
                    min_positions: after.to_vec(),
                })
                .await
                .unwrap()
                .into_inner()
                .records,
        );
    }
    all
}

async fn publish_household(
    app: &TestApp,
    version: u64,
    status: proto::HouseholdStatus,
) -> Position {
    let ack = app
        .police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("h-1", version),
            record: Some(household(&alice(), status)),
        })
        .await
        .unwrap()
        .into_inner();
    position(&ack)
}

#[tokio::test]
async fn a_published_record_reaches_redis_and_the_resolver() {
    let app = spawn_app().await;
    let a = alice();
    let ack = app
        .housing()
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta("p-1", 1),
            record: Some(title(&[(&a, 10_000)])),
        })
        .await
        .unwrap()
        .into_inner();
    let at = position(&ack);
    let record = get(
        &app,
        "housing/property_title/p-1",
        std::slice::from_ref(&at),
    )
    .await
    .unwrap();
    // Every field as published, including those the stored copy leaves out.
    assert_eq!(record.event_id, ack.event_id);
    assert_eq!(record.agency(), Agency::Housing);
    assert_eq!(
        (
            record.record_type.as_str(),
            record.record_id.as_str(),
            record.version
        ),
        ("property_title", "p-1", 1)
    );
    let subjects: Vec<(SubjectKind, &str)> = record
        .subjects
        .iter()
        .map(|s| (s.kind(), s.id.as_str()))
        .collect();
    assert_eq!(
        subjects,
        [
            (SubjectKind::Person, a.as_str()),
            (SubjectKind::PropertyUnit, UNIT)
        ]
    );
    assert_eq!(
        list(&app, SubjectKind::Person, &a, std::slice::from_ref(&at)).await,
        std::slice::from_ref(&record)
    );
    let Some(Payload::PropertyTitle(t)) = record.payload else {
        panic!("a title")
    };
    assert_eq!(t.owners[0].person_id, a);

    // In Redis, under the test's prefix and hash-tagged keys.
    let prefix = &app.settings.redis_prefix;
    let mut redis = redis().await;
    // The record's entry: its version and subjects; its event is kept in the copies only.
    let entry: String = redis
        .get(format!("{prefix}rec:property_title:p-1"))
        .await
        .unwrap();
    assert_eq!(entry, format!("a1p:{a}\nu:{UNIT}\t"));
    let listed: Vec<String> = redis
        .hkeys(format!("{prefix}sub:{{p:{a}}}:property_title"))
        .await
        .unwrap();
    assert_eq!(listed, ["p-1"]);
    let materialized: String = redis
        .hget(
            format!("{prefix}meta"),
            format!("p:{}/{}", at.topic, at.partition),
        )
        .await
        .unwrap();
    assert!(materialized.parse::<i64>().unwrap() >= at.offset);

    // The unit and the owner both list it; another person does not.
    assert_eq!(
        list(&app, SubjectKind::PropertyUnit, UNIT, &[]).await.len(),
        1
    );
    assert_eq!(list(&app, SubjectKind::Person, &a, &[]).await.len(), 1);
    assert!(
        list(&app, SubjectKind::Person, &bea(), &[])
            .await
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn duplicates_replays_and_out_of_order_versions_converge_to_the_highest() {
    let app = spawn_app().await;
    use proto::HouseholdStatus::{MovedOut, Registered};
    let mut after = Vec::new();
    for (version, status) in [
        (3, MovedOut),
        (1, Registered),
        (2, Registered),
        (3, MovedOut),
        (1, Registered),
    ] {
        after.push(publish_household(&app, version, status).await);
    }
    let record = get(&app, "public-security/household_registration/h-1", &after)
        .await
        .unwrap();
    assert_eq!(record.version, 3);
    let Some(Payload::HouseholdRegistration(h)) = record.payload else {
        panic!("a household")
    };
    assert_eq!(h.status, MovedOut as i32);
    let listed = list(&app, SubjectKind::Person, &alice(), &after).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, 3);
    app.stop().await;
}

#[tokio::test]
async fn a_new_owner_replaces_the_old_one_in_subject_listings() {
    let app = spawn_app().await;
    let (a, b, c) = (alice(), bea(), chen());
    let publish = |version: u64, owners: Vec<(String, u32)>| {
        let app = &app;
        async move {
            let owners: Vec<(&str, u32)> = owners.iter().map(|(p, s)| (p.as_str(), *s)).collect();
            position(
                &app.housing()
                    .publish_property_title(proto::PublishPropertyTitleRequest {
                        meta: meta("p-1", version),
                        record: Some(title(&owners)),
                    })
                    .await
                    .unwrap()
                    .into_inner(),
            )
        }
    };
    let first = publish(1, vec![(a.clone(), 10_000)]).await;
    assert_eq!(list(&app, SubjectKind::Person, &a, &[first]).await.len(), 1);
    // The flat is sold to two buyers, half each.
    let second = publish(2, vec![(b.clone(), 5_000), (c.clone(), 5_000)]).await;
    let after = [second];
    assert!(
        list(&app, SubjectKind::Person, &a, &after).await.is_empty(),
        "the seller no longer owns it"
    );
    assert_eq!(
        list(&app, SubjectKind::Person, &b, &after).await[0].version,
        2
    );
    assert_eq!(
        list(&app, SubjectKind::Person, &c, &after).await[0].version,
        2
    );
    assert_eq!(
        list(&app, SubjectKind::PropertyUnit, UNIT, &after).await[0].version,
        2
    );
    // A late copy of version 1 changes nothing.
    let late = publish(1, vec![(a.clone(), 10_000)]).await;
    assert!(
        list(&app, SubjectKind::Person, &a, &[late])
            .await
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deletion_hides_the_record_and_older_versions_cannot_bring_it_back() {
    let app = spawn_app().await;
    let first = publish_household(&app, 1, proto::HouseholdStatus::Registered).await;
    get(&app, "public-security/household_registration/h-1", &[first])
        .await
        .unwrap();
    let deleted = position(
        &app.police()
            .delete_record(proto::DeleteRecordRequest {
                record_type: "household_registration".into(),
                meta: meta("h-1", 2),
            })
            .await
            .unwrap()
            .into_inner(),
    );
    let late = publish_household(&app, 1, proto::HouseholdStatus::Registered).await;
    let after = [deleted, late];
    let status = get(&app, "public-security/household_registration/h-1", &after)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        list(&app, SubjectKind::Person, &alice(), &after)
            .await
            .is_empty()
    );
    assert!(
        list(&app, SubjectKind::PropertyUnit, UNIT, &after)
            .await
            .is_empty()
    );
    // A newer version after the deletion is a new life of the record.
    let again = publish_household(&app, 3, proto::HouseholdStatus::Registered).await;
    assert_eq!(
        get(&app, "public-security/household_registration/h-1", &[again])
            .await
            .unwrap()
            .version,
        3
    );
    app.stop().await;
}

#[tokio::test]
async fn unusable_events_go_to_the_dead_letter_topic_and_consumption_goes_on() {
    let app = spawn_ready_app().await;
    let topic = app.topics.records(Agency::PublicSecurity);
    // Not protobuf at all, on partition 0 so it sits before the good event below.
    send_raw(
        &topic,
        "public-security/identity/x",
        &[0xff, 0xff, 0xff],
        Some(0),
    )
    .await;
    // A valid protobuf whose record breaks a rule the adapter would have enforced.
    let bad = proto::RecordEvent {
        event_id: "e".into(),
        agency: Agency::PublicSecurity as i32,
        record_type: "identity".into(),
        record_id: "y".into(),
        version: 1,
        op: proto::Op::Upsert as i32,
        payload: Some(Payload::Identity(proto::Identity {
            person_id: "123".into(),
            ..identity(&alice())
        })),
        ..Default::default()
    };
    let bad = prost::Message::encode_to_vec(&bad);
    send_raw(&topic, "public-security/identity/y", &bad, Some(0)).await;

    let good = publish_household(&app, 1, proto::HouseholdStatus::Registered).await;
    get(&app, "public-security/household_registration/h-1", &[good])
        .await
        .unwrap();
    assert_eq!(
        get(&app, "public-security/identity/y", &[])
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let dead = read_partition(&app.topics.dlq(), 0, 0, 2, Duration::from_secs(20)).await;
    assert_eq!(dead.len(), 2, "both unusable events are dead-lettered");
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            use rdkafka::message::Headers;
            let headers = m.headers().expect("dead letters carry headers");
            let reason = headers
                .iter()
                .find(|h| h.key == "govlink-dlq-reason")
                .expect("a reason");
            assert!(
                headers
                    .iter()
                    .any(|h| h.key == "govlink-dlq-topic" && h.value == Some(topic.as_bytes()))
            );
            String::from_utf8(reason.value.unwrap().to_vec()).unwrap()
        })
        .collect();
    assert!(reasons[0].contains("not a RecordEvent"), "{reasons:?}");
    assert!(reasons[1].contains("payload.person_id"), "{reasons:?}");
    assert_eq!(
        dead[0].payload(),
        Some(&[0xff, 0xff, 0xff][..]),
        "the original bytes are kept"
    );
    app.stop().await;
}

#[tokio::test]
async fn lookups_refuse_bad_keys_and_wait_no_longer_than_their_deadline() {
    let app = spawn_app().await;
    for key in [
        "",
        "housing",
        "police/identity/1",
        "housing/identity/1",
        "housing/property_title/a b",
    ] {
        let status = get(&app, key, &[]).await.unwrap_err();
        assert_eq!(violations(&status)[0].0, "record_key", "{key:?}");
    }
    let status = app
        .resolver()
        .list_subject_records(ListSubjectRecordsRequest {
            subject: Some(Subject {
                kind: SubjectKind::Person as i32,
                id: "110105198003120010".into(),
            }),
            min_positions: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "subject.id");
    let status = app
        .resolver()
        .list_subject_records(ListSubjectRecordsRequest {
            subject: Some(Subject::default()),
            min_positions: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "subject.kind");

    let bad_position = Position {
        topic: "elsewhere".into(),
        partition: -1,
        offset: 0,
    };
    let fields: Vec<String> = violations(
        &get(&app, "housing/property_title/p-1", &[bad_position])
            .await
            .unwrap_err(),
    )
    .into_iter()
    .map(|(f, _)| f)
    .collect();
    assert_eq!(
        fields,
        ["min_positions[0].topic", "min_positions[0].partition"]
    );

    // A partition the topic does not have, and more positions than a lookup may carry:
    // refused at once, not waited for until the deadline.
    let missing_partition = Position {
        topic: app.topics.records(Agency::Housing),
        partition: 3,
        offset: 0,
    };
    let refused = violations(
        &get(&app, "housing/property_title/p-1", &[missing_partition])
            .await
            .unwrap_err(),
    );
    assert_eq!(refused[0].0, "min_positions[0].partition");
    assert!(refused[0].1.contains("3 partitions"), "{refused:?}");
    let too_many = vec![
        Position {
            topic: app.topics.records(Agency::Housing),
            partition: 0,
            offset: 0,
        };
        65
    ];
    let refused = violations(
        &get(&app, "housing/property_title/p-1", &too_many)
            .await
            .unwrap_err(),
    );
    assert_eq!(refused[0].0, "min_positions");

    // A position that will never be reached: DEADLINE_EXCEEDED by the caller's deadline.
    let never = Position {
        topic: app.topics.records(Agency::Housing),
        partition: 0,
        offset: 1_000_000,
    };
    let mut request = tonic::Request::new(GetRecordRequest {
        record_key: "housing/property_title/p-1".into(),
        min_positions: vec![never],
    });
    request.set_timeout(Duration::from_millis(500));
    let status = app
        .records_reader("housing/property_title/p-1")
        .get_record(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // The resolver's own answer, not the client giving up (which would be CANCELLED).
    assert!(
        status
            .message()
            .contains("not materialized up to offset 1000000"),
        "{status:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_event_too_large_to_dead_letter_whole_is_dead_lettered_truncated_and_consumption_goes_on()
 {
    let app = spawn_ready_app().await;
    let topic = app.topics.records(Agency::PublicSecurity);
    // Larger than govlink's producer sends (librdkafka's 1 MB default), so the dead letter
    // cannot carry it whole.
    let huge = vec![0xffu8; 1_500_000];
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("message.max.bytes", "4000000")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic)
                .key("public-security/identity/huge")
                .payload(&huge[..])
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .expect("the broker takes a 1.5 MB message");

    let good = publish_household(&app, 1, proto::HouseholdStatus::Registered).await;
    get(&app, "public-security/household_registration/h-1", &[good])
        .await
        .expect("consumption went on past the oversized event");

    let dead = read_partition(&app.topics.dlq(), 0, 0, 1, Duration::from_secs(20)).await;
    assert_eq!(dead.len(), 1);
    use rdkafka::message::Headers;
    let headers = dead[0].headers().expect("headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(
        header("govlink-dlq-truncated-from").as_deref(),
        Some("1500000")
    );
    assert_eq!(header("govlink-dlq-topic").as_deref(), Some(topic.as_str()));
    assert_eq!(header("govlink-dlq-offset").as_deref(), Some("0"));
    assert!(
        header("govlink-dlq-reason")
            .unwrap()
            .contains("not a RecordEvent")
    );
    let kept = dead[0].payload().unwrap();
    assert!(
        kept.len() < huge.len() && huge.starts_with(kept),
        "{}",
        kept.len()
    );
    app.stop().await;
}

#[tokio::test]
async fn the_materializer_announces_the_changes_it_applied_and_not_the_stale_ones() {
    use govlink::app::Role;
    use govlink::kafka::Publisher;
    use govlink::resolver::store::{MemoryStore, Store};
    use govlink::resolver::{Materializer, MaterializerConfig, Positions};

    let settings = test_settings();
    let adapter = spawn_app_with(settings.clone(), Role::Adapter(Agency::PublicSecurity)).await;
    let store = Store::Memory(MemoryStore::new());
    let materializer = Materializer::new(
        MaterializerConfig {
            brokers: Brokers::plaintext(kafka()),
            group_id: settings.consumer_group.clone(),
            source: "test".into(),
            batch_size: 100,
            linger: Duration::from_millis(5),
        },
        store.clone(),
        adapter.topics.clone(),
        Publisher::new(&Brokers::plaintext(kafka()), Duration::from_secs(10), 100).unwrap(),
        Positions::new(store, Default::default()),
        govlink::telemetry::Metrics::new(),
    );
    let mut changes = materializer.subscribe();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(materializer.run(stop.clone()));

    let moved = publish_household(&adapter, 2, proto::HouseholdStatus::MovedOut).await;
    publish_household(&adapter, 1, proto::HouseholdStatus::Registered).await;
    let deleted = position(
        &adapter
            .police()
            .delete_record(proto::DeleteRecordRequest {
                record_type: "household_registration".into(),
                meta: meta("h-1", 3),
            })
            .await
            .unwrap()
            .into_inner(),
    );
    let first = next_change(&mut changes).await;
    assert_eq!(
        first.key.as_str(),
        "public-security/household_registration/h-1"
    );
    assert_eq!((first.version, first.op), (2, proto::Op::Upsert));
    assert_eq!(first.position, moved);
    let subjects: Vec<&str> = first.subjects.iter().map(|s| s.as_str()).collect();
    assert_eq!(subjects, [format!("p:{}", alice()), format!("u:{UNIT}")]);
    // Version 1 came late and changed nothing: the next change is the deletion.
    let second = next_change(&mut changes).await;
    assert_eq!((second.version, second.op), (3, proto::Op::Delete));
    assert!(second.subjects.is_empty());
    assert_eq!(second.position, deleted);

    stop.cancel();
    running.await.unwrap().unwrap();
    adapter.stop().await;
}

async fn next_change(
    changes: &mut tokio::sync::broadcast::Receiver<govlink::resolver::AppliedChange>,
) -> govlink::resolver::AppliedChange {
    tokio::time::timeout(Duration::from_secs(30), changes.recv())
        .await
        .expect("a change is announced")
        .unwrap()
}
