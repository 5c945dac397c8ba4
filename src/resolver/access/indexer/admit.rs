//! Which audit entries the access index takes: only those of chains whose start verified,
//! and of those only the entries that link to the chain's verified head.
//!
//! Anyone who can write to the audit topic can write a self-consistent chain: hashes are
//! unkeyed. What a forger cannot make is a start signed by a key whose certificate chains
//! to the deployment's CA. So a chain's start (sequence 0) is checked against the CA
//! bundle and becomes the chain's head; each later entry is indexed only if it is the
//! next sequence, its previous hash is the head's hash, and its own hash matches (the
//! indexer checked that when decoding); it then becomes the head. Heads are saved next
//! to the index after the batch's accesses were written, so a restart (or another
//! replica taking the partition over) continues from them, and a replay of entries at or
//! below a head is skipped: they were indexed already.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use super::super::index::ChainHead;
use crate::audit::{Hash, Signer, SigningError, TrustedCas};
use crate::proto::audit_body::Kind;
use crate::proto::{AuditBody, AuditEntry, ChainStart};

/// Which chains the access indexer trusts.
#[derive(Debug, Clone)]
pub enum ChainTrust {
    /// Only chains whose start a certificate of these CAs signed: a process with TLS.
    Signed(TrustedCas),
    /// Any chain, signed or not, whose entries link to its start: without TLS (`dev`,
    /// `demo`, tests) there is no CA to check against.
    Unsigned,
}

impl ChainTrust {
    /// The trust of a process serving TLS with `files`: its `tls_client_ca` bundle (which
    /// must verify the process's own certificate); unsigned chains without TLS.
    pub fn of_tls(files: Option<&crate::tls::TlsFiles>) -> Result<ChainTrust, SigningError> {
        match files {
            Some(files) => {
                let cas = TrustedCas::load(&files.client_ca)?;
                // A process whose own chains its indexer refuses would hide every access
                // it audits: refuse to start instead (the servers' certificates must be
                // issued by a CA of tls_client_ca, as `govlink certs init` does).
                let own = Signer::load(&files.cert, &files.key)?;
                let (chain, at) = ("own-certificate-check", SystemTime::now().into());
                let mut start = ChainStart::default();
                own.sign_start(chain, Some(&at), &mut start)?;
                cas.check_start(chain, Some(&at), &start).map_err(|why| {
                    SigningError::Ca(format!(
                        "this process's own audit chains would not be indexed: {why}; \
                         tls_client_ca must hold the CA that issued tls_cert"
                    ))
                })?;
                Ok(ChainTrust::Signed(cas))
            }
            None => Ok(ChainTrust::Unsigned),
        }
    }
}

/// What becomes of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Index it: it links to its chain's verified head (or is a verified start).
    Index,
    /// At or below its chain's head: indexed before (or a copy); nothing to do.
    Replayed,
    /// Left out, for a reason of
    /// [`crate::telemetry::metrics::UNINDEXED_REASONS`], with what to log (no personal
    /// data: chain ids, sequences and the start's refusal).
    Left { reason: &'static str, why: String },
}

/// The verified heads of the chains of one batch, moved as its entries are admitted.
pub(super) struct Heads {
    /// Chain → its verified head (`None`: none saved, its start was not verified).
    heads: HashMap<String, Option<ChainHead>>,
    /// Chains whose head moved in this batch.
    moved: BTreeMap<String, ChainHead>,
}

impl Heads {
    /// The heads saved for the batch's chains.
    pub(super) fn new(saved: HashMap<String, Option<ChainHead>>) -> Heads {
        Heads {
            heads: saved,
            moved: BTreeMap::new(),
        }
    }

    /// Whether `entry` (whose hash matches it), carrying `body`, is indexed under `trust`;
    /// moves its chain's head if so.
    pub(super) fn admit(
        &mut self,
        entry: &AuditEntry,
        body: &AuditBody,
        trust: &ChainTrust,
    ) -> Verdict {
        let head = self.heads.get(&entry.chain_id).copied().flatten();
        if let Some((sequence, _)) = head
            && entry.sequence <= sequence
        {
            return Verdict::Replayed;
        }
        let Ok(hash) = Hash::try_from(entry.hash.as_slice()) else {
            return left("unlinked", "malformed hash".into());
        };
        if entry.sequence == 0 {
            let Some(Kind::Start(start)) = &body.kind else {
                return left(
                    "unverified_start",
                    "its first entry is not a chain start".into(),
                );
            };
            if let ChainTrust::Signed(cas) = trust
                && let Err(refusal) = cas.check_start(&entry.chain_id, body.at.as_ref(), start)
            {
                return left("unverified_start", refusal.to_string());
            }
            self.advance(&entry.chain_id, (0, hash));
            return Verdict::Index;
        }
        let Some((sequence, head_hash)) = head else {
            return left("unknown_chain", "its start was not verified".into());
        };
        if entry.sequence != sequence + 1 || entry.previous_hash.as_slice() != head_hash {
            return left(
                "unlinked",
                format!(
                    "seq {} does not follow the verified seq {sequence}",
                    entry.sequence
                ),
            );
        }
        self.advance(&entry.chain_id, (entry.sequence, hash));
        Verdict::Index
    }

    fn advance(&mut self, chain: &str, head: ChainHead) {
        self.heads.insert(chain.to_owned(), Some(head));
        self.moved.insert(chain.to_owned(), head);
    }

    /// The heads that moved, to save once the batch is indexed.
    pub(super) fn moved(self) -> Vec<(String, ChainHead)> {
        self.moved.into_iter().collect()
    }
}

fn left(reason: &'static str, why: String) -> Verdict {
    debug_assert!(
        crate::telemetry::metrics::UNINDEXED_REASONS.contains(&reason),
        "{reason} is not a declared reason"
    );
    Verdict::Left { reason, why }
}

#[cfg(test)]
mod tests;
