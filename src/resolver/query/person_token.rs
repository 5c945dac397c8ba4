//! Tokens that carry a position in one person's data back and forth between a caller and
//! the resolver: a `ListDataAccesses` page token, a `WatchDataAccesses` cursor. A token is
//! a format byte, the position, and a check digest over the token's kind, the person and
//! the position, in hex. One that does not check out (mangled, made up, another person's,
//! another kind's) reads as none, so a caller can only hand back what it was given.

use sha2::{Digest, Sha256};

use crate::domain::ResidentId;

/// The bytes of a token's check digest.
const CHECK_LEN: usize = 8;

/// One kind of token: what its digest is domain-separated by, and its format byte.
pub(super) struct TokenKind {
    /// Mixed into the digest, so a token of one kind never checks out as another's.
    pub(super) domain: &'static [u8],
    /// The first byte of every token of this kind.
    pub(super) version: u8,
}

impl TokenKind {
    /// The token of `position` in `person`'s data.
    pub(super) fn encode(&self, person: &ResidentId, position: &[u8]) -> String {
        let mut bytes = vec![self.version];
        bytes.extend_from_slice(position);
        bytes.extend_from_slice(&self.check(person, position));
        hex::encode(bytes)
    }

    /// The position `token` carries, if it is a token of this kind for `person`. Without
    /// a person only its shape is checked (the caller's own violation on the person says
    /// the rest).
    pub(super) fn decode(&self, token: &str, person: Option<&ResidentId>) -> Option<Vec<u8>> {
        let bytes = hex::decode(token).ok()?;
        let (&version, rest) = bytes.split_first()?;
        let split = rest.len().checked_sub(CHECK_LEN)?;
        let (position, digest) = rest.split_at(split);
        let checks = person.is_none_or(|p| self.check(p, position) == digest);
        (version == self.version && checks).then(|| position.to_vec())
    }

    fn check(&self, person: &ResidentId, position: &[u8]) -> [u8; CHECK_LEN] {
        let mut hasher = Sha256::new();
        hasher.update(self.domain);
        hasher.update(person.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(position);
        let digest = hasher.finalize();
        let mut out = [0; CHECK_LEN];
        out.copy_from_slice(&digest[..CHECK_LEN]);
        out
    }
}
