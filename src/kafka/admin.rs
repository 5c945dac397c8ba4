//! Topic administration: govlink creates the topics it needs at start-up, because
//! production brokers (and the test broker) do not auto-create them, and checks that
//! existing topics keep the settings its guarantees rest on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::time::{Instant, sleep};

/// How long checking existing topics' configs may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One topic govlink needs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Full topic name.
    pub name: String,
    /// Partitions to create it with (an existing topic keeps its own).
    pub partitions: i32,
    /// Replicas per partition.
    pub replication: i32,
    /// Topic configs to create it with, and to check on an existing topic.
    pub configs: Vec<(&'static str, String)>,
}

impl TopicSpec {
    /// A topic that keeps every record for `retention_ms` (-1: forever) and on which
    /// `acks=all` means what it says: `min.insync.replicas` of `min(2, replication)`, no
    /// unclean leader election. Record topics are not compacted: compaction keeps a key's
    /// last offset, not its highest version, so a rebuild could go backwards.
    pub fn durable(
        name: String,
        partitions: i32,
        replication: i32,
        retention_ms: i64,
    ) -> TopicSpec {
        TopicSpec {
            name,
            partitions,
            replication,
            configs: vec![
                ("cleanup.policy", "delete".into()),
                ("retention.ms", retention_ms.to_string()),
                ("min.insync.replicas", replication.clamp(1, 2).to_string()),
                ("unclean.leader.election.enable", "false".into()),
            ],
        }
    }
}

/// A setting of an existing topic that differs from what govlink would create it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMismatch {
    /// The topic.
    pub topic: String,
    /// The config name.
    pub name: &'static str,
    /// What govlink expects.
    pub expected: String,
    /// What the broker has (`None`: not set).
    pub actual: Option<String>,
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
    /// The broker refused the link: TLS or SASL failed. Retrying cannot help, so start-up
    /// stops at once and says which settings to look at.
    #[error(
        "the brokers refused the link ({0}): check kafka_security_protocol, kafka_ssl_* \
         and kafka_sasl_*"
    )]
    Refused(KafkaError),
    /// The brokers could not be asked anything until the operation timed out: they are
    /// unreachable, or close the link (a TLS or SASL mismatch some brokers answer so).
    #[error(
        "the brokers did not answer ({0}; last metadata request: {1}): check kafka, \
         kafka_security_protocol, kafka_ssl_* and kafka_sasl_*"
    )]
    Unreachable(KafkaError, String),
}

/// What start-up found out about the topics.
#[derive(Debug, Clone, Default)]
pub struct TopicsReport {
    /// Topic → partition count, of every topic in the specs.
    pub partitions: BTreeMap<String, i32>,
    /// The topics that existed before start-up (their configs are theirs).
    pub existed: Vec<String>,
}

/// Creates the missing topics of `specs` and waits until all are visible in metadata.
pub async fn ensure_topics(
    brokers: &super::Brokers,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<TopicsReport, AdminError> {
    let admin: Arc<AdminClient<DefaultClientContext>> =
        Arc::new(super::client_config(brokers, "govlink-admin").create()?);
    // Create only what is missing: an existing topic keeps its settings, and a deployment
    // whose principal may not create topics still starts when they exist.
    let mut failed = None;
    let (missing, _) = topic_partitions(&admin, specs, &mut failed).await?;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .filter(|spec| missing.contains(&spec.name))
        .map(|spec| {
            spec.configs.iter().fold(
                NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replication),
                ),
                |topic, (name, value)| topic.set(name, value),
            )
        })
        .collect();
    // The request timeout too: a broker that closes the link (TLS or SASL refused) would
    // otherwise keep the request waiting for a connection for librdkafka's 60 s.
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let created = if new_topics.is_empty() {
        Vec::new()
    } else {
        admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| match failed.take() {
                Some(last) => AdminError::Unreachable(e, last),
                None => AdminError::Kafka(e),
            })?
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
    let partitions = loop {
        let (absent, partitions) = topic_partitions(&admin, specs, &mut failed).await?;
        if absent.is_empty() {
            break partitions;
        }
        if Instant::now() >= deadline {
            return Err(AdminError::NotVisible(timeout, absent.join(", ")));
        }
        sleep(Duration::from_millis(100)).await;
    };
    Ok(TopicsReport {
        partitions,
        existed: specs
            .iter()
            .filter(|s| !missing.contains(&s.name))
            .map(|s| s.name.clone())
            .collect(),
    })
}

/// Checks the configs of the topics of `specs` against them, logging each difference.
/// A broker that cannot describe configs is reported once in the log and not checked.
pub async fn check_topic_configs(
    brokers: &super::Brokers,
    specs: &[TopicSpec],
) -> Vec<ConfigMismatch> {
    let admin: AdminClient<DefaultClientContext> =
        match super::client_config(brokers, "govlink-admin").create() {
            Ok(admin) => admin,
            Err(e) => {
                tracing::info!(error = %e, "cannot check topic configs");
                return Vec::new();
            }
        };
    let options = AdminOptions::new().request_timeout(Some(DESCRIBE_TIMEOUT));
    let mismatches = check_configs(&admin, specs, &options).await;
    for m in &mismatches {
        tracing::warn!(
            topic = m.topic,
            config = m.name,
            expected = m.expected,
            actual = m.actual.as_deref().unwrap_or("(unset)"),
            "existing topic's config differs from what govlink's guarantees need"
        );
    }
    mismatches
}

async fn check_configs(
    admin: &AdminClient<DefaultClientContext>,
    specs: &[TopicSpec],
    options: &AdminOptions,
) -> Vec<ConfigMismatch> {
    if specs.is_empty() {
        return Vec::new();
    }
    let resources: Vec<ResourceSpecifier<'_>> = specs
        .iter()
        .map(|s| ResourceSpecifier::Topic(&s.name))
        .collect();
    let described = match admin.describe_configs(&resources, options).await {
        Ok(described) => described,
        Err(e) => {
            tracing::info!(error = %e, "the broker does not describe topic configs; not checked");
            return Vec::new();
        }
    };
    let mut mismatches = Vec::new();
    for result in described {
        let resource = match result {
            Ok(resource) => resource,
            Err(code) => {
                tracing::info!(error = %code, "cannot describe a topic's configs; not checked");
                continue;
            }
        };
        let OwnedResourceSpecifier::Topic(topic) = &resource.specifier else {
            continue;
        };
        let Some(spec) = specs.iter().find(|s| s.name == *topic) else {
            continue;
        };
        for (name, expected) in &spec.configs {
            let actual = resource.get(name).and_then(|e| e.value.clone());
            if actual.as_deref() != Some(expected.as_str()) {
                mismatches.push(ConfigMismatch {
                    topic: topic.clone(),
                    name,
                    expected: expected.clone(),
                    actual,
                });
            }
        }
    }
    mismatches
}

/// The partition count of each of `topics` the brokers have now, asked within `timeout`
/// (topics grow when partitions are added while govlink runs). Topics the brokers do not
/// have are left out.
pub async fn partition_counts(
    brokers: &super::Brokers,
    topics: &[String],
    timeout: Duration,
) -> Result<BTreeMap<String, i32>, KafkaError> {
    let config = super::client_config(brokers, "govlink-partitions");
    let topics = topics.to_vec();
    // A metadata request blocks on the broker: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = config.create()?;
        let metadata = client.fetch_metadata(None, timeout)?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && topics.iter().any(|name| name == t.name()))
            .map(|t| {
                let count = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
                (t.name().to_owned(), count)
            })
            .collect())
    })
    .await
    // The blocking task panicked or the runtime is shutting down: no answer.
    .unwrap_or(Err(KafkaError::MetadataFetch(RDKafkaErrorCode::Fail)))
}

/// The topics of `specs` not (fully) visible in metadata, and the partition counts of
/// those that are; an error only when the broker refused the link (TLS or SASL failed).
/// A failed request is noted in `failed`, a successful one clears it.
async fn topic_partitions(
    admin: &Arc<AdminClient<DefaultClientContext>>,
    specs: &[TopicSpec],
    failed: &mut Option<String>,
) -> Result<(Vec<String>, BTreeMap<String, i32>), AdminError> {
    let client = Arc::clone(admin);
    // A metadata request blocks on the broker: keep it off the async workers.
    let metadata = tokio::task::spawn_blocking(move || {
        client.inner().fetch_metadata(None, Duration::from_secs(5))
    })
    .await;
    let metadata = match metadata {
        Ok(Ok(metadata)) => metadata,
        Ok(Err(e)) if refused(&e) => return Err(AdminError::Refused(e)),
        failure => {
            *failed = Some(match failure {
                Ok(Err(e)) => e.to_string(),
                _ => "cancelled".to_owned(),
            });
            return Ok((
                specs.iter().map(|s| s.name.clone()).collect(),
                BTreeMap::new(),
            ));
        }
    };
    *failed = None;
    let mut absent = Vec::new();
    let mut partitions = BTreeMap::new();
    for spec in specs {
        let found = metadata.topics().iter().find(|t| {
            t.name() == spec.name
                && t.error().is_none()
                && !t.partitions().is_empty()
                && t.partitions().iter().all(|p| p.leader() >= 0)
        });
        match found {
            Some(t) => {
                partitions.insert(
                    spec.name.clone(),
                    i32::try_from(t.partitions().len()).unwrap_or(i32::MAX),
                );
            }
            None => absent.push(spec.name.clone()),
        }
    }
    Ok((absent, partitions))
}

/// Whether `error` says the link itself failed (a TLS handshake, SASL credentials),
/// which no retry fixes.
pub(super) fn refused(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SSL
                | RDKafkaErrorCode::SaslAuthenticationFailed
        )
    )
}
