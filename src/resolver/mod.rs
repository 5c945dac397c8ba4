//! The resolver: materializes the record topics into the store and answers lookups
//! from it.

mod materializer;
mod service;
pub mod store;

pub use materializer::{Materializer, MaterializerConfig, MaterializerError};
pub use service::ResolverService;
