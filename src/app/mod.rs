//! Wiring: builds what a command runs from `Settings` — each role contributes its gRPC
//! services and its supervised tasks — serves them on a bound listener until a shutdown
//! future resolves or a task fails, then shuts down in order within one grace period:
//! stop accepting, finish in-flight calls, stop the tasks (the materializer commits its
//! offsets), flush the producer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::adapters::{
    Housing, ProvidentFund, PublicSecurity, PublishPath, Publishers, SocialSecurity,
};
use crate::audit::{self, AuditLog, Signer};
use crate::cases::store::{CaseStore, MemoryCaseStore};
use crate::config::Settings;
use crate::grpc::RequesterSource;
use crate::kafka::{
    AdminError, Brokers, EmbeddedBroker, Publisher, Sizing, TopicSpec, Topics, check_topic_configs,
    ensure_topics,
};
use crate::proto::{
    self, Agency, housing_adapter_server::HousingAdapterServer,
    provident_fund_adapter_server::ProvidentFundAdapterServer,
    public_security_adapter_server::PublicSecurityAdapterServer, resolver_server::ResolverServer,
    social_security_adapter_server::SocialSecurityAdapterServer,
};
use crate::records::AGENCIES;
use crate::redis_link::RedisLink;
use crate::resolver::access::{AccessIndex, AccessIndexer, ChainTrust, IndexerConfig};
use crate::resolver::policy::Policy;
use crate::resolver::query::Queries;
use crate::resolver::store::{MemoryStore, RedisStore, Store, StoreError};
use crate::resolver::{Materializer, MaterializerConfig, Positions, ResolverService};
use crate::telemetry::metrics::Telemetry;
use crate::tls::ServerTls;

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One agency's adapter.
    Adapter(Agency),
    /// The resolver: materializer and lookups.
    Resolver,
    /// The case engine and the `Cases` and `Tasks` services (cases are kept in Redis).
    Cases,
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
    /// The broker or Redis cannot be reached, or refused govlink: the operator's to fix,
    /// said in one line (its own `Display`, kept as the source so `main` finds it).
    #[error("{0}")]
    Unreachable(#[from] crate::reach::ReachError),
    /// The Kafka client could not be created.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Topics could not be ensured.
    #[error(transparent)]
    Topics(#[from] AdminError),
    /// The store could not be reached.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The listener could not be bound or served.
    #[error("grpc server: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A supervised task stopped while the app was serving; the app stopped with it so
    /// a supervisor can restart the process.
    #[error("{task} stopped: {reason}")]
    TaskFailed {
        /// The task's name.
        task: &'static str,
        /// Why it stopped.
        reason: String,
    },
}

/// Serves a gRPC service in `parts`, reported SERVING in gRPC health while the app is
/// healthy. (A macro: tonic's bound on services names a type of one of its private
/// dependencies.)
macro_rules! serve {
    ($parts:expr, $service:expr) => {{
        let service = $service;
        $parts.services.push(service_name(&service));
        $parts.routes.add_service(service);
    }};
}

fn service_name<S: NamedService>(_: &S) -> &'static str {
    S::NAME
}

mod admin;
mod callers;
mod cases;
mod kafka;
mod resolver;
mod serve;

pub(crate) use kafka::Kafka;

use callers::Callers;
use resolver::load_policy;
pub(crate) use resolver::materializer_config;

/// A task's future: runs until its token is cancelled; ending earlier is a failure.
type TaskFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A long-running task of a role, supervised by the app.
struct Task {
    name: &'static str,
    run: Box<dyn FnOnce(CancellationToken) -> TaskFuture + Send>,
}

/// What roles contribute to a process: gRPC services (and their names, for health) and
/// tasks to supervise.
#[derive(Default)]
pub struct Parts {
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    tasks: Vec<Task>,
    /// A service that is SERVING only while this says it is ready (the resolver while
    /// its store is caught up).
    readiness: Option<(&'static str, watch::Receiver<bool>)>,
    /// Cancelled when the server stops taking calls, so server streams (which never end
    /// on their own) end and the shutdown does not wait a grace period for them.
    streams: CancellationToken,
    /// The process's metrics, which every component reports to.
    telemetry: Telemetry,
    /// The case store, where the role has a case engine or a record bridge.
    case_store: Option<CaseStore>,
    /// The servers' TLS material; `None` serves plaintext (`dev`, `demo`, tests).
    tls: Option<Arc<ServerTls>>,
    /// Where each call's requester comes from (see `callers`).
    source: RequesterSource,
}

impl Parts {
    /// Starts this process's audit chain for `writer`, with its checkpoints supervised.
    async fn audit_log(
        &mut self,
        settings: &Settings,
        kafka: &Kafka,
        publisher: &Publisher,
        writer: &'static str,
    ) -> Result<AuditLog, AppError> {
        let signer = Signer::of_tls(
            settings
                .tls_files()
                .map_err(|e| AppError::Config(e.to_string()))?
                .as_ref(),
        )
        .map_err(|e| AppError::Config(format!("audit trail: {e}")))?;
        let writer = audit::Writer {
            role: writer,
            host: settings.host.clone(),
            signer: signer.map(Arc::new),
        };
        let audit = AuditLog::start(
            publisher.clone(),
            &kafka.topics,
            writer,
            self.telemetry.clone(),
        )
        .await
        .map_err(|e| AppError::Config(format!("audit trail: {e}")))?;
        let (checkpoints, interval) = (audit.clone(), settings.audit_checkpoint_interval());
        self.supervise("audit checkpoints", move |stop| {
            checkpoints.run_checkpoints(interval, stop)
        });
        Ok(audit)
    }

    /// Supervises a task: it gets a token cancelled at shutdown (after in-flight calls
    /// finished); if it ends before that, the app stops with an error.
    fn supervise<F>(
        &mut self,
        name: &'static str,
        run: impl FnOnce(CancellationToken) -> F + Send + 'static,
    ) where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.tasks.push(Task {
            name,
            run: Box::new(move |token| Box::pin(run(token))),
        });
    }
}

/// The publish path every adapter of the process shares: with TLS, only the policy's
/// integrations publish, and a refused attempt is audited; without, anyone.
async fn publish_path(
    parts: &mut Parts,
    settings: &Settings,
    role: Role,
    kafka: &Kafka,
    publisher: &Publisher,
) -> Result<Arc<PublishPath>, AppError> {
    let publishers = match parts.tls {
        Some(_) => Publishers::Integrations {
            policy: std::sync::Arc::new(load_policy(settings, role)?),
            audit: parts
                .audit_log(settings, kafka, publisher, "adapters")
                .await?,
        },
        None => Publishers::Anyone,
    };
    Ok(PublishPath::new(
        publishers,
        publisher.clone(),
        kafka.topics.clone(),
        crate::adapters::PublishLimits {
            max_batch: settings.max_batch,
            rate: crate::limits::Rate::new(
                settings.publish_rate_per_agency,
                settings.publish_burst,
            ),
        },
        settings.request_timeout(),
        settings.max_clock_skew(),
        parts.telemetry.clone(),
    ))
}

/// The adapters of `agencies` over one publish path.
fn adapters(parts: &mut Parts, path: &std::sync::Arc<PublishPath>, agencies: &[Agency]) {
    use std::sync::Arc;
    for agency in agencies {
        match agency {
            Agency::SocialSecurity => {
                serve!(
                    parts,
                    SocialSecurityAdapterServer::new(SocialSecurity(Arc::clone(path)))
                );
            }
            Agency::PublicSecurity => {
                serve!(
                    parts,
                    PublicSecurityAdapterServer::new(PublicSecurity(Arc::clone(path)))
                );
            }
            Agency::Housing => serve!(parts, HousingAdapterServer::new(Housing(Arc::clone(path)))),
            Agency::ProvidentFund => {
                serve!(
                    parts,
                    ProvidentFundAdapterServer::new(ProvidentFund(Arc::clone(path)))
                );
            }
            Agency::Unspecified => {}
        }
    }
}

/// A built application, bound to its port, not yet serving.
pub struct App {
    listener: TcpListener,
    parts: Parts,
    publisher: Publisher,
    kafka: Kafka,
    /// The resolver's store, when the role has one.
    store: Option<Store>,
    grace: Duration,
    /// Concurrent calls per HTTP/2 connection (`max_concurrent_streams`).
    max_concurrent_streams: u32,
    /// The admin HTTP server, unless `admin_addr` turns it off.
    admin: Option<crate::admin::AdminServer>,
}

impl App {
    /// Connects to the broker and the store the role needs, creates missing topics and
    /// binds the gRPC listener (port 0 picks a free port).
    pub async fn build(settings: &Settings, role: Role) -> Result<App, AppError> {
        crate::tls::install_process_provider();
        // Before anything is touched: a server that may not start says so at once.
        let telemetry = crate::telemetry::metrics::Metrics::new();
        let callers = Callers::of(settings, role, &telemetry)?;
        crate::tls::expiry::report_files(
            &settings.link_certificates(),
            &telemetry,
            std::time::SystemTime::now(),
        );
        let kafka = Kafka::connect(settings, role).await?;
        let publisher = Publisher::new(
            &kafka.brokers,
            settings.request_timeout().max(Duration::from_secs(1)) * 3,
            settings.max_in_flight,
        )?;
        let mut parts = Parts {
            telemetry,
            ..Parts::default()
        };
        callers.watch(&mut parts);
        (parts.tls, parts.source) = (callers.tls, callers.source);
        // A fatal producer error (the idempotent producer lost its sequence) cannot be
        // recovered in this process without risking order: stop, so the supervisor
        // restarts it with a fresh producer.
        let fatal = publisher.fatal();
        parts.supervise("producer", move |stop| async move {
            tokio::select! {
                reason = fatal => Err(format!("fatal producer error: {reason}")),
                () = stop.cancelled() => Ok(()),
            }
        });
        let agencies: &[Agency] = match role {
            Role::Adapter(agency) => &[agency][..],
            Role::Dev => &AGENCIES[..],
            Role::Resolver | Role::Cases => &[],
        };
        if !agencies.is_empty() {
            let path = publish_path(&mut parts, settings, role, &kafka, &publisher).await?;
            adapters(&mut parts, &path, agencies);
        }
        let store = match role {
            Role::Resolver | Role::Dev => {
                Some(resolver::resolver(&mut parts, settings, role, &kafka, &publisher).await?)
            }
            Role::Adapter(_) | Role::Cases => None,
        };
        if role == Role::Cases {
            cases::standalone(&mut parts, settings, &kafka, &publisher).await?;
        }
        let admin = admin::bind(settings, role, &parts, &kafka, &publisher, store.as_ref()).await?;
        let listener = TcpListener::bind(settings.grpc_addr).await?;
        Ok(App {
            listener,
            parts,
            publisher,
            kafka,
            store,
            grace: settings.shutdown_grace(),
            max_concurrent_streams: settings.max_concurrent_streams,
            admin,
        })
    }

    /// The broker the app talks to (the embedded one's address in `dev` without `kafka`).
    pub fn kafka_bootstrap(&self) -> &str {
        self.kafka.brokers.bootstrap()
    }

    /// The brokers the app talks to and how (the embedded one in `dev` without `kafka`).
    pub fn kafka_brokers(&self) -> &Brokers {
        &self.kafka.brokers
    }

    /// The resolver's store (the in-memory one in `dev` without `redis`), if it has one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The address the admin HTTP server listens on, unless it is off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .map(crate::admin::AdminServer::local_addr)
    }

    /// The address the gRPC server listens on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }
}
