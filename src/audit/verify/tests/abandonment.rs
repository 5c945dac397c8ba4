//! Declared abandonments: what they excuse, what they do not, and who may declare one.

use super::*;

/// Chain `old` failed after its entry 4: entries 0..=3 acknowledged, 4 never landed, 5
/// did; `new` declares it.
fn abandonment() -> (Vec<AuditEntry>, Vec<AuditEntry>) {
    let mut old = chain("old", 5);
    let head = Hash::try_from(old[3].hash.as_slice()).unwrap();
    old.remove(4);
    let new = chain_declaring("new", 2, &[("old", Some(3), Some(head))]);
    (old, new)
}

#[test]
fn a_declared_abandonment_excuses_what_follows_the_acknowledged_head() {
    let (old, new) = abandonment();
    let checkpoints = [checkpoint(&old, 2, false), closed(&new)];
    let report = verify(&[old.clone(), new.clone()].concat(), &checkpoints);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        status(&report, "old"),
        ChainStatus::Abandoned {
            acknowledged_up_to: Some(3),
            continued_in: "new".into(),
            verified_up_to: Some(3),
        }
    );
    assert_eq!(status(&report, "new"), ChainStatus::Closed);
    // The declaration may be read before the chain it declares.
    let report = verify(&[new.clone(), old.clone()].concat(), &checkpoints);
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn an_abandoned_chain_still_fails_before_its_head_and_on_changed_entries() {
    let (old, new) = abandonment();
    // Cut below the declared head.
    let report = verify(&[&old[..3], &new[..]].concat(), &[]);
    assert_eq!(
        status(&report, "old"),
        ChainStatus::Failed(Problem::CutOff {
            last: Some(2),
            expected: 3,
            by: "its writer's declaration of abandonment"
        })
    );
    // A missing entry before the head is not excused.
    let mut gapped = old.clone();
    gapped.remove(2);
    assert_eq!(
        status(&verify(&[gapped, new.clone()].concat(), &[]), "old"),
        ChainStatus::Failed(Problem::Missing { seq: 2 })
    );
    // Nor is the declared head itself.
    let mut headless = old.clone();
    headless.remove(3);
    assert_eq!(
        status(&verify(&[headless, new.clone()].concat(), &[]), "old"),
        ChainStatus::Failed(Problem::Missing { seq: 3 })
    );
    // Changed after the head is still changed.
    let mut changed = old.clone();
    let last = changed.len() - 1;
    changed[last] = rewritten(&old, last, false);
    assert_eq!(
        status(&verify(&[changed, new.clone()].concat(), &[]), "old"),
        ChainStatus::Failed(Problem::Changed { seq: 5 })
    );
    // The head rewritten: the declared hash no longer matches.
    let mut rewound = old[..3].to_vec();
    rewound.push(rewritten(&old, 3, true));
    assert_eq!(
        status(&verify(&[rewound, new].concat(), &[]), "old"),
        ChainStatus::Failed(Problem::CheckpointMismatch {
            seq: 3,
            by: "its writer's declaration of abandonment"
        })
    );
}

#[test]
fn a_declaration_cannot_excuse_what_a_checkpoint_vouched_for() {
    // Declared acknowledged up to 1, but a checkpoint says 5 was: the gap at 4 counts.
    let mut old = chain("old", 6);
    let checkpoints = [checkpoint(&old, 5, false)];
    let head = Hash::try_from(old[1].hash.as_slice()).unwrap();
    old.remove(4);
    let new = chain_declaring("new", 1, &[("old", Some(1), Some(head))]);
    assert_eq!(
        status(&verify(&[old, new].concat(), &checkpoints), "old"),
        ChainStatus::Failed(Problem::Missing { seq: 4 })
    );
}

#[test]
fn only_a_chains_own_start_can_declare_an_abandonment() {
    let mut old = chain("old", 5);
    old.remove(4);
    // A start with a broken hash, and a valid start in the middle of a chain.
    let mut broken = chain_declaring("forger", 1, &[("old", None, None)]);
    broken[0].hash[0] ^= 1;
    let mut tip = Tip::new("middle".into());
    let mut middle = Vec::new();
    for kind in [start(&[]), start(&[("old", None, None)])] {
        let entry = tip.next_entry(&AuditBody {
            at: at(T0),
            kind: Some(kind),
        });
        tip.advance(&entry);
        middle.push(entry);
    }
    for forged in [broken, middle] {
        let report = verify(&[old.clone(), forged].concat(), &[]);
        assert_eq!(
            status(&report, "old"),
            ChainStatus::Failed(Problem::Missing { seq: 4 })
        );
    }
}

#[test]
fn a_chain_abandoned_before_any_ack_may_have_no_entries() {
    let new = chain_declaring("new", 1, &[("lost", None, None)]);
    let report = verify(&new, &[closed(&new)]);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        status(&report, "lost"),
        ChainStatus::Abandoned {
            acknowledged_up_to: None,
            continued_in: "new".into(),
            verified_up_to: None,
        }
    );
}

/// `lost` lost its start in an outage (it declared `old`), but its entries 1 and 2
/// landed; `new` declares both.
fn lost_start() -> (Vec<AuditEntry>, Vec<AuditEntry>, Vec<AuditEntry>) {
    let (old, _) = abandonment();
    let head = Hash::try_from(old[3].hash.as_slice()).unwrap();
    let lost = chain_declaring("lost", 2, &[("old", Some(3), Some(head))])[1..].to_vec();
    let new = chain_declaring(
        "new",
        1,
        &[("old", Some(3), Some(head)), ("lost", None, None)],
    );
    (old, lost, new)
}

#[test]
fn a_start_declares_every_chain_abandoned_since_the_last_acknowledged_start() {
    let (old, lost, new) = lost_start();
    let report = verify(&[old, lost, new.clone()].concat(), &[closed(&new)]);
    assert!(report.is_clean(), "{}", report_text(&report));
    assert_eq!(
        status(&report, "lost"),
        ChainStatus::Abandoned {
            acknowledged_up_to: None,
            continued_in: "new".into(),
            verified_up_to: None,
        }
    );
    assert_eq!(
        status(&report, "old"),
        ChainStatus::Abandoned {
            acknowledged_up_to: Some(3),
            continued_in: "new".into(),
            verified_up_to: Some(3),
        }
    );
    let text = report_text(&report);
    assert!(
        text.contains("chain lost writer=? entries=2 last_seq=2 ")
            && text.contains(": abandoned by its writer before any entry was acknowledged (continued in chain new), no entry verified"),
        "{text}"
    );
}

#[test]
fn each_declared_chain_is_held_to_its_own_head() {
    let (old, lost, new) = lost_start();
    // `old` cut below its declared head fails, whatever else the start declares.
    let report = verify(&[&old[..3], &lost[..], &new[..]].concat(), &[]);
    assert_eq!(
        status(&report, "old"),
        ChainStatus::Failed(Problem::CutOff {
            last: Some(2),
            expected: 3,
            by: "its writer's declaration of abandonment"
        })
    );
    assert!(matches!(
        status(&report, "lost"),
        ChainStatus::Abandoned { .. }
    ));
    // A changed entry of the chain whose start was lost is still changed.
    let mut changed = lost.clone();
    changed[1] = rewritten(&lost, 1, false);
    let report = verify(&[&old[..], &changed[..], &new[..]].concat(), &[]);
    assert_eq!(
        status(&report, "lost"),
        ChainStatus::Failed(Problem::Changed { seq: 2 })
    );
}

#[test]
fn a_chain_declared_twice_is_held_to_the_highest_head() {
    // A start that failed may have landed after all: `lost` declares `old` at 3 too,
    // and another declares it with nothing acknowledged.
    let (old, _) = abandoned_with_head(3);
    let weak = chain_declaring("weak", 0, &[("old", None, None)]);
    let report = verify(&[&old[..3], &weak[..]].concat(), &[]);
    assert!(report.is_clean(), "{}", report_text(&report));
    let head = Hash::try_from(old[3].hash.as_slice()).unwrap();
    let strong = chain_declaring("strong", 0, &[("old", Some(3), Some(head))]);
    for trail in [
        [&old[..3], &weak[..], &strong[..]].concat(),
        [&strong[..], &old[..3], &weak[..]].concat(),
    ] {
        let report = verify(&trail, &[]);
        assert_eq!(
            status(&report, "old"),
            ChainStatus::Failed(Problem::CutOff {
                last: Some(2),
                expected: 3,
                by: "its writer's declaration of abandonment"
            })
        );
    }
    let report = verify(&[&old[..], &weak[..], &strong[..]].concat(), &[]);
    assert!(report.is_clean(), "{}", report_text(&report));
    assert!(matches!(
        status(&report, "old"),
        ChainStatus::Abandoned {
            acknowledged_up_to: Some(3),
            ..
        }
    ));
}

/// Chain `old` of five accesses whose entry 4 is missing, and its entry `head`'s hash.
fn abandoned_with_head(head: usize) -> (Vec<AuditEntry>, Hash) {
    let mut old = chain("old", 5);
    let hash = Hash::try_from(old[head].hash.as_slice()).unwrap();
    old.remove(4);
    (old, hash)
}

#[test]
fn declarations_of_writers_before_the_list_are_still_read() {
    let (old, head) = abandoned_with_head(3);
    let legacy = Kind::Start(ChainStart {
        writer: "resolver".into(),
        abandoned_chain_id: "old".into(),
        abandoned_sequence: Some(3),
        abandoned_hash: head.to_vec(),
        ..ChainStart::default()
    });
    let new = chain_starting("new", 1, legacy);
    let report = verify(&[old, new].concat(), &[]);
    assert!(report.is_clean(), "{}", report_text(&report));
    assert_eq!(
        status(&report, "old"),
        ChainStatus::Abandoned {
            acknowledged_up_to: Some(3),
            continued_in: "new".into(),
            verified_up_to: Some(3),
        }
    );
}

#[test]
fn a_chain_cannot_declare_itself_abandoned() {
    let mut own = chain_declaring("own", 4, &[("own", None, None)]);
    own.remove(2);
    assert_eq!(
        status(&verify(&own, &[]), "own"),
        ChainStatus::Failed(Problem::Missing { seq: 2 })
    );
}
