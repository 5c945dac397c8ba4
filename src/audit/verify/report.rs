//! What verification found, and how it is printed: one line per chain and a summary, or
//! one JSON document. A failed chain's [`Problem`] and its sentence are in `problem`.

use std::fmt;
use std::io::Write;

use crate::audit::chain::Hash;

pub use super::problem::{Likeness, Problem};

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
