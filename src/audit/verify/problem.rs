//! The first problem verification finds in a chain, and how it reads in the report: its
//! kind, the sequence it is at, and one sentence saying what was found.

use std::fmt;

use super::report::Location;
use crate::audit::signing::StartRefusal;

/// The first problem of a chain. Every variant names the sequence it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The chain's start is unsigned, or its signature or certificate does not verify
    /// against the CAs: anyone with write access to the topic may have written it.
    Unverified {
        /// Why.
        why: StartRefusal,
    },
    /// The entry's hash does not match its content: it was changed.
    Changed {
        /// The changed entry.
        seq: u64,
    },
    /// No entry with this sequence (the chain jumps over it).
    Missing {
        /// The first missing sequence.
        seq: u64,
    },
    /// The entry's previous hash is not the hash of the entry before it: an entry
    /// between them was removed and the rest renumbered, or the one before was rewritten.
    BrokenLink {
        /// The entry whose link is broken.
        seq: u64,
    },
    /// The entry comes after a later one.
    Reordered {
        /// The entry that came late.
        seq: u64,
        /// The highest sequence read before it.
        after: u64,
    },
    /// The chain ends before a sequence something vouches for.
    CutOff {
        /// Its last entry (`None`: it has none).
        last: Option<u64>,
        /// The sequence it should reach.
        expected: u64,
        /// What vouches for it.
        by: &'static str,
    },
    /// A checkpoint (or the declaration of abandonment) does not match the entry at its
    /// sequence: the chain was rewritten from there on.
    CheckpointMismatch {
        /// The sequence whose entry does not match.
        seq: u64,
        /// What does not match it.
        by: &'static str,
    },
    /// A second, different entry under a sequence already verified.
    DuplicateDiffers {
        /// The sequence.
        seq: u64,
    },
    /// An entry after the chain's closed checkpoint: its writer appended nothing more.
    AfterClose {
        /// The first entry after the close.
        seq: u64,
    },
    /// The entry is consistent with its hash but not what a writer writes there.
    Malformed {
        /// The entry.
        seq: u64,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The chain's first entries are gone, and its partition lost its beginning: they
    /// were deleted with it.
    Deleted {
        /// The first sequence gone (0, or where `--from` anchored the chain).
        seq: u64,
        /// The first sequence still there (`None`: no entry is).
        left: Option<u64>,
        /// With no entry left: the sequence a checkpoint or declaration says the chain
        /// reached, and which of them says so.
        vouched: Option<(u64, &'static str)>,
        /// The partition that lost its beginning.
        partition: i32,
        /// The offset it starts at now.
        low_watermark: i64,
    },
    /// An entry of the chain in a partition other than the chain's: a writer puts every
    /// entry of its chain in one partition (they are keyed by the chain id), so something
    /// else wrote it there. The first such entry of that partition.
    OtherPartition {
        /// Its sequence.
        seq: u64,
        /// Where it sits.
        at: Location,
        /// The partition the chain lives in.
        home: i32,
        /// How it compares with the chain's own entry of that sequence.
        likeness: Likeness,
    },
}

/// How an entry in another partition compares with the chain's own entry of its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likeness {
    /// The same entry (same fields, same matching hash): a copy.
    Duplicate,
    /// A different entry, or one whose hash does not match it: a changed copy.
    Changed,
    /// The chain has no verified entry of that sequence to compare it with.
    Unmatched,
}

impl Problem {
    /// The sequence the problem is at, to find the first one of a chain.
    pub fn seq(&self) -> u64 {
        match self {
            Problem::CutOff { last, .. } => last.map_or(0, |l| l + 1),
            Problem::Unverified { .. } => 0,
            Problem::Changed { seq }
            | Problem::Missing { seq }
            | Problem::BrokenLink { seq }
            | Problem::Reordered { seq, .. }
            | Problem::CheckpointMismatch { seq, .. }
            | Problem::DuplicateDiffers { seq }
            | Problem::AfterClose { seq }
            | Problem::Malformed { seq, .. }
            | Problem::Deleted { seq, .. }
            | Problem::OtherPartition { seq, .. } => *seq,
        }
    }

    /// Where the message it is about sits, when that is not the chain's own partition.
    pub fn location(&self) -> Option<Location> {
        match self {
            Problem::OtherPartition { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// A short name of the kind of problem.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Unverified { why } => match why {
                StartRefusal::Unsigned => "unsigned",
                _ => "not signed by a trusted writer",
            },
            Problem::Changed { .. } => "changed",
            Problem::Missing { .. } | Problem::BrokenLink { .. } => "missing",
            Problem::Reordered { .. } => "reordered",
            Problem::CutOff { .. } | Problem::CheckpointMismatch { .. } => "cut off",
            Problem::DuplicateDiffers { .. } => "duplicate with different content",
            Problem::AfterClose { .. } => "appended after close",
            Problem::Malformed { .. } => "malformed",
            Problem::Deleted { .. } => "deleted",
            Problem::OtherPartition { likeness, .. } => match likeness {
                Likeness::Duplicate => "duplicate in another partition",
                Likeness::Changed => "changed copy in another partition",
                Likeness::Unmatched => "entry in another partition",
            },
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unverified { why } => write!(
                f,
                "not written by a trusted writer: {why} (its entries may be forged)"
            ),
            Problem::Changed { seq } => write!(
                f,
                "changed entry at seq {seq}: its hash does not match its content"
            ),
            Problem::Missing { seq } => write!(f, "missing entry at seq {seq}"),
            Problem::BrokenLink { seq } => write!(
                f,
                "missing or rewritten entry before seq {seq}: its previous hash does not match seq {}",
                seq.saturating_sub(1)
            ),
            Problem::Reordered { seq, after } => {
                write!(
                    f,
                    "reordered entry at seq {seq}: it comes after seq {after}"
                )
            }
            Problem::CutOff {
                last: Some(last),
                expected,
                by,
            } => write!(
                f,
                "cut off after seq {last}: {by} says the chain reached seq {expected}"
            ),
            Problem::CutOff {
                last: None,
                expected,
                by,
            } => write!(
                f,
                "cut off: no entries, but {by} says the chain reached seq {expected}"
            ),
            Problem::CheckpointMismatch { seq, by } => write!(
                f,
                "cut off or rewritten at seq {seq}: {by} does not match the entry at seq {seq}"
            ),
            Problem::DuplicateDiffers { seq } => {
                write!(f, "duplicate with different content at seq {seq}")
            }
            Problem::AfterClose { seq } => write!(
                f,
                "entry appended after close at seq {seq}: the chain's writer closed it before"
            ),
            Problem::Malformed { seq, what } => write!(f, "malformed entry at seq {seq}: {what}"),
            Problem::Deleted {
                seq,
                left,
                vouched,
                partition,
                low_watermark,
            } => write_deleted(f, *seq, *left, *vouched, *partition, *low_watermark),
            Problem::OtherPartition {
                seq,
                at,
                home,
                likeness,
            } => write_other_partition(f, *seq, at, *home, *likeness),
        }
    }
}

/// How [`Problem::Deleted`] reads: what is gone, then where its partition starts now.
fn write_deleted(
    f: &mut fmt::Formatter<'_>,
    seq: u64,
    left: Option<u64>,
    vouched: Option<(u64, &str)>,
    partition: i32,
    low_watermark: i64,
) -> fmt::Result {
    match (left, vouched) {
        (Some(left), _) => write!(
            f,
            "deleted entries from seq {seq} to seq {}",
            left.saturating_sub(1)
        )?,
        (None, Some((reached, by))) => write!(
            f,
            "deleted: no entry left, but {by} says the chain reached seq {reached}"
        )?,
        (None, None) => write!(f, "deleted: no entry left")?,
    }
    write!(
        f,
        "; partition {partition} starts at offset {low_watermark} (its low watermark), the records before it were deleted"
    )
}

/// How [`Problem::OtherPartition`] reads: where the entry sits, and how it compares with
/// the chain's own entry of its sequence.
fn write_other_partition(
    f: &mut fmt::Formatter<'_>,
    seq: u64,
    at: &Location,
    home: i32,
    likeness: Likeness,
) -> fmt::Result {
    let place = format!("partition {} offset {}", at.partition, at.offset);
    match likeness {
        Likeness::Duplicate => write!(
            f,
            "duplicate entry at seq {seq} in {place}: the chain lives in partition {home}"
        ),
        Likeness::Changed => write!(
            f,
            "changed copy of seq {seq} in {place}: the chain lives in partition {home}, where seq {seq} differs"
        ),
        Likeness::Unmatched => write!(
            f,
            "entry at seq {seq} in {place}: the chain lives in partition {home}, which has no seq {seq}"
        ),
    }
}
