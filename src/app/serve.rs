//! Serving and the ordered shutdown: serve until the shutdown future resolves or a
//! supervised task stops, then, within one grace period, stop accepting, finish the
//! in-flight calls, stop the tasks (the materializer commits its offsets) and flush the
//! producer; the embedded broker goes last.

use std::future::Future;
use std::pin::Pin;

use super::*;

/// A serving gRPC server, to its end.
type Server<'a> = Pin<&'a mut (dyn Future<Output = Result<(), tonic::transport::Error>> + Send)>;

/// The supervised tasks, each with its name and outcome.
type Tasks = JoinSet<(&'static str, Result<(), String>)>;

/// What the serving loop reports a failure to.
struct Watch<'a> {
    health: &'a HealthReporter,
    services: &'a [&'static str],
    /// Cancelled when a task failed: the server stops taking calls.
    failed: &'a CancellationToken,
    /// Cancelled once the server stopped taking calls, for whatever reason.
    stop_accepting: &'a CancellationToken,
}

impl App {
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
        let stopping = stopping(shutdown, failed.clone(), stop_accepting.clone(), streams);
        let server = crate::grpc::serve(listener, routes.routes(), options, stopping);
        tokio::pin!(server);
        let watch = Watch {
            health: &health,
            services: &services,
            failed: &failed,
            stop_accepting: &stop_accepting,
        };
        let (mut served, failure) =
            serve_and_watch(server.as_mut(), &mut tasks, &mut readiness, &watch).await;

        // One grace period for the whole shutdown, from here on.
        let deadline = Instant::now() + grace;
        set_status(&health, &services, ServingStatus::NotServing).await;
        if served.is_none() {
            match timeout_at(deadline, server.as_mut()).await {
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

/// Resolves when the server should stop taking calls: `shutdown`, or a task failed;
/// then ends the server streams.
async fn stopping(
    shutdown: impl Future<Output = ()> + Send,
    failed: CancellationToken,
    stop_accepting: CancellationToken,
    streams: CancellationToken,
) {
    tokio::select! {
        () = shutdown => tracing::info!("shutting down: no new calls"),
        () = failed.cancelled() => tracing::error!("stopping after a task failed"),
    }
    stop_accepting.cancel();
    streams.cancel();
}

/// Serves, and watches the tasks (any that ends now has failed) and the readiness, until
/// the server stops taking calls; what it answered if it ended, and the first failure.
async fn serve_and_watch(
    mut server: Server<'_>,
    tasks: &mut Tasks,
    readiness: &mut Option<(&'static str, watch::Receiver<bool>)>,
    watch: &Watch<'_>,
) -> (
    Option<Result<(), tonic::transport::Error>>,
    Option<AppError>,
) {
    let mut failure: Option<AppError> = None;
    let mut served = None;
    while served.is_none() && !watch.stop_accepting.is_cancelled() {
        tokio::select! {
            result = server.as_mut() => served = Some(result),
            Some(joined) = tasks.join_next() => {
                let error = task_failure(joined);
                tracing::error!(error = %error, "a supervised task stopped; the app stops");
                failure.get_or_insert(error);
                set_status(watch.health, watch.services, ServingStatus::NotServing).await;
                watch.failed.cancel();
            }
            (service, ready) = readiness_change(readiness) => {
                if failure.is_none() {
                    watch.health.set_service_status(service, serving_if(ready)).await;
                }
            }
            () = watch.stop_accepting.cancelled() => {}
        }
    }
    (served, failure)
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
fn spawn_tasks(to_spawn: Vec<Task>, stop: &CancellationToken) -> Tasks {
    let mut tasks = JoinSet::new();
    for task in to_spawn {
        let run = (task.run)(stop.child_token());
        tasks.spawn(async move { (task.name, run.await) });
    }
    tasks
}

/// Waits for the tasks to stop and then for the producer to flush, until `deadline`.
async fn stop_and_flush(mut tasks: Tasks, publisher: Publisher, deadline: Instant) {
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
