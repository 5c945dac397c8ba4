//! The audit trail: every lookup and check, allowed or denied, is an entry on
//! `govlink.audit.v1`, acknowledged by the broker before the answer leaves.
//!
//! - [`AuditLog`] is a process's writer: one hash chain per process (and a new one after a
//!   delivery failure), appended through the shared producer, with checkpoints of the
//!   acknowledged head on `govlink.audit-checkpoints.v1`.
//! - [`verify`] is `govlink audit verify`: it reads both topics and reports, per chain,
//!   the first changed, missing, reordered, cut-off or conflicting entry.
//! - The per-person index of the trail behind `ListDataAccesses` is the resolver's
//!   (`resolver::access`): it follows the record store.
//! - [`Signer`] signs each chain's start and checkpoints with the process's TLS key;
//!   [`TrustedCas`] checks them (see `signing`).
//!
//! See docs/decisions.md ("The audit trail") for why it is built this way.

mod access;
mod chain;
mod checkpoints;
mod signing;
pub mod verify;
mod writer;

pub use access::Access;
#[cfg(test)]
pub(crate) use chain::Tip;
pub use chain::{GENESIS, Hash, entry_hash, hash_matches, new_chain_id};
pub use signing::{Signer, SigningError, StartRefusal, TrustedCas, WriterKey};
pub use writer::{AuditLog, Writer};

use crate::kafka::PublishError;

/// Why an access could not be recorded. The lookup it belongs to must not answer (the
/// query layer maps every variant to `UNAVAILABLE`). Messages never carry personal data.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The producer did not take the entry, or the broker did not store it.
    #[error("audit entry not written: {0}")]
    Publish(#[from] PublishError),
    /// The broker did not acknowledge the entry before the deadline; it may still land.
    #[error("audit entry not acknowledged before the deadline")]
    DeadlineExceeded,
    /// An earlier entry of the chain was not written, so this one would sit behind a gap;
    /// the writer continues in a new chain that declares the old one abandoned.
    #[error("an earlier audit entry of this chain was not written; the writer starts a new chain")]
    ChainBroken,
    /// The writer was closed (shutdown): no entry may follow its closed checkpoint.
    #[error("the audit log is closed")]
    Closed,
    /// A chain start or checkpoint could not be signed (the key refused to sign).
    #[error("audit record not signed: {0}")]
    Signing(String),
}
