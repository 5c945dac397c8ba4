//! The admin HTTP server every govlink process runs beside its gRPC port (setting
//! `admin_addr`): `/metrics` (Prometheus/OpenMetrics text), `/healthz` (the process
//! serves), `/readyz` (broker and topics, Redis, the record store caught up; 503 naming
//! what is not) and `/`, the status page.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::paths;
use super::sample::{Shared, Sources};

/// The content type of the metrics exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound admin server, not yet serving.
pub struct AdminServer {
    listener: TcpListener,
    state: Arc<AdminState>,
}

struct AdminState {
    /// What the process is (`resolver`, `adapter public-security`, `dev`, ...).
    role: String,
    sources: Sources,
    samples: Shared,
}

impl AdminServer {
    /// Binds `addr` for a process of `role` whose figures come from `sources`.
    pub async fn bind(addr: SocketAddr, role: String, sources: Sources) -> std::io::Result<Self> {
        Ok(AdminServer {
            listener: TcpListener::bind(addr).await?,
            state: Arc::new(AdminState {
                role,
                sources,
                samples: Shared::default(),
            }),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Samples and serves until `stop`.
    pub async fn run(self, stop: CancellationToken) -> Result<(), String> {
        let sampler = stop.child_token();
        let sampling = tokio::spawn(
            self.state
                .sources
                .clone()
                .run(Arc::clone(&self.state.samples), sampler.clone()),
        );
        let router = Router::new()
            .route(paths::METRICS, get(metrics))
            .route(paths::HEALTHZ, get(healthz))
            .route(paths::READYZ, get(readyz))
            .route(paths::STATUS, get(status))
            .with_state(Arc::clone(&self.state));
        tracing::info!(addr = %self.local_addr(), "serving admin http");
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        // Served until `stop`, or failed: either way the sampler ends too, and is joined.
        sampler.cancel();
        if let Err(e) = sampling.await {
            tracing::error!(error = %e, "the admin sampler failed");
        }
        served.map_err(|e| format!("admin http: {e}"))
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.sources.telemetry.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let checks = state.sources.checks().await;
    let mut text = String::new();
    for (name, result) in &checks {
        match result {
            Ok(()) => text.push_str(&format!("ok {name}\n")),
            Err(why) => text.push_str(&format!("not ready: {name}: {why}\n")),
        }
    }
    let code = if checks.iter().all(|(_, r)| r.is_ok()) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, text).into_response()
}

async fn status(State(state): State<Arc<AdminState>>) -> Html<String> {
    let samples = state
        .samples
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Html(super::status::render(&state.role, &samples))
}
