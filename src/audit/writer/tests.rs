//! The writer's bookkeeping through a broker outage, and the trail it leaves, verified:
//! which entries count, and what the start of each new chain declares.

use prost::Message as _;

use super::*;
use crate::audit::verify::{ChainStatus, Location, Report, Verifier};
use crate::proto::{AuditCheckpoint, AuditEntry};

/// One writer through an outage, as the broker ends up holding its entries: the chains it
/// starts (`c0`, `c1`, ...), each entry's fate and the acker's bookkeeping.
struct Run {
    acked: Acked,
    tip: Tip,
    /// Chains started so far.
    started: usize,
    /// The entries that landed, in the order they landed.
    landed: Vec<AuditEntry>,
}

impl Run {
    /// The writer's first chain, whose start `lands` or not.
    fn new(lands: bool) -> (Run, Settled) {
        let mut run = Run {
            acked: Acked::new("c0".into(), Vec::new()),
            tip: Tip::new("c0".into()),
            started: 1,
            landed: Vec::new(),
        };
        let settled = run.append(chain_start("resolver", "h", &[]), lands);
        (run, settled)
    }

    /// Appends an entry whose delivery `lands` or fails; how the acker took it.
    fn append(&mut self, kind: Kind, lands: bool) -> Settled {
        let entry = self.tip.next_entry(&AuditBody {
            at: Some(SystemTime::UNIX_EPOCH.into()),
            kind: Some(kind),
        });
        self.tip.advance(&entry);
        let settled = self
            .acked
            .settle(&entry.chain_id, entry.sequence, self.tip.last_hash, lands);
        if lands {
            self.landed.push(entry);
        }
        settled
    }

    fn access(&mut self, lands: bool) -> Settled {
        self.append(Kind::Access(DataAccess::default()), lands)
    }

    /// What the writer does once the current chain failed: a new chain whose start
    /// declares what [`Acked::to_declare`] says, and `lands` or not.
    fn restart(&mut self, lands: bool) -> Settled {
        assert!(self.acked.failed, "only a failed chain is replaced");
        let declared = self.acked.to_declare();
        let id = format!("c{}", self.started);
        self.started += 1;
        self.tip = Tip::new(id.clone());
        self.acked = Acked::new(id.as_str().into(), declared.clone());
        self.append(chain_start("resolver", "h", &declared), lands)
    }

    /// The closed checkpoint of the current chain at its acknowledged head.
    fn closed(&self) -> AuditCheckpoint {
        let (sequence, hash) = self.acked.head.expect("something acknowledged");
        AuditCheckpoint {
            chain_id: self.acked.chain.to_string(),
            sequence,
            hash: hash.to_vec(),
            at: None,
            closed: true,
            signature: Vec::new(),
        }
    }

    fn verify(&self) -> Report {
        let mut verifier = Verifier::new(None);
        let at = |offset: usize| Location {
            partition: 0,
            offset: offset as i64,
        };
        verifier.add_checkpoint(at(0), &self.closed().encode_to_vec());
        for (offset, entry) in self.landed.iter().enumerate() {
            verifier.add_entry(at(offset), &entry.encode_to_vec());
        }
        verifier.finish()
    }
}

/// The head of `chain` as the run's entries have it at `sequence`.
fn head_of(run: &Run, chain: &str, sequence: u64) -> Option<(u64, Hash)> {
    let entry = run
        .landed
        .iter()
        .find(|e| e.chain_id == chain && e.sequence == sequence)?;
    Some((sequence, Hash::try_from(entry.hash.as_slice()).ok()?))
}

/// c0 starts and fails at its first access; c1, which replaces it, loses its start in
/// the outage while its next two entries land; c2 starts once the broker is back.
fn outage() -> Run {
    let (mut run, settled) = Run::new(true);
    assert_eq!(settled, Settled::Counted);
    assert_eq!(run.access(false), Settled::Failed);
    // Enqueued before the failure was known, and delivered: it never counts.
    assert_eq!(run.access(true), Settled::Ignored);
    assert_eq!(run.restart(false), Settled::Failed);
    assert_eq!(run.access(true), Settled::Ignored);
    assert_eq!(run.access(true), Settled::Ignored);
    assert_eq!(run.restart(true), Settled::Counted);
    assert_eq!(run.access(true), Settled::Counted);
    run
}

#[test]
fn a_chain_whose_start_failed_is_declared_with_everything_its_start_declared() {
    let mut run = outage();
    let c0_head = head_of(&run, "c0", 0);
    assert!(c0_head.is_some());
    // c2's start declares c0 (c1's start, which declared it, may never have landed)
    // and c1, of which nothing was acknowledged.
    assert_eq!(
        run.acked.declares,
        vec![("c0".into(), c0_head), ("c1".into(), None)]
    );
    // c2's start was acknowledged, so its declarations are on the topic: a chain
    // replacing c2 declares c2 alone.
    assert_eq!(run.access(false), Settled::Failed);
    assert_eq!(
        run.acked.to_declare(),
        vec![("c2".into(), head_of(&run, "c2", 1))]
    );
}

#[test]
fn an_outage_that_loses_a_chains_start_leaves_a_trail_that_verifies() {
    let run = outage();
    let report = run.verify();
    let mut text = Vec::new();
    report.write_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(report.is_clean(), "{text}");
    let status = |id: &str| {
        report
            .chains
            .iter()
            .find(|c| c.chain_id == id)
            .unwrap_or_else(|| panic!("no chain {id}\n{text}"))
            .status
            .clone()
    };
    assert_eq!(
        status("c0"),
        ChainStatus::Abandoned {
            acknowledged_up_to: Some(0),
            continued_in: "c2".into(),
            verified_up_to: Some(0),
        }
    );
    assert_eq!(
        status("c1"),
        ChainStatus::Abandoned {
            acknowledged_up_to: None,
            continued_in: "c2".into(),
            verified_up_to: None,
        }
    );
    assert_eq!(status("c2"), ChainStatus::Closed);
    assert!(
        text.contains("chain c1 writer=? entries=2 last_seq=2 ")
            && text.contains(
                "abandoned by its writer before any entry was acknowledged (continued in chain c2)"
            ),
        "{text}"
    );
}

#[test]
fn a_long_run_of_failed_starts_is_declared_up_to_the_cap_keeping_the_acknowledged_chain() {
    let (mut run, _) = Run::new(true);
    assert_eq!(run.access(false), Settled::Failed);
    let c0 = ("c0".into(), head_of(&run, "c0", 0));
    for _ in 0..MAX_DECLARED + 5 {
        assert_eq!(run.restart(false), Settled::Failed);
    }
    let declared = run.acked.to_declare();
    assert_eq!(declared.len(), MAX_DECLARED);
    // The chain with acknowledged entries stays; the oldest chains of which nothing was
    // acknowledged went; the latest are all there.
    assert_eq!(declared[0], c0);
    let latest = MAX_DECLARED + 5;
    let expected: Vec<String> = (latest + 1 - (MAX_DECLARED - 1)..=latest)
        .map(|n| format!("c{n}"))
        .collect();
    let names: Vec<String> = declared[1..].iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(names, expected);
    assert!(declared[1..].iter().all(|(_, head)| head.is_none()));
    // Such a start, with real chain ids, stays far below a broker's message size (1 MB
    // by default).
    let real: Vec<Declared> = declared
        .iter()
        .map(|(_, head)| (new_chain_id().into(), *head))
        .collect();
    let start = AuditBody {
        at: None,
        kind: Some(chain_start("resolver", "h", &real)),
    };
    assert!(start.encoded_len() < 100_000, "{}", start.encoded_len());
}
