//! The resolver: materializes the record topics into the store and answers lookups
//! from it.

pub mod checks;
mod materializer;
pub mod policy;
pub mod positions;
pub mod query;
mod service;
pub mod store;

pub use materializer::{
    AppliedChange, Materializer, MaterializerConfig, MaterializerError, Timings, TimingsSnapshot,
    new_generation,
};
pub use positions::Positions;
pub use service::ResolverService;
