//! One chain under verification: its entries checked as they come, then its checkpoints
//! and its writer's declaration at the end.

use std::collections::BTreeMap;

use super::Declaration;
use super::report::{ChainReport, ChainStatus, Location, Problem, Signature, Truncated};
use crate::audit::chain::{GENESIS, Hash};
use crate::audit::signing::{StartRefusal, WriterKey};
use crate::proto::audit_body::Kind;
use crate::proto::{AuditBody, AuditCheckpoint, AuditEntry};

/// The longest run of missing sequences held open for a late (reordered) entry; a longer
/// jump is reported as missing at once. Holding a gap open costs the same whatever its
/// length (its bounds, not a slot per sequence), so this bounds how far apart a late entry
/// may be told reordered rather than missing, not memory.
pub(super) const MAX_GAP: u64 = 1 << 20;

/// An entry as first verified in a partition: enough to compare it with the chain's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub(super) seq: u64,
    pub(super) at: Location,
    /// Its hash, if it matches its content.
    pub(super) hash: Option<Hash>,
}

/// Sequences a chain jumped over, held as bounds rather than slots, so what a gap costs
/// does not grow with its length: a forged entry far ahead costs what its message does.
#[derive(Debug)]
struct Gap {
    /// The first sequence jumped over.
    start: u64,
    /// The sequence the chain went on from.
    end: u64,
    /// The hash of every sequence from `end` on.
    after: Vec<Hash>,
    /// Entries that came late, into the gap (each already a problem), with their hash
    /// when it has the right length. One per message read, at most.
    late: BTreeMap<u64, Option<Hash>>,
}

impl Gap {
    fn contains(&self, seq: u64) -> bool {
        (self.start..self.end).contains(&seq)
    }

    /// Bytes held: the gap, the hashes after it, and the late entries' B-tree nodes
    /// (at most one node of 11 slots per 5 entries, plus the root).
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        use std::mem::size_of;
        const NODE: usize = 11 * (size_of::<u64>() + size_of::<Option<Hash>>()) + 128;
        let nodes = if self.late.is_empty() {
            0
        } else {
            1 + self.late.len() / 5
        };
        size_of::<Gap>() + self.after.capacity() * size_of::<Hash>() + nodes * NODE
    }
}

/// One chain's entries in one partition (see [`super::streams`]).
#[derive(Debug)]
pub(super) struct ChainState {
    pub(super) id: String,
    /// From the chain's `ChainStart`.
    pub(super) writer: Option<String>,
    /// From the chain's `ChainStart`: the chains it declares abandoned and what it says
    /// of each.
    pub(super) declares: Vec<(String, Declaration)>,
    /// Its `ChainStart` checked against the CAs (`None`: not seen, or no CA given).
    pub(super) signer: Option<Result<WriterKey, StartRefusal>>,
    /// Entries verified (exact duplicates and skipped entries not counted).
    entries: u64,
    /// Entries before `--from`, not verified.
    skipped: u64,
    /// Exact copies of verified entries (producer retries), ignored.
    duplicates: u64,
    /// Messages read, whatever they turned out to be.
    messages: u64,
    /// The sequence of the first message read.
    first_sequence: Option<u64>,
    /// The first entry verified.
    first_verified: Option<Seen>,
    /// The first sequence verified; `None` until one was.
    base: Option<u64>,
    /// The hash of every sequence from `base` up to the gap, or up to `next` without one.
    hashes: Vec<Hash>,
    /// The chain's one gap, if it jumped over sequences (a second jump ends checking).
    gap: Option<Box<Gap>>,
    /// What the next entry must be: its sequence and its previous hash.
    next: u64,
    prev: Hash,
    /// Problems found while reading.
    problems: Vec<Problem>,
    /// After a definitive problem only late entries filling a gap are still looked at.
    stopped: bool,
}

impl ChainState {
    pub(super) fn new(id: String) -> ChainState {
        ChainState {
            id,
            writer: None,
            declares: Vec::new(),
            signer: None,
            entries: 0,
            skipped: 0,
            duplicates: 0,
            messages: 0,
            first_sequence: None,
            first_verified: None,
            base: None,
            hashes: Vec::new(),
            gap: None,
            next: 0,
            prev: GENESIS,
            problems: Vec::new(),
            stopped: false,
        }
    }

    /// Whether verification has begun (an entry was accepted).
    pub(super) fn anchored(&self) -> bool {
        self.base.is_some()
    }

    /// Messages read.
    pub(super) fn messages(&self) -> u64 {
        self.messages
    }

    /// Bytes this state holds by its own accounting: itself, its strings, and every
    /// slot its vectors reserved (capacity, not length).
    #[cfg(test)]
    pub(super) fn held_bytes(&self) -> usize {
        use std::mem::size_of;
        let declares = self.declares.capacity() * size_of::<(String, Declaration)>()
            + self
                .declares
                .iter()
                .map(|(id, d)| id.capacity() + d.by.capacity() + d.hash.capacity())
                .sum::<usize>();
        size_of::<ChainState>()
            + self.id.capacity()
            + self.writer.as_ref().map_or(0, String::capacity)
            + self
                .signer
                .as_ref()
                .map_or(0, |s| s.as_ref().map_or(0, WriterKey::held_bytes))
            + declares
            + self.hashes.capacity() * size_of::<Hash>()
            + self.gap.as_deref().map_or(0, Gap::held_bytes)
            + self.problems.capacity() * size_of::<Problem>()
    }

    /// The sequence of the first message read (`None`: none was).
    pub(super) fn first_sequence(&self) -> Option<u64> {
        self.first_sequence
    }

    /// The first entry verified (`None`: none was, e.g. all before `--from`).
    pub(super) fn first_verified(&self) -> Option<Seen> {
        self.first_verified
    }

    fn note(&mut self, entry: &AuditEntry) {
        self.messages += 1;
        self.first_sequence.get_or_insert(entry.sequence);
    }

    /// An entry before `--from`: not verified, but the first verified entry must follow
    /// it (so entries deleted right after `--from` are still missed).
    pub(super) fn skip(&mut self, entry: &AuditEntry) {
        self.note(entry);
        self.skipped += 1;
        self.next = entry.sequence.saturating_add(1);
        self.prev = Hash::try_from(entry.hash.as_slice()).unwrap_or(GENESIS);
    }

    /// An entry to verify, read `at`, with its decoded body and whether its hash matches
    /// it.
    pub(super) fn accept(
        &mut self,
        at: Location,
        entry: &AuditEntry,
        body: Option<&AuditBody>,
        hash_ok: bool,
    ) {
        self.note(entry);
        let seq = entry.sequence;
        let base = *self.base.get_or_insert(self.next);
        if seq < base {
            // Behind the anchor: part of what `--from` skipped.
            self.skipped += 1;
            return;
        }
        self.first_verified.get_or_insert(Seen {
            seq,
            at,
            hash: hash_ok
                .then(|| Hash::try_from(entry.hash.as_slice()).ok())
                .flatten(),
        });
        if seq < self.next {
            return self.backwards(entry, hash_ok);
        }
        if self.stopped {
            return;
        }
        let linked = seq == self.next;
        if !linked {
            if seq - self.next > MAX_GAP {
                self.problems.push(Problem::Missing { seq: self.next });
                self.stopped = true;
                return;
            }
            // A second gap while one is open ends forward checking (one gap to hold):
            // the first gap is what gets reported, unless a late entry fills it.
            if self.gap.is_some() {
                self.stopped = true;
                return;
            }
            self.gap = Some(Box::new(Gap {
                start: self.next,
                end: seq,
                after: Vec::new(),
                late: BTreeMap::new(),
            }));
        }
        if let Some(problem) = check(entry, body, hash_ok, linked.then_some(&self.prev)) {
            self.problems.push(problem);
            self.stopped = true;
            return;
        }
        // `check` passed, so the hash matches the entry and has its 32 bytes.
        let hash = Hash::try_from(entry.hash.as_slice()).unwrap_or(GENESIS);
        match self.gap.as_mut() {
            Some(gap) => gap.after.push(hash),
            None => self.hashes.push(hash),
        }
        self.entries += 1;
        self.next = seq + 1;
        self.prev = hash;
    }

    /// An entry whose sequence was passed already: a late one filling a gap (reordered),
    /// an exact duplicate, or a different entry under a used sequence.
    fn backwards(&mut self, entry: &AuditEntry, hash_ok: bool) {
        let seq = entry.sequence;
        if let Some(gap) = self.gap.as_mut()
            && gap.contains(seq)
            && !gap.late.contains_key(&seq)
        {
            self.problems.push(Problem::Reordered {
                seq,
                after: self.next - 1,
            });
            // Seen after all: the gap it leaves is not "missing".
            gap.late
                .insert(seq, Hash::try_from(entry.hash.as_slice()).ok());
            self.stopped = true;
            return;
        }
        let Some(stored) = self.hash_at(seq) else {
            return;
        };
        if hash_ok && entry.hash.as_slice() == stored {
            // The hash covers every field: this is the same entry again.
            self.duplicates += 1;
        } else if !self.stopped {
            self.problems.push(Problem::DuplicateDiffers { seq });
            self.stopped = true;
        }
    }

    /// The chain's report, given its checkpoints, the declarations of its abandonment,
    /// the problems its entries in other partitions are, its partition, and whether that
    /// partition lost its beginning (`lost_in`).
    pub(super) fn finish(
        self,
        checkpoints: &[AuditCheckpoint],
        declared: &[Declaration],
        elsewhere: Vec<Problem>,
        partition: Option<i32>,
        lost_in: Option<&Truncated>,
    ) -> ChainReport {
        let last = self.last_seq();
        let mut problems = self.problems.clone();
        problems.extend(elsewhere);
        let first_missing = self.first_missing();
        if let Some(seq) = first_missing {
            problems.push(Problem::Missing { seq });
        }
        problems.extend(self.checkpoint_problems(checkpoints));
        let latest = checkpoints.iter().max_by_key(|c| c.sequence);
        // Declared more than once, the chain is held to every declaration, and only what
        // follows the highest head is excused.
        let acknowledged = declared.iter().filter_map(|d| d.sequence).max();
        if !declared.is_empty() {
            problems.extend(declared.iter().filter_map(|d| self.declaration_problem(d)));
            // An abandoned chain may lack what followed its acknowledged head, but not
            // what a checkpoint vouched for.
            let vouched = acknowledged.max(latest.map(|c| c.sequence));
            problems.retain(|p| !excused(p, vouched));
        }
        if let Some(truncated) = lost_in {
            for problem in &mut problems {
                if let Some(deleted) = self.deleted(problem, truncated) {
                    *problem = deleted;
                }
            }
        }
        let verified_up_to = match first_missing {
            Some(0) => None,
            Some(seq) => Some(seq - 1),
            None => last.filter(|_| self.base.is_some()),
        };
        let status = match problems.into_iter().min_by_key(Problem::seq) {
            Some(problem) => ChainStatus::Failed(problem),
            None => match declared.first() {
                Some(d) => ChainStatus::Abandoned {
                    acknowledged_up_to: acknowledged,
                    continued_in: d.by.clone(),
                    verified_up_to,
                },
                None if latest.is_some_and(|c| c.closed && Some(c.sequence) == last) => {
                    ChainStatus::Closed
                }
                None => ChainStatus::Open { verified_up_to },
            },
        };
        let signature = match &self.signer {
            None => Signature::Unchecked,
            Some(Ok(_)) => Signature::Verified,
            Some(Err(StartRefusal::Unsigned)) => Signature::Unsigned,
            Some(Err(_)) => Signature::Refused,
        };
        ChainReport {
            signature,
            head: last.and_then(|l| self.hash_at(l)),
            chain_id: self.id,
            partition,
            writer: self.writer,
            entries: self.entries,
            skipped: self.skipped,
            duplicates: self.duplicates,
            last_sequence: last,
            checkpoint: latest.map(|c| (c.sequence, c.closed)),
            status,
        }
    }

    /// The highest sequence seen in order (verified, or skipped before the anchor): the
    /// one `next` follows.
    fn last_seq(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }

    /// The hash of the verified entry `seq`; `None` if skipped, missing or not reached.
    pub(super) fn hash_at(&self, seq: u64) -> Option<Hash> {
        let offset = seq.checked_sub(self.base?)?;
        match self.gap.as_deref() {
            Some(gap) if gap.contains(seq) => gap.late.get(&seq).copied().flatten(),
            Some(gap) if seq >= gap.end => gap.after.get(slot(seq - gap.end)).copied(),
            _ => self.hashes.get(slot(offset)).copied(),
        }
    }

    /// The first sequence of the gap no late entry filled.
    fn first_missing(&self) -> Option<u64> {
        let gap = self.gap.as_deref()?;
        let mut seq = gap.start;
        for late in gap.late.keys() {
            if *late != seq {
                break;
            }
            seq += 1;
        }
        (seq < gap.end).then_some(seq)
    }

    /// A checkpoint beyond the last entry, or one that does not match its entry, means
    /// the chain was cut off (or rewritten after it); an entry after a closed checkpoint
    /// was appended by someone else.
    fn checkpoint_problems(&self, checkpoints: &[AuditCheckpoint]) -> Vec<Problem> {
        let last = self.last_seq();
        let mut problems = Vec::new();
        // A sequence before the anchor (skipped by `--from`) has no hash here: not checked.
        for checkpoint in checkpoints {
            let seq = checkpoint.sequence;
            if last.is_none_or(|l| seq > l) {
                problems.push(Problem::CutOff {
                    last,
                    expected: seq,
                    by: "a checkpoint",
                });
            } else if let Some(hash) = self.hash_at(seq)
                && checkpoint.hash.as_slice() != hash
            {
                problems.push(Problem::CheckpointMismatch {
                    seq,
                    by: "a checkpoint",
                });
            }
            if checkpoint.closed && last.is_some_and(|l| l > seq) {
                problems.push(Problem::AfterClose { seq: seq + 1 });
            }
        }
        problems
    }

    /// A problem at the chain's beginning (its first entries missing, or none left at
    /// all) in a partition that lost its beginning, as the deletion it is.
    fn deleted(&self, problem: &Problem, truncated: &Truncated) -> Option<Problem> {
        let (seq, left, vouched) = match *problem {
            // Nothing of the chain read before the gap (not even before `--from`).
            Problem::Missing { seq } if seq == self.base? && self.skipped == 0 => {
                (seq, Some(self.first_verified?.seq), None)
            }
            Problem::CutOff {
                last: None,
                expected,
                by,
            } => (0, None, Some((expected, by))),
            _ => return None,
        };
        Some(Problem::Deleted {
            seq,
            left,
            vouched,
            partition: truncated.partition,
            low_watermark: truncated.low_watermark,
        })
    }

    /// The chain must reach the head its writer declared acknowledged, with that hash.
    fn declaration_problem(&self, declared: &Declaration) -> Option<Problem> {
        let seq = declared.sequence?;
        let last = self.last_seq();
        if last.is_none_or(|l| seq > l) {
            return Some(Problem::CutOff {
                last,
                expected: seq,
                by: "its writer's declaration of abandonment",
            });
        }
        let hash = self.hash_at(seq)?;
        (declared.hash.as_slice() != hash).then_some(Problem::CheckpointMismatch {
            seq,
            by: "its writer's declaration of abandonment",
        })
    }
}

/// Checks an entry in place: its own hash, its link to the entry before (when that one
/// is known), and that it carries what its place calls for.
fn check(
    entry: &AuditEntry,
    body: Option<&AuditBody>,
    hash_ok: bool,
    previous: Option<&Hash>,
) -> Option<Problem> {
    let seq = entry.sequence;
    if !hash_ok {
        return Some(Problem::Changed { seq });
    }
    if previous.is_some_and(|p| entry.previous_hash.as_slice() != p) {
        return Some(Problem::BrokenLink { seq });
    }
    let what = match (seq, body.and_then(|b| b.kind.as_ref())) {
        (0, Some(Kind::Start(_))) | (1.., Some(Kind::Access(_))) => return None,
        (0, _) => "the first entry is not a chain start",
        (_, Some(Kind::Start(_))) => "a chain start in the middle of the chain",
        (_, None) => "its body is not an audit body",
    };
    Some(Problem::Malformed { seq, what })
}

/// Whether a problem is explained by a declared abandonment: entries after everything
/// vouched for (the declared head, the latest checkpoint) may be missing (they failed or
/// never left).
fn excused(problem: &Problem, vouched: Option<u64>) -> bool {
    let after_head = |seq: u64| vouched.is_none_or(|a| seq > a);
    match problem {
        Problem::Missing { seq } | Problem::BrokenLink { seq } => after_head(*seq),
        _ => false,
    }
}

/// A sequence offset as an index (offsets are bounded by what is held in memory).
fn slot(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}
