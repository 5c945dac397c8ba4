//! The admin HTTP server every process runs beside its gRPC port: metrics, health,
//! readiness and the status page, sampled from the process's telemetry, broker, store
//! and case store. What it exposes is counted in `crate::telemetry`; the operator tools
//! are in `crate::tools`.

pub mod sample;
mod server;
pub mod status;

pub use server::AdminServer;

/// The admin HTTP server's paths.
pub mod paths {
    /// Prometheus text exposition.
    pub const METRICS: &str = "/metrics";
    /// Alive: the process serves HTTP.
    pub const HEALTHZ: &str = "/healthz";
    /// Ready: broker and Redis reachable, topics present, the record store caught up.
    pub const READYZ: &str = "/readyz";
    /// The status page.
    pub const STATUS: &str = "/";
}
