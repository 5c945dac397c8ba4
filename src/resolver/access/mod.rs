//! Who looked at a person's data: the per-person index of the audit trail behind
//! `ListDataAccesses` ([`AccessIndex`]), and the consumer of the audit topic that keeps
//! it ([`AccessIndexer`]), following the record store's generation. Only entries of chains
//! whose start verified, linking to their chain's verified head, are indexed
//! ([`ChainTrust`]). The trail itself, its chains and signatures are `crate::audit`'s.

mod index;
mod indexer;

pub use index::{
    AccessIndex, AccessPage, Arrival, ArrivalId, Cursor, IndexBounds, IndexError,
    MAX_ARRIVALS_PER_READ, MemoryIndex, RedisIndex, person_accesses,
};
pub use indexer::{AccessIndexer, ChainTrust, IndexerConfig};
