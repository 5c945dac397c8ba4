//! One chain's entries, partition by partition. A chain lives in one partition (its
//! entries are keyed by its id), so each partition's entries of a chain are verified on
//! their own, in that partition's order; at the end, the partition holding the chain is
//! verified as the chain, and every entry of it elsewhere is a problem of its own, named
//! with where it sits. Were they verified together, a copy read before the chain itself
//! would make the chain look reordered or missing its beginning.

use super::Declaration;
use super::chain_state::ChainState;
use super::report::{ChainReport, Likeness, Problem, Truncated};
use crate::audit::signing::{StartRefusal, WriterKey};
use crate::proto::AuditCheckpoint;

/// One chain as met in the audit topic: its entries per partition.
#[derive(Debug)]
pub(super) struct Streams {
    pub(super) id: String,
    /// Per partition met, in the order first met (one, unless something copied entries
    /// elsewhere: a handful at most, as many as the topic has partitions).
    by_partition: Vec<(i32, ChainState)>,
}

impl Streams {
    pub(super) fn new(id: String) -> Streams {
        Streams {
            id,
            // Almost always the only one; a vector's first growth would reserve four.
            by_partition: Vec::with_capacity(1),
        }
    }

    /// The chain's entries in `partition`.
    pub(super) fn partition(&mut self, partition: i32) -> &mut ChainState {
        let index = match self.by_partition.iter().position(|(p, _)| *p == partition) {
            Some(index) => index,
            None => {
                let state = ChainState::new(self.id.clone());
                self.by_partition.push((partition, state));
                self.by_partition.len() - 1
            }
        };
        &mut self.by_partition[index].1
    }

    /// Bytes this chain holds by its own accounting (see [`ChainState::held_bytes`]).
    #[cfg(test)]
    pub(super) fn held_bytes(&self) -> usize {
        use std::mem::size_of;
        let states: usize = self
            .by_partition
            .iter()
            .map(|(_, state)| state.held_bytes() - size_of::<ChainState>())
            .sum();
        size_of::<Streams>()
            + self.id.capacity()
            + self.by_partition.capacity() * size_of::<(i32, ChainState)>()
            + states
    }

    /// Its start, in its own partition, checked against the CAs (`None`: not read, or no
    /// CA given).
    pub(super) fn signer(&self) -> Option<&Result<WriterKey, StartRefusal>> {
        self.home()
            .and_then(|home| self.by_partition[home].1.signer.as_ref())
    }

    /// Whether an entry of it was verified in its own partition (not all skipped by
    /// `--from`).
    pub(super) fn verified_any(&self) -> bool {
        self.home()
            .is_some_and(|home| self.by_partition[home].1.first_verified().is_some())
    }

    /// The abandoned chains its start, in its own partition, declares, and what it says
    /// of each.
    pub(super) fn declares(&self) -> &[(String, Declaration)] {
        self.home()
            .map_or(&[][..], |home| &self.by_partition[home].1.declares)
    }

    /// The chain's report: its own partition verified, given its checkpoints, the
    /// declarations of its abandonment and the audit partitions whose beginning was
    /// `deleted`, and the first entry of every other partition compared with the chain's
    /// entry of that sequence; `unverified` if its start did not prove its writer.
    pub(super) fn finish(
        mut self,
        checkpoints: &[AuditCheckpoint],
        declared: &[Declaration],
        deleted: &[Truncated],
        unverified: Option<Problem>,
    ) -> ChainReport {
        let Some(index) = self.home() else {
            // Met only in checkpoints or a declaration: no entry at all. Its partition is
            // not known; if only one partition lost its beginning, that is where it was.
            let lost_in = match deleted {
                [only] => Some(only),
                _ => None,
            };
            return ChainState::new(self.id).finish(
                checkpoints,
                declared,
                Vec::new(),
                None,
                lost_in,
            );
        };
        let (partition, home) = self.by_partition.swap_remove(index);
        let elsewhere = self
            .by_partition
            .iter()
            .filter_map(|(_, other)| copy_problem(&home, partition, other))
            .chain(unverified)
            .collect();
        let lost_in = deleted.iter().find(|t| t.partition == partition);
        home.finish(checkpoints, declared, elsewhere, Some(partition), lost_in)
    }

    /// The partition the chain lives in: the one holding most of its entries, then the
    /// one whose entries begin earliest in the chain, then the lowest. A copy of a few
    /// entries never outnumbers the chain; a copy of all of it cannot be told from it,
    /// and either way the report names the other one's place.
    fn home(&self) -> Option<usize> {
        (0..self.by_partition.len()).min_by_key(|&i| {
            let (partition, state) = &self.by_partition[i];
            (
                std::cmp::Reverse(state.messages()),
                state.first_sequence(),
                *partition,
            )
        })
    }
}

/// The problem the entries of the chain in another partition are: the first of them
/// verified, compared with the chain's own entry of its sequence. Entries before
/// `--from` are not looked at, there as in the chain's partition.
fn copy_problem(home: &ChainState, partition: i32, other: &ChainState) -> Option<Problem> {
    let first = other.first_verified()?;
    let likeness = match home.hash_at(first.seq) {
        None => Likeness::Unmatched,
        // The hash covers every field: equal and matching, it is the same entry.
        Some(hash) if first.hash == Some(hash) => Likeness::Duplicate,
        Some(_) => Likeness::Changed,
    };
    Some(Problem::OtherPartition {
        seq: first.seq,
        at: first.at,
        home: partition,
        likeness,
    })
}
