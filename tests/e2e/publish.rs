//! The publish path: what an adapter acknowledges is on the broker, where the ack says.

use std::time::{Duration, Instant};

use futures::future::join_all;
use govlink::adapters::{PublicSecurity, PublishLimits, PublishPath};
use govlink::kafka::Brokers;
use govlink::kafka::{PublishError, Publisher, TopicSpec, Topics, ensure_topics};
use govlink::limits::Rate;
use govlink::proto::{
    self, Agency, DeleteRecordRequest, HousingBatchItem, Op, PublishHousingBatchRequest,
    RecordEvent, housing_batch_item,
};
use prost::Message as _;
use rdkafka::Message as _;
use tokio::net::TcpListener;
use tonic::{Code, Request};

use crate::helpers::*;

#[tokio::test]
async fn every_record_type_is_on_its_agency_topic_at_the_acked_position() {
    let app = spawn_app().await;
    let (a, b) = (alice(), bea());
    let mut acks = Vec::new();
    acks.push((
        Agency::SocialSecurity,
        app.social()
            .publish_enrollment(proto::PublishEnrollmentRequest {
                meta: meta("e-1", 1),
                record: Some(enrollment(&b)),
            })
            .await
            .unwrap()
            .into_inner(),
    ));
    acks.push((
        Agency::SocialSecurity,
        app.social()
            .publish_contribution_period(proto::PublishContributionPeriodRequest {
                meta: meta("c-1", 1),
                record: Some(contribution(&b)),
            })
            .await
            .unwrap()
            .into_inner(),
    ));
    acks.push((
        Agency::SocialSecurity,
        app.social()
            .publish_transfer_out_certificate(proto::PublishTransferOutCertificateRequest {
                meta: meta("t-1", 1),
                record: Some(certificate(&b)),
            })
            .await
            .unwrap()
            .into_inner(),
    ));
    acks.push((
        Agency::PublicSecurity,
        app.police()
            .publish_identity(proto::PublishIdentityRequest {
                meta: meta("i-1", 1),
                record: Some(identity(&a)),
            })
            .await
            .unwrap()
            .into_inner(),
    ));
    acks.push((
        Agency::PublicSecurity,
        app.police()
            .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                meta: meta("h-1", 1),
                record: Some(household(&a, proto::HouseholdStatus::Registered)),
            })
            .await
            .unwrap()
            .into_inner(),
    ));
    acks.push((
        Agency::Housing,
        app.housing()
            .publish_property_title(proto::PublishPropertyTitleRequest {
                meta: meta("p-1", 1),
                record: Some(title(&[(&a, 10_000)])),
            })
            .await
            .unwrap()
            .into_inner(),
    ));
    acks.push((
        Agency::Housing,
        app.housing()
            .publish_sale_contract(proto::PublishSaleContractRequest {
                meta: meta("s-1", 1),
                record: Some(contract(&[&a], &[&b])),
            })
            .await
            .unwrap()
            .into_inner(),
    ));
    acks.push((
        Agency::ProvidentFund,
        app.fund()
            .publish_account(proto::PublishAccountRequest {
                meta: meta("a-1", 1),
                record: Some(account(&a)),
            })
            .await
            .unwrap()
            .into_inner(),
    ));
    acks.push((
        Agency::ProvidentFund,
        app.fund()
            .publish_loan(proto::PublishLoanRequest {
                meta: meta("l-1", 1),
                record: Some(loan(&a, proto::LoanStatus::Repaying, 1_000)),
            })
            .await
            .unwrap()
            .into_inner(),
    ));

    let expected_types = [
        "enrollment",
        "contribution_period",
        "transfer_out_certificate",
        "identity",
        "household_registration",
        "property_title",
        "sale_contract",
        "account",
        "loan",
    ];
    for ((agency, ack), record_type) in acks.iter().zip(expected_types) {
        let at = position(ack);
        assert_eq!(at.topic, app.topics.records(*agency));
        let read = [read_at(&at).await];
        let message = &read[0];
        assert_eq!(message.offset(), at.offset);
        assert_eq!(key_of(message), ack.record_key);
        let event = RecordEvent::decode(message.payload().unwrap()).unwrap();
        assert_eq!(event.event_id, ack.event_id);
        assert_eq!(event.record_type, record_type);
        assert_eq!(event.agency, *agency as i32);
        assert_eq!(event.version, 1);
        assert_eq!(event.op, Op::Upsert as i32);
        assert!(event.published_at.is_some() && event.occurred_at.is_some());
        assert!(!event.subjects.is_empty(), "{record_type} has subjects");
        assert_eq!(
            ack.record_key,
            format!(
                "{}/{record_type}/{}",
                message.topic().split('.').nth(3).unwrap(),
                event.record_id
            )
        );
    }

    // The title is about the unit and its owner; the contract about the unit and both parties.
    let contract_ack = &acks[6].1;
    let at = position(contract_ack);
    let read = [read_at(&at).await];
    let event = RecordEvent::decode(read[0].payload().unwrap()).unwrap();
    let mut subjects: Vec<String> = event.subjects.iter().map(|s| s.id.clone()).collect();
    subjects.sort();
    let mut expected = vec![a.clone(), b.clone(), UNIT.to_owned()];
    expected.sort();
    assert_eq!(subjects, expected);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_is_all_validated_before_any_item_is_published() {
    let app = spawn_app().await;
    let a = alice();
    let item = |id: &str, record: housing_batch_item::Record| HousingBatchItem {
        meta: meta(id, 1),
        record: Some(record),
    };
    let mut bad_title = title(&[(&a, 10_000)]);
    bad_title.unit_number = "110105001002GB00017F0003020".into();
    let refused = app
        .housing()
        .publish_batch(PublishHousingBatchRequest {
            items: vec![
                item(
                    "p-1",
                    housing_batch_item::Record::PropertyTitle(title(&[(&a, 10_000)])),
                ),
                item("p-2", housing_batch_item::Record::PropertyTitle(bad_title)),
                item(
                    "p-3",
                    housing_batch_item::Record::DeletedRecordType("identity".into()),
                ),
            ],
        })
        .await
        .unwrap_err();
    let fields: Vec<String> = violations(&refused).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "items[1].property_title.unit_number",
            "items[2].deleted_record_type"
        ]
    );
    let topic = app.topics.records(Agency::Housing);
    assert_eq!(
        message_count(&topic, 3).await,
        0,
        "nothing of a refused batch reaches the broker"
    );

    let acks = app
        .housing()
        .publish_batch(PublishHousingBatchRequest {
            items: vec![
                item(
                    "p-1",
                    housing_batch_item::Record::PropertyTitle(title(&[(&a, 10_000)])),
                ),
                item(
                    "s-1",
                    housing_batch_item::Record::SaleContract(contract(&[&a], &[&bea()])),
                ),
                item(
                    "p-9",
                    housing_batch_item::Record::DeletedRecordType("property_title".into()),
                ),
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .acks;
    let keys: Vec<&str> = acks.iter().map(|a| a.record_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "housing/property_title/p-1",
            "housing/sale_contract/s-1",
            "housing/property_title/p-9"
        ]
    );
    for ack in &acks {
        let at = position(ack);
        let message = read_at(&at).await;
        assert_eq!(key_of(&message), ack.record_key);
        let event = RecordEvent::decode(message.payload().unwrap()).unwrap();
        assert_eq!(event.event_id, ack.event_id);
        let deleted = ack.record_key == "housing/property_title/p-9";
        assert_eq!(event.op == Op::Delete as i32, deleted);
        assert_eq!(event.payload.is_none(), deleted);
    }

    let too_many = PublishHousingBatchRequest {
        items: (0..=app.settings.max_batch)
            .map(|i| {
                item(
                    &format!("p-{i}"),
                    housing_batch_item::Record::PropertyTitle(title(&[(&a, 10_000)])),
                )
            })
            .collect(),
    };
    let refused = app.housing().publish_batch(too_many).await.unwrap_err();
    assert_eq!(violations(&refused)[0].0, "items");
    let refused = app
        .housing()
        .publish_batch(PublishHousingBatchRequest { items: vec![] })
        .await
        .unwrap_err();
    assert_eq!(violations(&refused)[0].0, "items");
    app.stop().await;
}

#[tokio::test]
async fn a_deletion_is_published_as_a_delete_event() {
    let app = spawn_app().await;
    let ack = app
        .police()
        .delete_record(DeleteRecordRequest {
            record_type: "household_registration".into(),
            meta: meta("h-1", 7),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.record_key, "public-security/household_registration/h-1");
    let at = position(&ack);
    let read = [read_at(&at).await];
    let event = RecordEvent::decode(read[0].payload().unwrap()).unwrap();
    assert_eq!((event.op, event.version), (Op::Delete as i32, 7));
    assert!(event.subjects.is_empty() && event.payload.is_none());
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_broker_fails_the_publish_with_unavailable_within_its_deadline() {
    // A broker address where nothing listens: the port of a listener we close at once.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);

    let publisher =
        Publisher::new(&Brokers::plaintext(dead), Duration::from_secs(30), 100).unwrap();
    let path = PublishPath::new(
        govlink::adapters::Publishers::Anyone,
        publisher,
        Topics::new(unique("dead")),
        PublishLimits {
            max_batch: 10,
            rate: Rate::UNLIMITED,
        },
        Duration::from_secs(30),
        Duration::from_secs(3600),
        govlink::telemetry::metrics::Metrics::new(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(
        proto::public_security_adapter_server::PublicSecurityAdapterServer::new(PublicSecurity(
            path,
        )),
    );
    let server = tokio::spawn(govlink::grpc::serve(
        listener,
        routes.routes(),
        govlink::grpc::ServeOptions::default(),
        async move { stopped.cancelled().await },
    ));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        govlink::proto::public_security_adapter_client::PublicSecurityAdapterClient::new(channel);

    let deadline = Duration::from_secs(2);
    let mut request = Request::new(proto::PublishIdentityRequest {
        meta: meta("i-1", 1),
        record: Some(identity(&alice())),
    });
    request.set_timeout(deadline);
    let started = Instant::now();
    let status = client.publish_identity(request).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("retrying is safe"), "{status:?}");
    // Correctness, not speed: the answer must come by the caller's deadline, not at
    // librdkafka's 30 s message timeout. The slack absorbs a loaded machine.
    assert!(
        elapsed < deadline + Duration::from_secs(3),
        "answered after {elapsed:?}"
    );

    // Invalid input is still refused precisely, without touching the broker.
    let status = client
        .publish_identity(proto::PublishIdentityRequest {
            meta: meta("i-1", 0),
            record: Some(identity(&alice())),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "meta.version");

    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_record_keeps_its_place_in_the_window_after_its_caller_gave_up() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    // A window of one, and librdkafka gives up on a record after 2 s.
    let publisher = Publisher::new(&Brokers::plaintext(dead), Duration::from_secs(2), 1).unwrap();
    let topic = unique("window");
    let soon = || tokio::time::Instant::now() + Duration::from_millis(300);

    let first = publisher.publish(&topic, b"k", b"1", &[], soon()).await;
    assert!(
        matches!(first, Err(PublishError::Unavailable(_))),
        "{first:?}"
    );
    // The caller is gone, the record is not: librdkafka still holds it, so it still
    // counts, and the next publish waits for room instead of growing librdkafka's queue.
    assert_eq!(publisher.in_flight(), 1);
    let second = publisher.publish(&topic, b"k", b"2", &[], soon()).await;
    match second {
        Err(PublishError::Unavailable(reason)) => assert!(reason.contains("window"), "{reason}"),
        other => panic!("expected a full window, got {other:?}"),
    }
    assert_eq!(publisher.in_flight(), 1);

    // librdkafka times the first record out: its delivery callback frees the place and
    // wakes this waiter (well before its deadline, which only bounds a broken wake-up).
    let third = publisher
        .enqueue(
            &topic,
            b"k",
            b"3",
            &[],
            tokio::time::Instant::now() + Duration::from_secs(60),
        )
        .await;
    assert!(third.is_ok(), "a freed place is handed to the waiter");
    assert_eq!(publisher.in_flight(), 1);
}

#[tokio::test]
async fn a_deadline_too_short_for_a_healthy_broker_is_deadline_exceeded_and_the_record_lands() {
    let topic = unique("short");
    ensure_topics(
        &Brokers::plaintext(kafka()),
        &[TopicSpec::durable(topic.clone(), 1, 1, -1)],
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let publisher =
        Publisher::new(&Brokers::plaintext(kafka()), Duration::from_secs(30), 100).unwrap();
    let later = || tokio::time::Instant::now() + Duration::from_secs(20);
    // A first ack: the broker is known to be reachable.
    publisher
        .publish(&topic, b"k", b"1", &[], later())
        .await
        .unwrap();
    // A deadline that has run out by the time the record is queued: no broker, however
    // fast, acknowledges in time (this test broker acks in about 2 ms, so a "5 ms"
    // deadline would often succeed and prove nothing).
    let short = publisher
        .publish(&topic, b"k", b"2", &[], tokio::time::Instant::now())
        .await;
    assert!(
        matches!(short, Err(PublishError::DeadlineExceeded)),
        "{short:?}"
    );
    // As the status says: the record may still be published, and here it is.
    let third = publisher
        .publish(&topic, b"k", b"3", &[], later())
        .await
        .unwrap();
    let payloads: Vec<Vec<u8>> = read_partition(&topic, 0, 0, 3, Duration::from_secs(20))
        .await
        .iter()
        .map(|m| m.payload().unwrap().to_vec())
        .collect();
    assert_eq!(payloads, [b"1", b"2", b"3"]);
    assert_eq!(third.offset, 2);
}

#[tokio::test]
async fn a_deadline_shorter_than_the_broker_round_trip_answers_deadline_exceeded() {
    // librdkafka's mock cluster stands in for a healthy broker far away: reachable, but
    // slower to acknowledge than the caller allows.
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let prefix = unique("slow");
    let topics = Topics::new(format!("{prefix}."));
    for name in topics.all() {
        cluster.create_topic(&name, 1, 1).unwrap();
    }
    let settings = govlink::config::Settings {
        kafka: Some(cluster.bootstrap_servers()),
        redis: None,
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        admin_addr: "127.0.0.1:0".into(),
        topic_prefix: format!("{prefix}."),
        partitions: 1,
        replication_factor: 1,
        request_timeout_ms: 15_000,
        shutdown_grace_ms: 2_000,
        // Plaintext: what is tested is the broker link, not who calls.
        insecure_requester_header: true,
        ..govlink::config::Settings::default()
    };
    let app = spawn_app_with(
        settings,
        govlink::app::Role::Adapter(Agency::PublicSecurity),
    )
    .await;
    app.police()
        .publish_identity(proto::PublishIdentityRequest {
            meta: meta("i-1", 1),
            record: Some(identity(&alice())),
        })
        .await
        .expect("a first publish is acked");
    cluster
        .broker_round_trip_time(1, Duration::from_secs(3))
        .unwrap();
    let mut request = Request::new(proto::PublishIdentityRequest {
        meta: meta("i-1", 2),
        record: Some(identity(&alice())),
    });
    // Our answer comes 50 ms before the caller's own timer would fire.
    request.set_timeout(Duration::from_millis(500));
    let status = app.police().publish_identity(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("may still be published"),
        "{status:?}"
    );
    cluster.broker_round_trip_time(1, Duration::ZERO).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn records_of_one_key_enqueued_in_order_land_in_order_through_a_small_window() {
    let topic = unique("order");
    ensure_topics(
        &Brokers::plaintext(kafka()),
        &[TopicSpec::durable(topic.clone(), 1, 1, -1)],
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    // A window far smaller than the load: most records wait for room, freed by acks, while
    // librdkafka's queue is sized from the window so that it is never full (a full queue
    // would fail a publish here, and a retry after it could reorder a key).
    let publisher =
        Publisher::new(&Brokers::plaintext(kafka()), Duration::from_secs(30), 4).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let keys = 6;
    let per_key = 50;
    let writers = (0..keys).map(|k| {
        let publisher = publisher.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            let key = format!("key-{k}");
            let mut pending = Vec::new();
            for version in 1..=per_key {
                let payload = format!("{key}:{version}");
                let enqueued = publisher
                    .enqueue(&topic, key.as_bytes(), payload.as_bytes(), &[], deadline)
                    .await
                    .expect("enqueued without a full queue");
                pending.push(enqueued.ack(deadline));
            }
            let acks: Vec<_> = join_all(pending)
                .await
                .into_iter()
                .map(|a| a.expect("acked"))
                .collect();
            let offsets: Vec<i64> = acks.iter().map(|a| a.offset).collect();
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "{key} acked out of order: {offsets:?}"
            );
        })
    });
    for writer in join_all(writers).await {
        writer.unwrap();
    }
    // A place is given back when librdkafka frees the delivery report, which may come a
    // moment after the caller saw its ack: the window drains, it does not leak.
    let drained = tokio::time::Instant::now() + Duration::from_secs(10);
    while publisher.in_flight() > 0 && tokio::time::Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(publisher.in_flight(), 0);

    let messages = read_partition(&topic, 0, 0, keys * per_key, Duration::from_secs(30)).await;
    assert_eq!(messages.len(), keys * per_key);
    for k in 0..keys {
        let key = format!("key-{k}");
        let versions: Vec<String> = messages
            .iter()
            .filter(|m| key_of(m) == key)
            .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (1..=per_key).map(|v| format!("{key}:{v}")).collect();
        assert_eq!(versions, expected, "{key} is on its partition in order");
    }
}

/// Identifiers sent in lowercase (a resident ID's check character `x`, a unit number's
/// letters) are published, stored and answered in their one spelling, uppercase, so
/// every comparison downstream (the checks, the case plans, the access index) sees one
/// form of each.
#[tokio::test]
async fn identifiers_are_published_in_their_one_spelling() {
    let app = spawn_app().await;
    // A seller whose check character is X, among people born 1980-03-12 in Chaoyang.
    let seller = (0..1000)
        .map(|n| person(&format!("11010519800312{n:03}")))
        .find(|id| id.ends_with('X'))
        .expect("one in eleven ends in X");
    let lower = |s: &str| s.to_ascii_lowercase();
    let mut record = title(&[(&lower(&seller), 10_000)]);
    record.unit_number = lower(UNIT);
    let ack = app
        .housing()
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta(&unique("title"), 1),
            record: Some(record),
        })
        .await
        .expect("lowercase identifiers are valid")
        .into_inner();
    let event = RecordEvent::decode(read_at(&position(&ack)).await.payload().unwrap()).unwrap();
    let Some(proto::record_event::Payload::PropertyTitle(published)) = event.payload else {
        panic!("a title: {event:?}");
    };
    assert_eq!(published.unit_number, UNIT);
    assert_eq!(published.owners[0].person_id, seller);
    let stored = app
        .records_reader(&ack.record_key)
        .get_record(proto::GetRecordRequest {
            record_key: ack.record_key.clone(),
            min_positions: vec![position(&ack)],
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(
        stored.payload,
        Some(proto::record_event::Payload::PropertyTitle(published))
    );
    app.stop().await;
}
