//! govlink: a data-sharing gateway between government agencies. Agencies publish record
//! changes through gRPC adapters onto Kafka; a resolver materializes them into Redis and
//! answers cross-agency lookups.

pub mod adapters;
pub mod admin;
pub mod app;
pub mod audit;
pub mod bench;
pub mod cases;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod grpc;
pub mod identity;
pub mod kafka;
pub mod limits;
pub mod reach;
pub mod records;
pub mod redis_link;
pub mod resolver;
pub mod secret;
pub mod telemetry;
pub mod tls;
mod toml_lines;
pub mod tools;

/// The generated wire contract (`proto/govlink/v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("govlink.v1");

    /// The encoded descriptors of the contract, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("govlink_descriptor");
}
