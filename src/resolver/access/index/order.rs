//! The order of a person's list: every entry has a key of bytes, compared as bytes, so
//! Redis sorted sets of equal scores keep them in order (`ZRANGEBYLEX`) and a page
//! resumes exactly after the last key it returned.
//!
//! A key starts with the entry's time (milliseconds since the epoch, 8 bytes big-endian),
//! then its kind: an access kept on its own (`0`, followed by its chain id, length first,
//! and its sequence: unique in the trail) or a group of collapsed refusals (`1`, followed
//! by the group's id), placed at its first refusal. Newest first is the keys' reverse
//! order.

use super::groups::{GROUP_ID_LEN, GroupId};

/// The bytes of the time at the start of every key.
pub(super) const TIME_LEN: usize = 8;
/// The kind byte of an access kept on its own.
const SINGLE: u8 = 0;
/// The kind byte of a group of refusals.
const GROUP: u8 = 1;
/// The longest chain id a key holds whole; a longer one (never written by govlink, whose
/// ids are 32 characters) is cut, which only makes its order among equal times arbitrary.
const MAX_CHAIN_LEN: usize = 255;

/// Where a page ends: the key of the last entry it returned. The next page starts after
/// it. Built only from a key this module encoded, or checked by [`Cursor::from_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// The cursor's bytes, to carry in a page token.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A cursor from bytes a token carried, if they have a key's shape.
    pub fn from_bytes(bytes: &[u8]) -> Option<Cursor> {
        let kind = *bytes.get(TIME_LEN)?;
        let rest = &bytes[TIME_LEN + 1..];
        let shaped = match kind {
            SINGLE => {
                let (&len, rest) = rest.split_first()?;
                rest.len() == usize::from(len) + 8
            }
            GROUP => rest.len() == GROUP_ID_LEN,
            _ => false,
        };
        shaped.then(|| Cursor(bytes.to_vec()))
    }

    /// The cursor of the entry whose stored member is `member` (a key, followed by the
    /// encoded access for an access of its own).
    pub(super) fn of_member(member: &[u8]) -> Option<Cursor> {
        let len = key_len(member)?;
        Some(Cursor(member[..len].to_vec()))
    }
}

/// The first `TIME_LEN` bytes of a key at `at_ms`: every key at or after that time sorts
/// at or after these bytes.
pub(super) fn time_bytes(at_ms: i64) -> [u8; TIME_LEN] {
    u64::try_from(at_ms).unwrap_or(0).to_be_bytes()
}

/// The time a key (or member) starts with.
pub(super) fn time_of(key: &[u8]) -> Option<i64> {
    let bytes: [u8; TIME_LEN] = key.get(..TIME_LEN)?.try_into().ok()?;
    i64::try_from(u64::from_be_bytes(bytes)).ok()
}

/// The key of an access kept on its own.
pub(super) fn single_key(at_ms: i64, chain_id: &str, sequence: u64) -> Vec<u8> {
    let chain = &chain_id.as_bytes()[..chain_id.len().min(MAX_CHAIN_LEN)];
    let mut key = Vec::with_capacity(TIME_LEN + 2 + chain.len() + 8);
    key.extend_from_slice(&time_bytes(at_ms));
    key.push(SINGLE);
    key.push(u8::try_from(chain.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(chain);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// The key of a group of refusals whose first one was at `first_ms`.
pub(super) fn group_key(first_ms: i64, group: &GroupId) -> Vec<u8> {
    let mut key = Vec::with_capacity(TIME_LEN + 1 + GROUP_ID_LEN);
    key.extend_from_slice(&time_bytes(first_ms));
    key.push(GROUP);
    key.extend_from_slice(group.as_bytes());
    key
}

/// How long the key at the start of `member` is.
fn key_len(member: &[u8]) -> Option<usize> {
    let len = match *member.get(TIME_LEN)? {
        SINGLE => TIME_LEN + 2 + usize::from(*member.get(TIME_LEN + 1)?) + 8,
        GROUP => TIME_LEN + 1 + GROUP_ID_LEN,
        _ => return None,
    };
    (member.len() >= len).then_some(len)
}

/// A stored single member split into its key and the encoded access after it.
pub(super) fn split_single(member: &[u8]) -> Option<(&[u8], &[u8])> {
    if member.get(TIME_LEN) != Some(&SINGLE) {
        return None;
    }
    let len = key_len(member)?;
    Some(member.split_at(len))
}
