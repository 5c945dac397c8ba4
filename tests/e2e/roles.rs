//! The production shape: an adapter and a resolver as separate apps. A resolver that stops
//! and starts again resumes from its group's commits and loses nothing published meanwhile.

use std::time::Duration;

use govlink::app::Role;
use govlink::proto::{self, Agency, GetRecordRequest, Position};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tonic::Code;

use crate::helpers::*;

async fn version_of(resolver: &TestApp, id: &str, after: &[Position]) -> u64 {
    resolver
        .resolver_as("public-security/records", None)
        .get_record(GetRecordRequest {
            record_key: format!("public-security/household_registration/{id}"),
            min_positions: after.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .version
}

#[tokio::test]
async fn a_restarted_resolver_resumes_and_loses_nothing_published_while_it_was_down() {
    let settings = test_settings();
    let adapter = spawn_app_with(settings.clone(), Role::Adapter(Agency::PublicSecurity)).await;
    let resolver = spawn_app_with(settings.clone(), Role::Resolver).await;

    // Each app serves only its own role.
    let status = adapter
        .resolver()
        .get_record(GetRecordRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    let status = adapter
        .housing()
        .publish_property_title(proto::PublishPropertyTitleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unimplemented,
        "an adapter serves its own agency only"
    );
    let status = resolver
        .police()
        .publish_identity(proto::PublishIdentityRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    // Health and reflection describe what each app serves.
    let mut health = tonic_health::pb::health_client::HealthClient::new(adapter.channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "govlink.v1.PublicSecurityAdapter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "govlink.v1.Resolver".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // Reflection lists exactly what is served, health included.
    let served = |service: &str| {
        let mut all = vec![
            service.to_owned(),
            "grpc.health.v1.Health".to_owned(),
            "grpc.reflection.v1.ServerReflection".to_owned(),
            "grpc.reflection.v1alpha.ServerReflection".to_owned(),
        ];
        all.sort();
        all
    };
    let mut listed = reflected_services(&resolver).await;
    listed.sort();
    assert_eq!(listed, served("govlink.v1.Resolver"));
    let mut listed = reflected_services(&adapter).await;
    listed.sort();
    assert_eq!(listed, served("govlink.v1.PublicSecurityAdapter"));

    let first = publish_household_at(&adapter, "h-1", 1).await;
    assert_eq!(
        version_of(&resolver, "h-1", std::slice::from_ref(&first)).await,
        1
    );
    resolver.stop().await;
    // What was materialized is committed for the group of the store's generation: the
    // next member starts after it.
    let group = format!(
        "{}.{}",
        settings.consumer_group,
        generation(&settings.redis_prefix).await
    );
    assert_eq!(committed(&group, &first).await, first.offset + 1);

    let while_down = [
        publish_household_at(&adapter, "h-1", 2).await,
        publish_household_at(&adapter, "h-2", 1).await,
    ];
    let resolver = spawn_app_with(settings.clone(), Role::Resolver).await;
    assert_eq!(version_of(&resolver, "h-1", &while_down).await, 2);
    assert_eq!(version_of(&resolver, "h-2", &while_down).await, 1);

    resolver.stop().await;
    adapter.stop().await;
}

/// The offset `group` has committed for the partition of `at`, asked of the broker.
async fn committed(group: &str, at: &Position) -> i64 {
    let (group, at) = (group.to_owned(), at.clone());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka())
            .set("group.id", &group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&at.topic, at.partition);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        match committed.elements()[0].offset() {
            Offset::Offset(o) => o,
            other => panic!("nothing committed: {other:?}"),
        }
    })
    .await
    .unwrap()
}

/// The services an app lists through gRPC server reflection.
async fn reflected_services(app: &TestApp) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    match responses.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    }
}
