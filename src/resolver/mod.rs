//! The resolver: materializes the record topics into the store and answers lookups
//! from it; indexes the audit trail per person (`access`) for `ListDataAccesses` and
//! the streams of `WatchDataAccesses` (`watches`).

pub mod access;
pub mod checks;
pub mod disputes;
mod materializer;
pub mod policy;
pub mod positions;
pub mod query;
mod service;
pub mod store;
pub mod watches;

pub use materializer::{
    AppliedChange, Materializer, MaterializerConfig, MaterializerError, Timings, TimingsSnapshot,
    new_generation,
};
/// The dead-letter topic's headers and reason kinds, for the operator tools.
pub mod dead_letter {
    pub use super::materializer::{
        DeadLetterKind, OFFSET_HEADER, PARTITION_HEADER, REASON_HEADER, REPLAY_COUNT_HEADER,
        REPLAY_ORIGINAL_HEADER, TOPIC_HEADER, TRUNCATED_FROM_HEADER,
    };
}
pub use positions::Positions;
pub use service::ResolverService;
