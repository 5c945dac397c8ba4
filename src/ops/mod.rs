//! Operating govlink: the admin HTTP server (metrics, health, the status page). What it
//! exposes is counted in `crate::telemetry`; the operator tools are in `crate::tools`.

pub mod admin;
pub mod sample;
pub mod status;

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
