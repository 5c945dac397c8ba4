//! Topic administration: govlink creates the topics it needs at start-up, because
//! production brokers (and the test broker) do not auto-create them.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::time::{Instant, sleep};

/// One topic govlink needs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Full topic name.
    pub name: String,
    /// Partitions to create it with (an existing topic keeps its own).
    pub partitions: i32,
    /// Replicas per partition.
    pub replication: i32,
    /// Compacted (record topics: the latest version per key survives) or deleted by age.
    pub compacted: bool,
}

/// Why topics could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin client could not be created or the broker refused a request.
    #[error("kafka admin: {0}")]
    Kafka(#[from] KafkaError),
    /// The broker refused to create a topic.
    #[error("cannot create topic {topic}: {code}")]
    Create {
        /// The topic.
        topic: String,
        /// The broker's reason.
        code: RDKafkaErrorCode,
    },
    /// The topics did not appear in metadata in time.
    #[error("topics not visible after {0:?}: {1}")]
    NotVisible(Duration, String),
}

/// Creates the missing topics of `specs` and waits until all are visible in metadata.
pub async fn ensure_topics(
    bootstrap: &str,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<(), AdminError> {
    let admin: Arc<AdminClient<DefaultClientContext>> =
        Arc::new(super::client_config(bootstrap, "govlink-admin").create()?);
    // Create only what is missing: an existing topic keeps its settings, and a deployment
    // whose principal may not create topics still starts when they exist.
    let missing = missing_topics(&admin, specs).await;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .filter(|spec| missing.contains(&spec.name))
        .map(|spec| {
            let topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(spec.replication),
            );
            if spec.compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let created = if new_topics.is_empty() {
        Vec::new()
    } else {
        admin.create_topics(&new_topics, &options).await?
    };
    for result in created {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Create { topic, code }),
        }
    }

    // Creation is asynchronous on some brokers: wait until every topic has its leaders.
    let deadline = Instant::now() + timeout;
    loop {
        let missing = missing_topics(&admin, specs).await;
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(AdminError::NotVisible(timeout, missing.join(", ")));
        }
        sleep(Duration::from_millis(100)).await;
    }
}

async fn missing_topics(
    admin: &Arc<AdminClient<DefaultClientContext>>,
    specs: &[TopicSpec],
) -> Vec<String> {
    let client = Arc::clone(admin);
    // A metadata request blocks on the broker: keep it off the async workers.
    let metadata = tokio::task::spawn_blocking(move || {
        client.inner().fetch_metadata(None, Duration::from_secs(5))
    })
    .await;
    let Ok(Ok(metadata)) = metadata else {
        return specs.iter().map(|s| s.name.clone()).collect();
    };
    specs
        .iter()
        .filter(|spec| {
            !metadata.topics().iter().any(|t| {
                t.name() == spec.name
                    && t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            })
        })
        .map(|spec| spec.name.clone())
        .collect()
}
