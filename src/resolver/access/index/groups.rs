//! Refusals collapsed: the same requester refused the same method, purpose, case and
//! reason on the same person is one entry with a count and its first and last time, so a
//! flood of refusals costs one entry per kind of refusal, not one per refusal.
//!
//! Counting must survive a replay of the trail (an indexer restarted after writing a
//! batch but before committing its offsets). A chain's entries sit on one partition, in
//! order, so a group remembers, per chain, the highest sequence it counted: a refusal at
//! or below it was counted already. It keeps that mark for the [`MAX_CHAIN_MARKS`] chains
//! that refused most recently; a replay reaches back seconds, not across that many
//! writer restarts.

use sha2::{Digest, Sha256};

use super::timestamp_ms;
use crate::proto::PersonAccess;

/// The bytes of a group id.
pub(super) const GROUP_ID_LEN: usize = 16;
/// The most chains a group remembers its counted sequence for.
pub(super) const MAX_CHAIN_MARKS: usize = 16;

/// Which group a refusal belongs to: a digest of everything the citizen is shown about it
/// but its times and place in the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct GroupId([u8; GROUP_ID_LEN]);

impl GroupId {
    /// The group of `refusal`.
    pub(super) fn of(refusal: &PersonAccess) -> GroupId {
        let described = PersonAccess {
            requester_agency: refusal.requester_agency,
            requester_service: refusal.requester_service.clone(),
            purpose: refusal.purpose.clone(),
            case_id: refusal.case_id.clone(),
            method: refusal.method.clone(),
            sections: refusal.sections.clone(),
            decision: refusal.decision,
            reason: refusal.reason.clone(),
            ..Default::default()
        };
        // prost encodes fields in tag order: the same description, the same bytes.
        let digest = Sha256::digest(prost::Message::encode_to_vec(&described));
        let mut id = [0; GROUP_ID_LEN];
        id.copy_from_slice(&digest[..GROUP_ID_LEN]);
        GroupId(id)
    }

    /// The id's bytes.
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A group as stored: the entry the citizen is shown, and what was counted.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct GroupState {
    /// The entry: the first refusal's fields, with `count` and `last_at`.
    #[prost(message, optional, tag = "1")]
    pub(super) access: Option<PersonAccess>,
    /// Per chain, the highest sequence counted.
    #[prost(message, repeated, tag = "2")]
    pub(super) chains: Vec<ChainMark>,
}

/// The highest sequence of one chain a group counted.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ChainMark {
    #[prost(string, tag = "1")]
    pub(super) chain_id: String,
    #[prost(uint64, tag = "2")]
    pub(super) sequence: u64,
    /// The latest refusal of the chain counted, ms since the epoch (which marks to keep).
    #[prost(int64, tag = "3")]
    pub(super) last_ms: i64,
}

impl GroupState {
    /// When the first refusal was, ms since the epoch.
    pub(super) fn first_ms(&self) -> i64 {
        self.access
            .as_ref()
            .and_then(|a| a.at.as_ref())
            .map_or(0, timestamp_ms)
    }

    /// When the latest refusal was, ms since the epoch.
    pub(super) fn last_ms(&self) -> i64 {
        self.access
            .as_ref()
            .and_then(|a| a.last_at.as_ref())
            .map_or(0, timestamp_ms)
    }
}

/// `state` with `refusals` (one group's, in trail order) counted, or `None` when every
/// one of them was counted already.
pub(super) fn absorb(state: Option<&GroupState>, refusals: &[&PersonAccess]) -> Option<GroupState> {
    let mut next = state.cloned().unwrap_or_default();
    let mut changed = false;
    for refusal in refusals {
        let at_ms = refusal.at.as_ref().map_or(0, timestamp_ms);
        match next
            .chains
            .iter_mut()
            .find(|m| m.chain_id == refusal.chain_id)
        {
            Some(mark) if mark.sequence >= refusal.sequence => continue,
            Some(mark) => {
                mark.sequence = refusal.sequence;
                mark.last_ms = mark.last_ms.max(at_ms);
            }
            None => next.chains.push(ChainMark {
                chain_id: refusal.chain_id.clone(),
                sequence: refusal.sequence,
                last_ms: at_ms,
            }),
        }
        changed = true;
        let (first_ms, last_ms) = (next.first_ms(), next.last_ms());
        match next.access.as_mut() {
            None => {
                next.access = Some(PersonAccess {
                    count: 1,
                    last_at: refusal.at,
                    ..(*refusal).clone()
                });
            }
            Some(entry) => {
                entry.count = entry.count.saturating_add(1);
                // A refusal indexed late (from another writer's partition) may be the
                // group's first: the entry then shows it, and moves in the list.
                if at_ms < first_ms {
                    entry.at = refusal.at;
                    entry.chain_id.clone_from(&refusal.chain_id);
                    entry.sequence = refusal.sequence;
                }
                if at_ms > last_ms {
                    entry.last_at = refusal.at;
                }
            }
        }
    }
    if next.chains.len() > MAX_CHAIN_MARKS {
        next.chains.sort_by_key(|m| std::cmp::Reverse(m.last_ms));
        next.chains.truncate(MAX_CHAIN_MARKS);
    }
    changed.then_some(next)
}
