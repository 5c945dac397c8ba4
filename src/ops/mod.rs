//! Operating govlink: the admin HTTP server (metrics, health, the status page) and the
//! telemetry every component reports through. The operator tools are in `crate::tools`.

pub mod admin;
pub mod events;
pub mod metrics;
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
