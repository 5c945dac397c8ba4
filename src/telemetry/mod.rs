//! What every component counts and logs: one metrics registry per process, passed down
//! as [`Telemetry`] (no globals), and the events that both log and count, so a log line
//! and its counter cannot drift apart. An event of one link lives with it (the TLS
//! certificate events in `tls`), implementing [`events::Event`]; the label vocabularies
//! are declared here with their families, so the exposition is known before anything
//! happens.

pub mod events;
pub mod metrics;

pub use events::Event;
pub use metrics::{Metrics, Telemetry};
