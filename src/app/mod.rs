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
    AdminError, Brokers, EmbeddedBroker, Publisher, TopicSpec, Topics, check_topic_configs,
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
            let publishers = match parts.tls {
                Some(_) => Publishers::Integrations {
                    policy: std::sync::Arc::new(load_policy(settings, role)?),
                    audit: parts
                        .audit_log(settings, &kafka, &publisher, "adapters")
                        .await?,
                },
                None => Publishers::Anyone,
            };
            let path = PublishPath::new(
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
            );
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

    /// Serves until `shutdown` resolves or a supervised task stops, then shuts down in
    /// order within one grace period. A task that stopped makes this an error (the
    /// process exits non-zero so its supervisor restarts it).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AppError> {
        let App {
            listener,
            parts,
            publisher,
            kafka,
            grace,
            max_concurrent_streams,
            store: _,
            admin,
        } = self;
        let Parts {
            mut routes,
            services,
            tasks: mut to_spawn,
            mut readiness,
            streams,
            telemetry,
            case_store: _,
            tls,
            source: _,
        } = parts;
        if let Some(admin) = admin {
            to_spawn.push(Task {
                name: "admin http",
                run: Box::new(move |stop| Box::pin(admin.run(stop))),
            });
        }
        let health = start_health(&mut routes, &services, readiness.as_ref()).await;
        let stop_tasks = CancellationToken::new();
        let mut tasks = spawn_tasks(to_spawn, &stop_tasks);
        tracing::info!(addr = %listener.local_addr()?, "serving grpc");

        let failed = CancellationToken::new();
        let stop_accepting = CancellationToken::new();
        let options = crate::grpc::ServeOptions {
            tls,
            max_concurrent_streams,
            telemetry,
        };
        let server = crate::grpc::serve(listener, routes.routes(), options, {
            let (failed, stop_accepting) = (failed.clone(), stop_accepting.clone());
            async move {
                tokio::select! {
                    () = shutdown => tracing::info!("shutting down: no new calls"),
                    () = failed.cancelled() => tracing::error!("stopping after a task failed"),
                }
                stop_accepting.cancel();
                streams.cancel();
            }
        });
        tokio::pin!(server);

        // Serve, and watch the tasks: any that ends now has failed.
        let mut failure: Option<AppError> = None;
        let mut served = None;
        while served.is_none() && !stop_accepting.is_cancelled() {
            tokio::select! {
                result = &mut server => served = Some(result),
                Some(joined) = tasks.join_next() => {
                    let error = task_failure(joined);
                    tracing::error!(error = %error, "a supervised task stopped; the app stops");
                    failure.get_or_insert(error);
                    set_status(&health, &services, ServingStatus::NotServing).await;
                    failed.cancel();
                }
                (service, ready) = readiness_change(&mut readiness) => {
                    if failure.is_none() {
                        health.set_service_status(service, serving_if(ready)).await;
                    }
                }
                () = stop_accepting.cancelled() => {}
            }
        }

        // One grace period for the whole shutdown, from here on.
        let deadline = Instant::now() + grace;
        set_status(&health, &services, ServingStatus::NotServing).await;
        if served.is_none() {
            match timeout_at(deadline, &mut server).await {
                Ok(result) => served = Some(result),
                Err(_) => tracing::warn!("in-flight calls did not finish within the grace period"),
            }
        }
        // Calls are done: only now stop the materializer (lookups waiting for positions
        // were served until the end), then flush what adapters published.
        stop_tasks.cancel();
        stop_and_flush(tasks, publisher, deadline).await;
        // The embedded broker (dev) goes last: everything above still talked to it.
        drop(kafka.embedded);
        tracing::info!("stopped");
        if let Some(failure) = failure {
            return Err(failure);
        }
        match served {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Health and reflection added to `routes`: every service SERVING, the watched one as
/// its readiness says.
async fn start_health(
    routes: &mut RoutesBuilder,
    services: &[&'static str],
    readiness: Option<&(&'static str, watch::Receiver<bool>)>,
) -> HealthReporter {
    let (health, health_service) = tonic_health::server::health_reporter();
    add_health_and_reflection(routes, health_service, services);
    set_status(&health, services, ServingStatus::Serving).await;
    if let Some((service, ready)) = readiness {
        let status = serving_if(*ready.borrow());
        health.set_service_status(service, status).await;
    }
    health
}

/// Spawns every task, each stopped by a child token of `stop`.
fn spawn_tasks(
    to_spawn: Vec<Task>,
    stop: &CancellationToken,
) -> JoinSet<(&'static str, Result<(), String>)> {
    let mut tasks = JoinSet::new();
    for task in to_spawn {
        let run = (task.run)(stop.child_token());
        tasks.spawn(async move { (task.name, run.await) });
    }
    tasks
}

/// Waits for the tasks to stop and then for the producer to flush, until `deadline`.
async fn stop_and_flush(
    mut tasks: JoinSet<(&'static str, Result<(), String>)>,
    publisher: Publisher,
    deadline: Instant,
) {
    let drained = timeout_at(deadline, async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok((name, Err(reason))) = joined {
                tracing::warn!(task = name, reason, "task failed while stopping");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("tasks did not stop within the grace period");
        tasks.abort_all();
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let flushed = tokio::task::spawn_blocking(move || publisher.flush(remaining)).await;
    if !matches!(flushed, Ok(Ok(()))) {
        tracing::warn!("producer did not flush within the grace period");
    }
}

/// The next change of the watched service's readiness; never resolves without one.
async fn readiness_change(
    readiness: &mut Option<(&'static str, watch::Receiver<bool>)>,
) -> (&'static str, bool) {
    if let Some((service, ready)) = readiness.as_mut()
        && ready.changed().await.is_ok()
    {
        return (*service, *ready.borrow_and_update());
    }
    // Nothing to watch (or the watch ended): wait for the other branches.
    std::future::pending().await
}

/// Adds gRPC health (overall and per service) and both reflection versions (older
/// grpcurl and IDE clients only speak v1alpha); reflection lists the `services` served,
/// health and reflection themselves.
fn add_health_and_reflection(
    routes: &mut RoutesBuilder,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    services: &[&'static str],
) {
    let listed = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    let reflection = || {
        services.iter().chain(&listed).fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |builder, name| builder.with_service_name(*name),
        )
    };
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
}

fn serving_if(ready: bool) -> ServingStatus {
    if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Sets every service's health, and the overall health (service "").
async fn set_status(health: &HealthReporter, services: &[&'static str], status: ServingStatus) {
    for name in services.iter().copied().chain([""]) {
        health.set_service_status(name, status).await;
    }
}

fn task_failure(
    joined: Result<(&'static str, Result<(), String>), tokio::task::JoinError>,
) -> AppError {
    match joined {
        Ok((task, Ok(()))) => AppError::TaskFailed {
            task,
            reason: "ended on its own".into(),
        },
        Ok((task, Err(reason))) => AppError::TaskFailed { task, reason },
        Err(e) => AppError::TaskFailed {
            task: "a task",
            reason: if e.is_panic() {
                "panicked".into()
            } else {
                e.to_string()
            },
        },
    }
}
