//! The broker a process talks to: the embedded one (`dev`) or the configured one, with
//! every topic govlink needs created and checked at start-up.

use super::*;

/// The broker a process talks to and the topics it needs, ensured at start-up.
pub(crate) struct Kafka {
    pub(crate) brokers: Brokers,
    pub(crate) topics: Topics,
    /// Record topic → partition count.
    pub(crate) partitions: std::collections::BTreeMap<String, i32>,
    /// Kept alive while the app runs (`dev`/`demo` without `--kafka`).
    pub(super) embedded: Option<EmbeddedBroker>,
}

impl Kafka {
    /// Connects to the configured broker (or starts the embedded one for `dev`) and
    /// creates missing topics.
    pub(crate) async fn connect(settings: &Settings, role: Role) -> Result<Kafka, AppError> {
        let topics = Topics::new(settings.topic_prefix.clone());
        let specs = topics.specs(&Sizing {
            partitions: settings.partitions,
            replication: settings.replication_factor,
            record_retention_ms: settings.record_retention_ms,
        });
        let embedded = match (&settings.kafka, role) {
            (None, Role::Dev) => {
                let names: Vec<(String, i32)> = specs
                    .iter()
                    .map(|s| (s.name.clone(), s.partitions))
                    .collect();
                Some(EmbeddedBroker::start(1, &names)?)
            }
            (None, _) => {
                return Err(AppError::Config(
                    "no Kafka broker configured: set --kafka or GOVLINK_KAFKA".into(),
                ));
            }
            (Some(_), _) => None,
        };
        let brokers = match &embedded {
            Some(broker) => Brokers::plaintext(broker.bootstrap()),
            None => settings
                .brokers()
                .map_err(AppError::Config)?
                .unwrap_or_else(|| Brokers::plaintext("")),
        };
        tracing::info!(
            kafka = brokers.bootstrap(),
            security = brokers.security().protocol().as_str(),
            embedded = embedded.is_some(),
            "using kafka"
        );
        // A configured broker that does not answer stops start-up here, within
        // `connect_timeout_ms`, rather than when creating topics gives up.
        if embedded.is_none() {
            brokers.reachable(settings.connect_timeout()).await?;
        }
        let report = ensure_topics(&brokers, &specs, settings.startup_timeout()).await?;
        // Topics that existed keep their own settings: say so if they break a guarantee.
        // (The embedded broker's topics are created with ours and cannot be described.)
        // The check only warns, so it runs beside start-up rather than before it: a
        // second admin client and a describe request took a tenth of a second of every
        // start and every `govlink rebuild`.
        if embedded.is_none() {
            let existed: Vec<TopicSpec> = specs
                .iter()
                .filter(|s| report.existed.contains(&s.name))
                .cloned()
                .collect();
            let brokers = brokers.clone();
            tokio::spawn(async move { check_topic_configs(&brokers, &existed).await });
        }
        let records = topics.all_records();
        let partitions = report
            .partitions
            .into_iter()
            .filter(|(name, _)| records.contains(name))
            .collect();
        Ok(Kafka {
            brokers,
            topics,
            partitions,
            embedded,
        })
    }
}
