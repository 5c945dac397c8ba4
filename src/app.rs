//! Wiring: builds the servers a command runs from `Settings`, serves them on a bound
//! listener until a shutdown future resolves, then shuts down in order — stop accepting,
//! finish in-flight calls, flush the producer, commit offsets — within a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;

use crate::adapters::{Housing, ProvidentFund, PublicSecurity, PublishPath, SocialSecurity};
use crate::config::{Settings, redact_url};
use crate::kafka::{AdminError, EmbeddedBroker, Publisher, TopicSpec, Topics, ensure_topics};
use crate::proto::{
    self, Agency, housing_adapter_server::HousingAdapterServer,
    provident_fund_adapter_server::ProvidentFundAdapterServer,
    public_security_adapter_server::PublicSecurityAdapterServer, resolver_server::ResolverServer,
    social_security_adapter_server::SocialSecurityAdapterServer,
};
use crate::records::AGENCIES;
use crate::resolver::store::{MemoryStore, RedisStore, Store, StoreError};
use crate::resolver::{Materializer, MaterializerConfig, ResolverService};

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One agency's adapter.
    Adapter(Agency),
    /// The resolver: materializer and lookups.
    Resolver,
    /// Everything in one process; an embedded broker and an in-memory store unless
    /// `kafka` / `redis` are set.
    Dev,
}

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A setting is missing for this role.
    #[error("{0}")]
    Config(String),
    /// The Kafka client could not be created.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Topics could not be ensured.
    #[error(transparent)]
    Topics(#[from] AdminError),
    /// The store could not be reached.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The materializer could not start.
    #[error(transparent)]
    Materializer(#[from] crate::resolver::MaterializerError),
    /// The listener could not be bound or served.
    #[error("grpc server: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The gRPC services one server hosts.
#[derive(Default)]
pub struct Services {
    /// The publish path the adapters share, and the agencies to serve adapters for.
    pub adapters: Option<(Arc<PublishPath>, Vec<Agency>)>,
    /// The resolver's lookups.
    pub resolver: Option<ResolverService>,
}

/// Serves `services` (plus gRPC health and reflection) on `listener` until `shutdown`
/// resolves; then stops accepting and lets in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
    };
    let mut routes = RoutesBuilder::default();
    // Both reflection versions: older grpcurl and IDE clients only speak v1alpha.
    routes
        .add_service(health)
        .add_service(
            reflection()
                .build_v1()
                .expect("the compiled descriptor set is valid"),
        )
        .add_service(
            reflection()
                .build_v1alpha()
                .expect("the compiled descriptor set is valid"),
        );
    if let Some((path, agencies)) = services.adapters {
        for agency in agencies {
            match agency {
                Agency::SocialSecurity => {
                    health_reporter
                        .set_serving::<SocialSecurityAdapterServer<SocialSecurity>>()
                        .await;
                    routes.add_service(SocialSecurityAdapterServer::new(SocialSecurity(
                        Arc::clone(&path),
                    )));
                }
                Agency::PublicSecurity => {
                    health_reporter
                        .set_serving::<PublicSecurityAdapterServer<PublicSecurity>>()
                        .await;
                    routes.add_service(PublicSecurityAdapterServer::new(PublicSecurity(
                        Arc::clone(&path),
                    )));
                }
                Agency::Housing => {
                    health_reporter
                        .set_serving::<HousingAdapterServer<Housing>>()
                        .await;
                    routes.add_service(HousingAdapterServer::new(Housing(Arc::clone(&path))));
                }
                Agency::ProvidentFund => {
                    health_reporter
                        .set_serving::<ProvidentFundAdapterServer<ProvidentFund>>()
                        .await;
                    routes.add_service(ProvidentFundAdapterServer::new(ProvidentFund(Arc::clone(
                        &path,
                    ))));
                }
                Agency::Unspecified => {}
            }
        }
    }
    if let Some(resolver) = services.resolver {
        health_reporter
            .set_serving::<ResolverServer<ResolverService>>()
            .await;
        routes.add_service(ResolverServer::new(resolver));
    }
    crate::grpc::serve(listener, routes.routes(), shutdown).await
}

/// A built application, bound to its port, not yet serving.
pub struct App {
    listener: TcpListener,
    services: Services,
    publisher: Option<Publisher>,
    materializer: Option<Materializer>,
    /// Kept alive while the app runs (`dev`/`demo` without `--kafka`).
    embedded: Option<EmbeddedBroker>,
    grace: Duration,
}

impl App {
    /// Connects to the broker and the store the role needs, creates missing topics and
    /// binds the gRPC listener (port 0 picks a free port).
    pub async fn build(settings: &Settings, role: Role) -> Result<App, AppError> {
        let topics = Topics::new(settings.topic_prefix.clone());
        let mut specs: Vec<TopicSpec> = topics
            .all_records()
            .into_iter()
            .map(|name| TopicSpec {
                name,
                partitions: settings.partitions,
                replication: settings.replication_factor,
                compacted: true,
            })
            .collect();
        specs.push(TopicSpec {
            name: topics.dlq(),
            partitions: 1,
            replication: settings.replication_factor,
            compacted: false,
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
        let bootstrap = match &embedded {
            Some(broker) => broker.bootstrap().to_owned(),
            None => settings.kafka.clone().unwrap_or_default(),
        };
        tracing::info!(
            kafka = bootstrap,
            embedded = embedded.is_some(),
            "using kafka"
        );
        ensure_topics(&bootstrap, &specs, settings.startup_timeout()).await?;

        let publisher = Publisher::new(
            &bootstrap,
            settings.request_timeout().max(Duration::from_secs(1)) * 3,
            settings.max_in_flight,
        )?;
        let mut services = Services::default();
        let mut materializer = None;
        if let Role::Adapter(agency) = role {
            services.adapters = Some((path(settings, &publisher, &topics), vec![agency]));
        }
        if matches!(role, Role::Dev) {
            services.adapters = Some((path(settings, &publisher, &topics), AGENCIES.to_vec()));
        }
        if matches!(role, Role::Resolver | Role::Dev) {
            let store = match (&settings.redis, role) {
                (Some(url), _) => {
                    tracing::info!(redis = redact_url(url), "using redis");
                    Store::Redis(RedisStore::connect(url, &settings.redis_prefix).await?)
                }
                (None, Role::Dev) => Store::Memory(MemoryStore::new()),
                (None, _) => {
                    return Err(AppError::Config(
                        "no Redis configured: set --redis or GOVLINK_REDIS".into(),
                    ));
                }
            };
            materializer = Some(Materializer::new(
                MaterializerConfig {
                    bootstrap: bootstrap.clone(),
                    group_id: settings.consumer_group.clone(),
                    batch_size: settings.materializer_batch,
                    linger: Duration::from_millis(settings.materializer_linger_ms),
                },
                store.clone(),
                topics.clone(),
                publisher.clone(),
            )?);
            services.resolver = Some(ResolverService::new(
                store,
                topics.clone(),
                settings.request_timeout(),
            ));
        }
        let listener = TcpListener::bind(settings.grpc_addr).await?;
        Ok(App {
            listener,
            services,
            publisher: Some(publisher),
            materializer,
            embedded,
            grace: settings.shutdown_grace(),
        })
    }

    /// The address the gRPC server listens on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then shuts down in order within the grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AppError> {
        let App {
            listener,
            services,
            publisher,
            materializer,
            embedded,
            grace,
        } = self;
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        if let Some(m) = materializer {
            tasks.spawn(m.run(stop.child_token()));
        }
        tracing::info!(addr = %listener.local_addr()?, "serving grpc");

        let stopping = stop.clone();
        let server = serve(listener, services, async move {
            shutdown.await;
            tracing::info!("shutting down: no new calls");
            stopping.cancel();
        });
        // In-flight calls get the grace period to finish, then are dropped.
        let served = tokio::select! {
            served = server => served,
            () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("in-flight calls did not finish within the grace period");
                Ok(())
            }
        };
        stop.cancel();

        if let Some(publisher) = publisher {
            let flushed = tokio::task::spawn_blocking(move || publisher.flush(grace)).await;
            if !matches!(flushed, Ok(Ok(()))) {
                tracing::warn!("producer did not flush within the grace period");
            }
        }
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("materializer did not stop within the grace period");
            tasks.abort_all();
        }
        drop(embedded);
        tracing::info!("stopped");
        Ok(served?)
    }
}

fn path(settings: &Settings, publisher: &Publisher, topics: &Topics) -> Arc<PublishPath> {
    PublishPath::new(
        publisher.clone(),
        topics.clone(),
        settings.max_batch,
        settings.request_timeout(),
        settings.max_clock_skew(),
    )
}
