//! What verification found, and how it is printed: one line per chain and a summary, or
//! one JSON document.

use std::fmt;
use std::io::Write;

use crate::audit::chain::Hash;
use crate::audit::signing::StartRefusal;

/// Where a message was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// One of the two topics of the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailTopic {
    /// `govlink.audit.v1`: the entries.
    Entries,
    /// `govlink.audit-checkpoints.v1`: the checkpoints.
    Checkpoints,
}

impl TrailTopic {
    /// How the report names it.
    pub fn name(self) -> &'static str {
        match self {
            TrailTopic::Entries => "audit",
            TrailTopic::Checkpoints => "checkpoint",
        }
    }
}

/// A partition of the trail that no longer starts at offset 0: the records before its
/// low watermark were deleted (by retention, or with `DeleteRecords`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    /// The topic.
    pub topic: TrailTopic,
    /// The partition.
    pub partition: i32,
    /// The offset it starts at now.
    pub low_watermark: i64,
}

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partition {} of the {} topic starts at offset {} (its low watermark): the {} records before it were deleted",
            self.partition,
            self.topic.name(),
            self.low_watermark,
            self.low_watermark
        )
    }
}

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

/// Where a chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// Every entry verified, up to its writer's closed checkpoint.
    Closed,
    /// Verified so far, without a closed checkpoint after its last checkpoint: its
    /// writer is running or crashed.
    Open {
        /// The last entry verified.
        verified_up_to: Option<u64>,
    },
    /// Its writer abandoned it after a failed delivery and declared so in the chain that
    /// replaced it; verified up to the declared head.
    Abandoned {
        /// The last sequence its writer saw acknowledged (with all before it).
        acknowledged_up_to: Option<u64>,
        /// The chain that replaced it.
        continued_in: String,
        /// The last entry verified without a gap.
        verified_up_to: Option<u64>,
    },
    /// Tampered with, or damaged: the first problem found.
    Failed(Problem),
}

impl fmt::Display for ChainStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let upto = |seq: &Option<u64>| match seq {
            Some(seq) => format!("verified up to seq {seq}"),
            None => "no entry verified".to_owned(),
        };
        match self {
            ChainStatus::Closed => f.write_str("closed, verified"),
            ChainStatus::Open { verified_up_to } => write!(
                f,
                "open (writer running or crashed), {}",
                upto(verified_up_to)
            ),
            ChainStatus::Abandoned {
                acknowledged_up_to,
                continued_in,
                verified_up_to,
            } => {
                let head = match acknowledged_up_to {
                    Some(seq) => format!("after seq {seq}"),
                    None => "before any entry was acknowledged".to_owned(),
                };
                write!(
                    f,
                    "abandoned by its writer {head} (continued in chain {continued_in}), {}",
                    upto(verified_up_to)
                )
            }
            ChainStatus::Failed(problem) => write!(f, "FAILED: {problem}"),
        }
    }
}

/// What a chain's start proves of its writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Not checked: no CA given, or the start was not read.
    Unchecked,
    /// Signed by a certificate of a trusted CA, valid at the start's time.
    Verified,
    /// Not signed (a writer without TLS).
    Unsigned,
    /// Signed, but not by a trusted certificate, or the signature does not match.
    Refused,
}

impl Signature {
    /// How the report names it; `None` when unchecked.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Signature::Unchecked => None,
            Signature::Verified => Some("verified"),
            Signature::Unsigned => Some("unsigned"),
            Signature::Refused => Some("refused"),
        }
    }
}

/// One chain's result.
#[derive(Debug, Clone)]
pub struct ChainReport {
    /// The chain id.
    pub chain_id: String,
    /// The partition it lives in (`None`: no entry of it was read).
    pub partition: Option<i32>,
    /// Its writer, from its `ChainStart` (`None` if that was not seen).
    pub writer: Option<String>,
    /// Entries verified.
    pub entries: u64,
    /// Entries before `--from`, not verified.
    pub skipped: u64,
    /// Exact duplicates (producer retries), ignored.
    pub duplicates: u64,
    /// The highest sequence seen.
    pub last_sequence: Option<u64>,
    /// The hash of the last entry, to compare with heads exported elsewhere.
    pub head: Option<Hash>,
    /// The latest checkpoint: its sequence and whether it closed the chain.
    pub checkpoint: Option<(u64, bool)>,
    /// What its start proves of its writer.
    pub signature: Signature,
    /// The verdict.
    pub status: ChainStatus,
}

/// What verification found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every chain, in the order first met.
    pub chains: Vec<ChainReport>,
    /// Messages on the audit topic that are not audit entries: how many, the first.
    pub foreign_entries: (u64, Option<Location>),
    /// Messages on the checkpoint topic that are not checkpoints: how many, the first.
    pub foreign_checkpoints: (u64, Option<Location>),
    /// Partitions of either topic whose beginning was deleted.
    pub truncated: Vec<Truncated>,
    /// Checkpoints of signed chains not signed by their chain's writer (ignored): how
    /// many, and the chain of the first.
    pub forged_checkpoints: (u64, Option<String>),
}

impl Report {
    /// The chains that failed.
    pub fn failed(&self) -> usize {
        self.chains
            .iter()
            .filter(|c| matches!(c.status, ChainStatus::Failed(_)))
            .count()
    }

    /// Nothing failed, nothing foreign was found, and nothing was deleted.
    pub fn is_clean(&self) -> bool {
        self.failed() == 0
            && self.foreign_entries.0 == 0
            && self.foreign_checkpoints.0 == 0
            && self.forged_checkpoints.0 == 0
            && self.truncated.is_empty()
    }

    /// One line per chain, then the summary.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for c in &self.chains {
            write!(
                out,
                "chain {} writer={} entries={} last_seq={} head={}",
                c.chain_id,
                c.writer.as_deref().unwrap_or("?"),
                c.entries,
                c.last_sequence.map_or("-".into(), |s| s.to_string()),
                c.head.map_or("-".into(), hex::encode),
            )?;
            if let Some(signature) = c.signature.name() {
                write!(out, " signature={signature}")?;
            }
            if c.skipped > 0 {
                write!(out, " skipped={}", c.skipped)?;
            }
            writeln!(out, ": {}", c.status)?;
        }
        for (what, topic, (count, first)) in [
            ("audit entries", "audit", self.foreign_entries),
            ("checkpoints", "checkpoint", self.foreign_checkpoints),
        ] {
            if let (n @ 1.., Some(at)) = (count, first) {
                writeln!(
                    out,
                    "FAILED: {n} messages on the {topic} topic are not {what} (first at partition {} offset {})",
                    at.partition, at.offset
                )?;
            }
        }
        if let (n @ 1.., Some(chain)) = (self.forged_checkpoints.0, &self.forged_checkpoints.1) {
            writeln!(
                out,
                "FAILED: {n} checkpoints are not signed by their chain's writer (first of chain {chain}); they were ignored"
            )?;
        }
        for truncated in &self.truncated {
            writeln!(out, "FAILED: {truncated}")?;
        }
        let count =
            |f: fn(&ChainStatus) -> bool| self.chains.iter().filter(|c| f(&c.status)).count();
        writeln!(
            out,
            "{} chains: {} closed, {} open, {} abandoned, {} failed; {} entries verified, {} exact duplicates ignored, {} skipped before --from",
            self.chains.len(),
            count(|s| matches!(s, ChainStatus::Closed)),
            count(|s| matches!(s, ChainStatus::Open { .. })),
            count(|s| matches!(s, ChainStatus::Abandoned { .. })),
            self.failed(),
            self.chains.iter().map(|c| c.entries).sum::<u64>(),
            self.chains.iter().map(|c| c.duplicates).sum::<u64>(),
            self.chains.iter().map(|c| c.skipped).sum::<u64>(),
        )
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        let chains: Vec<serde_json::Value> = self
            .chains
            .iter()
            .map(|c| {
                let (state, problem) = match &c.status {
                    ChainStatus::Closed => ("closed", None),
                    ChainStatus::Open { .. } => ("open", None),
                    ChainStatus::Abandoned { .. } => ("abandoned", None),
                    ChainStatus::Failed(p) => ("failed", Some(p)),
                };
                serde_json::json!({
                    "chain_id": c.chain_id,
                    "partition": c.partition,
                    "writer": c.writer,
                    "entries": c.entries,
                    "skipped": c.skipped,
                    "duplicates": c.duplicates,
                    "last_sequence": c.last_sequence,
                    "head": c.head.map(hex::encode),
                    "checkpoint": c.checkpoint.map(|(seq, closed)| serde_json::json!({"sequence": seq, "closed": closed})),
                    "signature": c.signature.name(),
                    "status": state,
                    "detail": c.status.to_string(),
                    "problem": problem.map(|p| serde_json::json!({
                        "kind": p.kind(),
                        "sequence": p.seq(),
                        "at": p.location().map(location_json),
                        "message": p.to_string(),
                    })),
                })
            })
            .collect();
        let foreign = |(count, first): (u64, Option<Location>)| {
            serde_json::json!({
                "count": count,
                "first": first.map(location_json),
            })
        };
        let truncated: Vec<serde_json::Value> = self
            .truncated
            .iter()
            .map(|t| {
                serde_json::json!({
                    "topic": t.topic.name(),
                    "partition": t.partition,
                    "low_watermark": t.low_watermark,
                    "message": t.to_string(),
                })
            })
            .collect();
        serde_json::json!({
            "clean": self.is_clean(),
            "failed": self.failed(),
            "chains": chains,
            "foreign_entries": foreign(self.foreign_entries),
            "foreign_checkpoints": foreign(self.foreign_checkpoints),
            "truncated": truncated,
            "forged_checkpoints": {
                "count": self.forged_checkpoints.0,
                "first_chain": self.forged_checkpoints.1,
            },
        })
    }
}

fn location_json(at: Location) -> serde_json::Value {
    serde_json::json!({"partition": at.partition, "offset": at.offset})
}
