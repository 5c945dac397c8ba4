//! Operating govlink: the admin HTTP server (metrics, health, the status page), the
//! telemetry every component reports through, and the operator tools for topics and the
//! dead-letter queue.

pub mod admin;
pub mod decode;
pub mod dlq;
pub mod events;
pub mod metrics;
pub mod read;
pub mod sample;
pub mod status;
pub mod topics;

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
