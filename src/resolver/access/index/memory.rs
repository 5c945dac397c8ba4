//! The access index in process memory (`dev`, `demo`): the same entries, order, groups
//! and bounds as in Redis, in maps under one mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use prost::Message as _;

use super::arrivals::ArrivalId;
use super::groups::{GroupId, GroupState, absorb};
use super::order::{Cursor, group_key, time_bytes, time_of};
use super::{
    ChainHead, Fetched, IndexBounds, IndexError, IndexWrite, Logged, decode_access, now_ms,
};
use crate::proto::PersonAccess;

/// The index in memory.
#[derive(Clone, Default)]
pub struct MemoryIndex {
    people: Arc<Mutex<HashMap<String, PersonIndex>>>,
    /// Every chain's verified head (see `AccessIndex::chain_heads`).
    heads: Arc<Mutex<HashMap<String, ChainHead>>>,
}

/// One person's part of the index.
#[derive(Default)]
struct PersonIndex {
    /// Accesses kept on their own: key → encoded access.
    singles: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Refusal groups by id.
    groups: HashMap<GroupId, GroupState>,
    /// The groups' keys, in list order.
    order: BTreeMap<Vec<u8>, GroupId>,
    /// The newest access the bounds dropped, ms since the epoch (0: none).
    cut_ms: i64,
    /// The keys of the accesses kept on their own, in the order they were first added
    /// (see `super::arrivals`), at most as many as the accesses bound.
    arrivals: VecDeque<(ArrivalId, Vec<u8>)>,
    /// The last id logged (it outlives the entries the bound drops).
    last_arrival: ArrivalId,
}

impl MemoryIndex {
    /// The verified heads of `chains` that were saved.
    pub(super) fn heads(&self, chains: &[&str]) -> Vec<Option<ChainHead>> {
        let heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        chains.iter().map(|c| heads.get(*c).copied()).collect()
    }

    /// Saves `heads`, each only if it is past the one saved.
    pub(super) fn save_heads(&self, new: &[(String, ChainHead)]) {
        let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        for (chain, head) in new {
            let saved = heads.entry(chain.clone()).or_insert(*head);
            if saved.0 < head.0 {
                *saved = *head;
            }
        }
    }

    /// Up to `n` entries of each kind after `after`, newest first, within the retention.
    pub(super) fn fetch(
        &self,
        person: &str,
        after: Option<&Cursor>,
        n: usize,
        cutoff: i64,
    ) -> Result<Fetched, IndexError> {
        let people = self.people.lock().unwrap_or_else(|e| e.into_inner());
        let Some(index) = people.get(person) else {
            return Ok(Fetched::default());
        };
        let upper = match after {
            Some(cursor) => Bound::Excluded(cursor.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let lower = Bound::Included(time_bytes(cutoff.saturating_add(1)).to_vec());
        let singles = index
            .singles
            .range((lower, upper.clone()))
            .rev()
            .take(n)
            .map(|(key, access)| Ok((key.clone(), decode_access(access)?)))
            .collect::<Result<_, IndexError>>()?;
        let groups = index
            .order
            .range((Bound::Unbounded, upper))
            .rev()
            .filter_map(|(key, id)| index.groups.get(id).map(|g| (key, g)))
            .filter(|(_, group)| group.last_ms() > cutoff)
            .take(n)
            .map(|(key, group)| (key.clone(), group.access.clone().unwrap_or_default()))
            .collect();
        Ok(Fetched {
            singles,
            groups,
            cut_ms: index.cut_ms,
        })
    }

    /// The last id of `person`'s arrival log ([`ArrivalId::START`] for an empty one).
    pub(super) fn last_arrival(&self, person: &str) -> ArrivalId {
        let people = self.people.lock().unwrap_or_else(|e| e.into_inner());
        people
            .get(person)
            .map_or(ArrivalId::START, |index| index.last_arrival)
    }

    /// Up to `n` entries of `person`'s arrival log after `after`, oldest first.
    pub(super) fn arrivals(
        &self,
        person: &str,
        after: ArrivalId,
        n: usize,
    ) -> Result<Vec<Logged>, IndexError> {
        let people = self.people.lock().unwrap_or_else(|e| e.into_inner());
        let Some(index) = people.get(person) else {
            return Ok(Vec::new());
        };
        let first = index.arrivals.partition_point(|(id, _)| *id <= after);
        index
            .arrivals
            .range(first..)
            .take(n)
            .map(|(id, key)| {
                let access = match index.singles.get(key) {
                    Some(access) => Some((key.clone(), decode_access(access)?)),
                    None => None,
                };
                Ok((*id, access))
            })
            .collect()
    }

    /// Adds `writes`, then trims each written person's part to the retention and bounds.
    pub(super) fn add(&self, writes: &[IndexWrite], cutoff: i64, bounds: IndexBounds) {
        let mut people = self.people.lock().unwrap_or_else(|e| e.into_inner());
        let mut refusals: BTreeMap<(&str, GroupId), Vec<&PersonAccess>> = BTreeMap::new();
        for write in writes {
            match write {
                IndexWrite::Single {
                    person,
                    key,
                    access,
                } => {
                    let index = people.entry(person.clone()).or_default();
                    if index
                        .singles
                        .insert(key.clone(), access.encode_to_vec())
                        .is_none()
                    {
                        index.log(key.clone());
                    }
                }
                IndexWrite::Refusal {
                    person,
                    group,
                    refusal,
                } => refusals
                    .entry((person.as_str(), *group))
                    .or_default()
                    .push(refusal),
            }
        }
        for ((person, id), refusals) in refusals {
            let index = people.entry(person.to_owned()).or_default();
            let before = index.groups.get(&id);
            let Some(after) = absorb(before, &refusals) else {
                continue;
            };
            if let Some(before) = before {
                index.order.remove(&group_key(before.first_ms(), &id));
            }
            index.order.insert(group_key(after.first_ms(), &id), id);
            index.groups.insert(id, after);
        }
        let written: Vec<&String> = writes.iter().map(IndexWrite::person).collect();
        for person in written {
            if let Some(index) = people.get_mut(person) {
                index.tidy(cutoff, bounds);
            }
        }
    }
}

impl PersonIndex {
    /// Logs the key of an access added now.
    fn log(&mut self, key: Vec<u8>) {
        let id = self
            .last_arrival
            .next_at(u64::try_from(now_ms()).unwrap_or(0));
        self.last_arrival = id;
        self.arrivals.push_back((id, key));
    }

    /// Drops what is out of the retention, then the oldest beyond the bounds, noting the
    /// newest access the bounds dropped.
    fn tidy(&mut self, cutoff: i64, bounds: IndexBounds) {
        self.singles = self
            .singles
            .split_off(time_bytes(cutoff.saturating_add(1)).as_slice());
        while self.arrivals.len() > bounds.accesses {
            self.arrivals.pop_front();
        }
        while self.singles.len() > bounds.accesses {
            if let Some((key, _)) = self.singles.pop_first() {
                self.cut_ms = self.cut_ms.max(time_of(&key).unwrap_or(0));
            }
        }
        let expired: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| g.last_ms() <= cutoff)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.drop_group(id);
        }
        while self.groups.len() > bounds.refusal_groups {
            let oldest = self
                .groups
                .iter()
                .min_by_key(|(id, g)| (g.last_ms(), **id))
                .map(|(id, g)| (*id, g.last_ms()));
            if let Some((id, last_ms)) = oldest {
                self.cut_ms = self.cut_ms.max(last_ms);
                self.drop_group(id);
            }
        }
    }

    fn drop_group(&mut self, id: GroupId) {
        if let Some(group) = self.groups.remove(&id) {
            self.order.remove(&group_key(group.first_ms(), &id));
        }
    }
}
