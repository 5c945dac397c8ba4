//! The app's lifecycle: a task that stops takes the app down (NOT_SERVING, an error for
//! the supervisor), and shutdown lets in-flight lookups finish before the materializer
//! stops.

use std::time::Duration;

use govlink::app::{AppError, Role};
use govlink::config::Settings;
use govlink::kafka::Topics;
use govlink::proto::{self, Agency, GetRecordRequest, Position};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::*;

async fn publish(adapter: &TestApp, version: u64) -> Result<Position, tonic::Status> {
    adapter
        .police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("h-1", version),
            record: Some(household(&alice(), proto::HouseholdStatus::Registered)),
        })
        .await
        .map(|r| position(&r.into_inner()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_marks_the_app_not_serving_and_stops_it_with_an_error() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let id = unique("fatal");
    let topics = Topics::new(format!("{id}."));
    for topic in topics.all() {
        cluster.create_topic(&topic, 1, 1).expect("topic");
    }
    let settings = Settings {
        kafka: Some(cluster.bootstrap_servers()),
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        topic_prefix: format!("{id}."),
        shutdown_grace_ms: 2_000,
        // Plaintext: what is tested is the producer, not who calls.
        insecure_requester_header: true,
        ..Settings::default()
    };
    let adapter = spawn_app_with(settings, Role::Adapter(Agency::PublicSecurity)).await;
    let mut health = HealthClient::new(adapter.channel.clone())
        .watch(HealthCheckRequest {
            service: "govlink.v1.PublicSecurityAdapter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = health.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    publish(&adapter, 1).await.expect("a healthy broker acks");

    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let status = publish(&adapter, 2).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let next = tokio::time::timeout(Duration::from_secs(10), health.message())
        .await
        .expect("health changes")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    match adapter.stopped().await {
        Err(AppError::TaskFailed { task, reason }) => {
            assert_eq!(task, "producer");
            assert!(reason.contains("fatal"), "{reason}");
        }
        other => panic!("the app must stop with the task's failure, not {other:?}"),
    }
}

#[tokio::test]
async fn a_lookup_waiting_for_a_position_at_shutdown_is_still_answered() {
    let settings = test_settings();
    let adapter = spawn_app_with(settings.clone(), Role::Adapter(Agency::PublicSecurity)).await;
    let resolver = spawn_app_with(settings.clone(), Role::Resolver).await;
    let first = publish(&adapter, 1).await.unwrap();
    // The next event of the same record lands right after the first in its partition.
    let next = Position {
        offset: first.offset + 1,
        ..first.clone()
    };
    let mut client = resolver.resolver_as("public-security/records", None);
    let lookup = tokio::spawn(async move {
        let mut request = tonic::Request::new(GetRecordRequest {
            record_key: "public-security/household_registration/h-1".into(),
            min_positions: vec![next],
        });
        request.set_timeout(Duration::from_secs(20));
        client.get_record(request).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    resolver.begin_stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Published while the resolver drains its calls: its materializer still runs.
    let second = publish(&adapter, 2).await.unwrap();
    assert_eq!(
        second.offset,
        first.offset + 1,
        "one record per producer batch"
    );
    let answer = lookup
        .await
        .unwrap()
        .expect("the waiting lookup is answered");
    assert_eq!(answer.into_inner().record.unwrap().version, 2);
    resolver.stopped().await.expect("a clean stop");
    adapter.stop().await;
}
