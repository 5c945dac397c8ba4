//! Topics keep every version (not compaction) and are created so that `acks=all` means
//! what it says; existing topics that do not are reported.

use std::time::Duration;

use govlink::kafka::Brokers;
use govlink::kafka::{TopicSpec, check_topic_configs, ensure_topics};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::helpers::*;

fn admin() -> AdminClient<DefaultClientContext> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .unwrap()
}

/// The broker's value of each config of `topic` the test asks about.
async fn configs(topic: &str, names: &[&str]) -> Vec<Option<String>> {
    let described = admin()
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    names
        .iter()
        .map(|n| resource.get(n).and_then(|e| e.value.clone()))
        .collect()
}

#[tokio::test]
async fn record_topics_keep_every_version_and_refuse_unsafe_acks() {
    let app = spawn_app().await;
    for topic in app.topics.all_records() {
        assert_eq!(
            configs(
                &topic,
                &[
                    "cleanup.policy",
                    "retention.ms",
                    "min.insync.replicas",
                    "unclean.leader.election.enable"
                ]
            )
            .await,
            [
                Some("delete".to_owned()),
                Some("-1".to_owned()),
                Some("1".to_owned()),
                Some("false".to_owned())
            ],
            "{topic}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_existing_compacted_topic_is_reported_and_left_alone() {
    let name = format!("{}.govlink.records.housing.v1", unique("t"));
    let created =
        admin()
            .create_topics(
                &[NewTopic::new(&name, 1, TopicReplication::Fixed(1))
                    .set("cleanup.policy", "compact")],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let spec = TopicSpec::durable(name.clone(), 1, 3, -1);
    let report = ensure_topics(
        &Brokers::plaintext(kafka()),
        std::slice::from_ref(&spec),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(report.existed, std::slice::from_ref(&name));
    let mismatches = check_topic_configs(&Brokers::plaintext(kafka()), &[spec]).await;
    let names: Vec<&str> = mismatches.iter().map(|m| m.name).collect();
    assert!(names.contains(&"cleanup.policy"), "{mismatches:?}");
    assert!(
        names.contains(&"min.insync.replicas"),
        "min(2, 3) = 2: {mismatches:?}"
    );
    let policy = mismatches
        .iter()
        .find(|m| m.name == "cleanup.policy")
        .unwrap();
    assert_eq!(policy.actual.as_deref(), Some("compact"));
    assert_eq!(policy.expected, "delete");
    assert_eq!(
        configs(&name, &["cleanup.policy"]).await,
        [Some("compact".to_owned())]
    );
}
