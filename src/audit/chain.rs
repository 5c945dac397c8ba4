//! The hash chain itself, free of I/O: how an entry's hash is defined and how a writer
//! numbers and links its entries.
//!
//! ```text
//! hash = SHA-256( "govlink.audit.v1 entry\0"
//!               || u32 BE byte length of chain_id || chain_id (UTF-8)
//!               || u64 BE sequence
//!               || previous_hash (32 bytes)
//!               || body )
//! ```
//!
//! The body (an encoded `AuditBody`) comes last and is the only field of variable length
//! without a length prefix, so no two different (chain, sequence, previous, body) tuples
//! hash the same bytes. The domain tag keeps these hashes apart from any other SHA-256
//! use of the same bytes.

use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::proto::AuditEntry;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The `previous_hash` of every chain's first entry.
pub const GENESIS: Hash = [0; 32];

/// Separates entry hashes from every other use of SHA-256 over the same bytes.
const DOMAIN: &[u8] = b"govlink.audit.v1 entry\0";

/// The hash of the entry `sequence` of chain `chain_id` (see the module docs).
pub fn entry_hash(chain_id: &str, sequence: u64, previous: &Hash, body: &[u8]) -> Hash {
    let id = chain_id.as_bytes();
    // Chain ids are short (a UUID); one longer than 4 GiB cannot be built in memory.
    let id_len = u32::try_from(id.len()).unwrap_or(u32::MAX);
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(id_len.to_be_bytes());
    hasher.update(id);
    hasher.update(sequence.to_be_bytes());
    hasher.update(previous);
    hasher.update(body);
    hasher.finalize().into()
}

/// Whether `entry.hash` is the hash of the entry's own fields. False for malformed hashes
/// (not 32 bytes), so a truncated or padded hash never passes.
pub fn hash_matches(entry: &AuditEntry) -> bool {
    let Ok(previous) = <&Hash>::try_from(entry.previous_hash.as_slice()) else {
        return false;
    };
    entry.hash.as_slice() == entry_hash(&entry.chain_id, entry.sequence, previous, &entry.body)
}

/// A fresh chain id: 128 random bits as 32 hex digits.
pub fn new_chain_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The tip of a chain as its writer sees it: the id, the next sequence and the last
/// entry's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tip {
    /// The chain id.
    pub(crate) id: String,
    /// The sequence the next entry gets.
    pub(crate) next: u64,
    /// The hash of the last entry (the next entry's `previous_hash`).
    pub(crate) last_hash: Hash,
}

impl Tip {
    /// An empty chain: its first entry gets sequence 0 and the genesis previous hash.
    pub(crate) fn new(id: String) -> Tip {
        Tip {
            id,
            next: 0,
            last_hash: GENESIS,
        }
    }

    /// The next entry of the chain carrying `body`. The tip does not move: call
    /// [`Tip::advance`] once the entry was handed to the producer, so an entry that never
    /// left leaves no gap.
    pub(crate) fn next_entry(&self, body: &crate::proto::AuditBody) -> AuditEntry {
        let body = body.encode_to_vec();
        let hash = entry_hash(&self.id, self.next, &self.last_hash, &body);
        AuditEntry {
            chain_id: self.id.clone(),
            sequence: self.next,
            previous_hash: self.last_hash.to_vec(),
            hash: hash.to_vec(),
            body,
        }
    }

    /// Moves the tip past `entry`, which [`Tip::next_entry`] made.
    pub(crate) fn advance(&mut self, entry: &AuditEntry) {
        debug_assert_eq!(entry.sequence, self.next);
        self.next += 1;
        if let Ok(hash) = Hash::try_from(entry.hash.as_slice()) {
            self.last_hash = hash;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AuditBody, ChainStart, DataAccess, audit_body::Kind};

    fn access(purpose: &str) -> AuditBody {
        AuditBody {
            at: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            kind: Some(Kind::Access(DataAccess {
                purpose: purpose.into(),
                ..DataAccess::default()
            })),
        }
    }

    #[test]
    fn the_hash_is_sha256_over_the_documented_layout() {
        let body = b"body bytes";
        let previous = [7u8; 32];
        let mut bytes = b"govlink.audit.v1 entry\0".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 3]);
        bytes.extend_from_slice(b"abc");
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        bytes.extend_from_slice(&previous);
        bytes.extend_from_slice(body);
        let expected: Hash = Sha256::digest(&bytes).into();
        assert_eq!(entry_hash("abc", 258, &previous, body), expected);
    }

    #[test]
    fn every_field_is_covered_and_the_length_prefix_separates_id_from_sequence() {
        let base = entry_hash("abc", 1, &GENESIS, b"x");
        assert_ne!(base, entry_hash("abd", 1, &GENESIS, b"x"));
        assert_ne!(base, entry_hash("abc", 2, &GENESIS, b"x"));
        assert_ne!(base, entry_hash("abc", 1, &[1; 32], b"x"));
        assert_ne!(base, entry_hash("abc", 1, &GENESIS, b"y"));
        // Without the prefix, moving a byte from the id into the sequence could collide.
        assert_ne!(
            entry_hash("ab", u64::from_be_bytes(*b"c\0\0\0\0\0\0\0"), &GENESIS, b""),
            entry_hash("abc", 0, &GENESIS, b"")
        );
    }

    #[test]
    fn a_tip_links_entries_and_moves_only_when_told() {
        let mut tip = Tip::new("chain-1".into());
        let start = tip.next_entry(&AuditBody {
            at: None,
            kind: Some(Kind::Start(ChainStart::default())),
        });
        assert_eq!(
            (start.sequence, start.previous_hash.as_slice()),
            (0, &GENESIS[..])
        );
        assert!(hash_matches(&start));
        // Not advanced: the same entry again.
        assert_eq!(tip.next_entry(&access("x")).sequence, 0);
        tip.advance(&start);
        let second = tip.next_entry(&access("x"));
        assert_eq!(second.sequence, 1);
        assert_eq!(second.previous_hash, start.hash);
        assert!(hash_matches(&second));

        let mut changed = second.clone();
        changed.body = access("y").encode_to_vec();
        assert!(!hash_matches(&changed));
        let mut short = second;
        short.previous_hash.pop();
        assert!(
            !hash_matches(&short),
            "a malformed previous hash never matches"
        );
    }

    #[test]
    fn chain_ids_are_128_random_bits() {
        let (a, b) = (new_chain_id(), new_chain_id());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
