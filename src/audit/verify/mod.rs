//! `govlink audit verify`: checks every chain of the audit trail against its hashes, its
//! checkpoints and its writer's declarations, and reports per chain the first problem.
//!
//! [`Verifier`] is the logic, a pure function of the messages it is given (fed in topic
//! order, one partition's order preserved, partitions interleaved in any way); `tools::audit_verify::run`
//! and `tools::audit_verify` reads the topics into it and prints the [`Report`]. A chain is verified in the
//! partition it lives in; its entries found in others are reported where they sit
//! (`streams`). Memory: 32 bytes per verified entry, wherever it sits (each entry's
//! hash is kept to match checkpoints, duplicates and copies against), and a few hundred
//! bytes per chain; `--from` limits it for long trails. Sequences a chain jumps over cost
//! nothing (a gap is held as its bounds), so no message, forged or not, holds more
//! memory than a chain of its own.

mod chain_state;
mod problem;
mod report;
mod streams;
#[cfg(test)]
mod tests;

pub use report::{
    ChainReport, ChainStatus, Likeness, Location, Problem, Report, Signature, TrailTopic, Truncated,
};

use std::collections::HashMap;
use std::time::SystemTime;

use prost::Message as _;

use super::chain::hash_matches;
use super::signing::{StartRefusal, TrustedCas, WriterKey};
use crate::proto::audit_body::Kind;
use crate::proto::{AbandonedChain, AuditBody, AuditCheckpoint, AuditEntry, ChainStart};
use streams::Streams;

/// A chain's declaration, in the `ChainStart` of the chain that replaced it, that its
/// writer abandoned it.
#[derive(Debug, Clone)]
struct Declaration {
    /// The chain that replaced it.
    by: String,
    /// Its last sequence the broker acknowledged with every entry before it.
    sequence: Option<u64>,
    /// That entry's hash.
    hash: Vec<u8>,
}

/// Messages that are not what their topic should hold.
#[derive(Debug, Clone, Default)]
struct Foreign {
    count: u64,
    first: Option<Location>,
}

impl Foreign {
    fn note(&mut self, at: Location) {
        self.count += 1;
        self.first.get_or_insert(at);
    }
}

/// Verifies an audit trail fed to it message by message.
#[derive(Debug, Default)]
pub struct Verifier {
    /// Entries before this instant are skipped (`--from`).
    from: Option<SystemTime>,
    /// The CAs chain starts must be signed under; `None`: signatures are not checked.
    cas: Option<TrustedCas>,
    /// Whether an unsigned chain passes (a trail written without TLS) when `cas` is set.
    allow_unsigned: bool,
    /// Every chain met, in the order first met.
    chains: Vec<Streams>,
    by_id: HashMap<String, usize>,
    checkpoints: HashMap<String, Vec<AuditCheckpoint>>,
    foreign_entries: Foreign,
    foreign_checkpoints: Foreign,
    /// Partitions whose beginning was deleted (one per partition at most).
    truncated: Vec<Truncated>,
}

impl Verifier {
    /// A verifier of the whole trail, or of the entries from `from` on.
    pub fn new(from: Option<SystemTime>) -> Verifier {
        Verifier {
            from,
            ..Verifier::default()
        }
    }

    /// The same verifier, holding every chain with a verified entry to a start signed
    /// by a certificate of `cas` (and each signed chain's checkpoints to its key);
    /// unsigned chains pass only if `allow_unsigned`.
    pub fn with_signatures(self, cas: TrustedCas, allow_unsigned: bool) -> Verifier {
        Verifier {
            cas: Some(cas),
            allow_unsigned,
            ..self
        }
    }

    /// One message of the audit topic.
    pub fn add_entry(&mut self, at: Location, payload: &[u8]) {
        let entry = match AuditEntry::decode(payload) {
            Ok(entry) if !entry.chain_id.is_empty() => entry,
            _ => return self.foreign_entries.note(at),
        };
        let body = AuditBody::decode(entry.body.as_slice()).ok();
        let own_hash_ok = hash_matches(&entry);
        let start = match body.as_ref().and_then(|b| b.kind.as_ref()) {
            Some(Kind::Start(start)) if entry.sequence == 0 && own_hash_ok => Some(start),
            _ => None,
        };
        let declares = start.map_or_else(Vec::new, |start| declarations(start, &entry.chain_id));
        let writer = start.map(|s| s.writer.clone());
        let signer = match (&self.cas, start) {
            (Some(cas), Some(start)) => {
                let at = body.as_ref().and_then(|b| b.at.as_ref());
                Some(cas.check_start(&entry.chain_id, at, start))
            }
            _ => None,
        };
        let written_at = body
            .as_ref()
            .and_then(|b| b.at)
            .and_then(|t| SystemTime::try_from(t).ok());
        let from = self.from;
        let chain = self.chain(&entry.chain_id).partition(at.partition);
        if let Some(writer) = writer {
            chain.writer.get_or_insert(writer);
        }
        if let Some(signer) = signer {
            chain.signer.get_or_insert(signer);
        }
        if chain.declares.is_empty() {
            chain.declares = declares;
        }
        // Only a chain's beginning is skipped: once verifying, every later entry counts.
        let before_from = matches!((from, written_at), (Some(from), Some(at)) if at < from);
        if before_from && !chain.anchored() {
            chain.skip(&entry);
        } else {
            chain.accept(at, &entry, body.as_ref(), own_hash_ok);
        }
    }

    /// Where a partition of the trail starts: its low watermark. Above 0, the records
    /// before it were deleted (by retention, or with `DeleteRecords`) and the trail is no
    /// longer whole, whatever its chains say.
    pub fn partition_starts_at(&mut self, topic: TrailTopic, partition: i32, low_watermark: i64) {
        self.truncated
            .retain(|t| (t.topic, t.partition) != (topic, partition));
        if low_watermark > 0 {
            self.truncated.push(Truncated {
                topic,
                partition,
                low_watermark,
            });
        }
    }

    /// One message of the checkpoint topic.
    pub fn add_checkpoint(&mut self, at: Location, payload: &[u8]) {
        match AuditCheckpoint::decode(payload) {
            Ok(checkpoint) if !checkpoint.chain_id.is_empty() => self
                .checkpoints
                .entry(checkpoint.chain_id.clone())
                .or_default()
                .push(checkpoint),
            _ => self.foreign_checkpoints.note(at),
        }
    }

    /// The report: every chain met in entries, checkpoints or declarations.
    pub fn finish(mut self) -> Report {
        // Declared in the start of the declaring chain in its own partition only; a
        // chain may be declared by several (a start that failed may have landed after
        // all, and the chain after it declares again what it declared). With CAs, only
        // a start that verified declares, and only chains of the same writer.
        let signers: HashMap<&str, Option<&Result<WriterKey, StartRefusal>>> = self
            .chains
            .iter()
            .map(|c| (c.id.as_str(), c.signer()))
            .collect();
        let mut declarations: HashMap<String, Vec<Declaration>> = HashMap::new();
        for chain in &self.chains {
            for (abandoned, declaration) in chain.declares() {
                let of = signers.get(abandoned.as_str()).copied().flatten();
                if self.cas.is_none() || self.may_declare(chain.signer(), of) {
                    declarations
                        .entry(abandoned.clone())
                        .or_default()
                        .push(declaration.clone());
                }
            }
        }
        drop(signers);
        let forged_checkpoints = self.drop_forged_checkpoints();
        let mentioned: Vec<String> = self
            .checkpoints
            .keys()
            .chain(declarations.keys())
            .cloned()
            .collect();
        for id in mentioned {
            self.chain(&id);
        }
        self.truncated
            .sort_by_key(|t| (t.topic != TrailTopic::Entries, t.partition));
        let deleted: Vec<Truncated> = self
            .truncated
            .iter()
            .filter(|t| t.topic == TrailTopic::Entries)
            .copied()
            .collect();
        let (cas, allow_unsigned) = (self.cas.is_some(), self.allow_unsigned);
        let chains = self
            .chains
            .into_iter()
            .map(|chain| {
                let checkpoints = self.checkpoints.remove(&chain.id).unwrap_or_default();
                let declared = declarations.get(&chain.id).map_or(&[][..], Vec::as_slice);
                let unverified = match chain.signer() {
                    _ if !cas || !chain.verified_any() => None,
                    Some(Err(StartRefusal::Unsigned)) if allow_unsigned => None,
                    Some(Err(why)) => Some(Problem::Unverified { why: why.clone() }),
                    // Not read (its start is missing: that is the chain's problem) or fine.
                    None | Some(Ok(_)) => None,
                };
                chain.finish(&checkpoints, declared, &deleted, unverified)
            })
            .collect();
        Report {
            chains,
            foreign_entries: (self.foreign_entries.count, self.foreign_entries.first),
            foreign_checkpoints: (
                self.foreign_checkpoints.count,
                self.foreign_checkpoints.first,
            ),
            truncated: self.truncated,
            forged_checkpoints,
        }
    }

    /// Whether a start checked as `by` may declare a chain whose start checked as `of`
    /// abandoned: a start that verified, for a chain of the same certificate (or one whose
    /// start was not read); an unsigned start, where allowed, for an unsigned chain.
    fn may_declare(
        &self,
        by: Option<&Result<WriterKey, StartRefusal>>,
        of: Option<&Result<WriterKey, StartRefusal>>,
    ) -> bool {
        match (by, of) {
            (Some(Ok(_)), None) => true,
            (Some(Ok(by)), Some(Ok(of))) => by.fingerprint() == of.fingerprint(),
            (Some(Err(StartRefusal::Unsigned)), None | Some(Err(StartRefusal::Unsigned))) => {
                self.allow_unsigned
            }
            _ => false,
        }
    }

    /// Drops the checkpoints of chains whose start verified that their writer's key did
    /// not sign: how many, and the chain of the first.
    fn drop_forged_checkpoints(&mut self) -> (u64, Option<String>) {
        let mut forged = (0, None);
        for chain in &self.chains {
            let (Some(Ok(key)), Some(checkpoints)) =
                (chain.signer(), self.checkpoints.get_mut(&chain.id))
            else {
                continue;
            };
            let before = checkpoints.len();
            checkpoints.retain(|c| key.signed(c));
            let dropped = (before - checkpoints.len()) as u64;
            if dropped > 0 {
                forged.0 += dropped;
                forged.1.get_or_insert_with(|| chain.id.clone());
            }
        }
        forged
    }

    /// Bytes the verifier holds by its own accounting: every chain's state (see
    /// [`Streams::held_bytes`]), its index by id and the checkpoints read. Hash maps are
    /// counted at their capacity, each slot with its key and value and one control byte.
    #[cfg(test)]
    pub(super) fn held_bytes(&self) -> usize {
        use std::mem::size_of;
        let chains: usize = self.chains.iter().map(Streams::held_bytes).sum::<usize>()
            + (self.chains.capacity() - self.chains.len()) * size_of::<Streams>();
        let by_id = self.by_id.capacity() * (size_of::<(String, usize)>() + 1)
            + self.by_id.keys().map(String::capacity).sum::<usize>();
        let checkpoints = self.checkpoints.capacity()
            * (size_of::<(String, Vec<AuditCheckpoint>)>() + 1)
            + self
                .checkpoints
                .iter()
                .map(|(id, list)| {
                    id.capacity()
                        + list.capacity() * size_of::<AuditCheckpoint>()
                        + list
                            .iter()
                            .map(|c| c.chain_id.capacity() + c.hash.capacity())
                            .sum::<usize>()
                })
                .sum::<usize>();
        size_of::<Verifier>() + chains + by_id + checkpoints
    }

    fn chain(&mut self, id: &str) -> &mut Streams {
        let index = match self.by_id.get(id) {
            Some(index) => *index,
            None => {
                self.chains.push(Streams::new(id.to_owned()));
                self.by_id.insert(id.to_owned(), self.chains.len() - 1);
                self.chains.len() - 1
            }
        };
        &mut self.chains[index]
    }
}

/// The chains a `ChainStart` of chain `by` declares abandoned: its `abandoned` list, and
/// the single declaration of writers before it. A chain cannot declare itself.
fn declarations(start: &ChainStart, by: &str) -> Vec<(String, Declaration)> {
    let legacy = AbandonedChain {
        chain_id: start.abandoned_chain_id.clone(),
        sequence: start.abandoned_sequence,
        hash: start.abandoned_hash.clone(),
    };
    std::iter::once(&legacy)
        .chain(&start.abandoned)
        .filter(|a| !a.chain_id.is_empty() && a.chain_id != by)
        .map(|a| {
            let declaration = Declaration {
                by: by.to_owned(),
                sequence: a.sequence,
                hash: a.hash.clone(),
            };
            (a.chain_id.clone(), declaration)
        })
        .collect()
}

/// Parses an RFC 3339 instant (`--from`), e.g. `2026-11-20T08:00:00Z`.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let timestamp: prost_types::Timestamp = text
        .parse()
        .map_err(|_| format!("{text:?} is not an RFC 3339 time such as 2026-11-20T08:00:00Z"))?;
    SystemTime::try_from(timestamp).map_err(|e| format!("{text:?}: {e}"))
}
