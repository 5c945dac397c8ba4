//! The verifier against every kind of tampering, duplicates, abandoned chains and
//! `--from`, on chains built with the writer's own chain code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;

use super::chain_state::MAX_GAP;
use super::*;
use crate::audit::chain::{Hash, Tip, entry_hash};
use crate::proto::{AbandonedChain, ChainStart, DataAccess};

mod abandonment;
mod bounds;
mod deleted;
mod partitions;
mod signatures;

/// Seconds since the epoch of the entries' `at`: entry `i` of a chain is written at
/// `T0 + i`.
const T0: i64 = 1_800_000_000;

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// A chain id, its declared acknowledged sequence and that entry's hash.
type Abandoned<'a> = (&'a str, Option<u64>, Option<Hash>);

/// A chain start declaring `abandoned` chains, as the writer makes it.
fn start(abandoned: &[Abandoned]) -> Kind {
    Kind::Start(ChainStart {
        writer: "resolver".into(),
        host: "h".into(),
        pid: 1,
        abandoned: abandoned
            .iter()
            .map(|(id, sequence, hash)| AbandonedChain {
                chain_id: (*id).into(),
                sequence: *sequence,
                hash: hash.map(|h| h.to_vec()).unwrap_or_default(),
            })
            .collect(),
        ..ChainStart::default()
    })
}

fn access(purpose: &str) -> Kind {
    Kind::Access(DataAccess {
        purpose: purpose.into(),
        ..DataAccess::default()
    })
}

/// A chain `id` of a start (declaring `abandoned`) and `accesses` accesses.
fn chain_declaring(id: &str, accesses: u64, abandoned: &[Abandoned]) -> Vec<AuditEntry> {
    chain_starting(id, accesses, start(abandoned))
}

/// A chain `id` of the start `first` and `accesses` accesses.
fn chain_starting(id: &str, accesses: u64, first: Kind) -> Vec<AuditEntry> {
    let mut tip = Tip::new(id.into());
    let mut entries = Vec::new();
    for i in 0..=accesses {
        let kind = if i == 0 {
            first.clone()
        } else {
            access(&format!("p{i}"))
        };
        let entry = tip.next_entry(&AuditBody {
            at: at(T0 + i as i64),
            kind: Some(kind),
        });
        tip.advance(&entry);
        entries.push(entry);
    }
    entries
}

fn chain(id: &str, accesses: u64) -> Vec<AuditEntry> {
    chain_declaring(id, accesses, &[])
}

fn checkpoint(entries: &[AuditEntry], seq: u64, closed: bool) -> AuditCheckpoint {
    let entry = entries.iter().find(|e| e.sequence == seq).unwrap();
    AuditCheckpoint {
        chain_id: entry.chain_id.clone(),
        sequence: seq,
        hash: entry.hash.clone(),
        at: at(T0 + 1000),
        closed,
        signature: Vec::new(),
    }
}

/// The last entry of `entries` closed by its writer.
fn closed(entries: &[AuditEntry]) -> AuditCheckpoint {
    checkpoint(entries, entries.last().unwrap().sequence, true)
}

fn verify_from(
    from: Option<SystemTime>,
    entries: &[AuditEntry],
    checkpoints: &[AuditCheckpoint],
) -> Report {
    let mut verifier = Verifier::new(from);
    for (i, c) in checkpoints.iter().enumerate() {
        verifier.add_checkpoint(location(i), &c.encode_to_vec());
    }
    for (i, e) in entries.iter().enumerate() {
        verifier.add_entry(location(i), &e.encode_to_vec());
    }
    verifier.finish()
}

fn verify(entries: &[AuditEntry], checkpoints: &[AuditCheckpoint]) -> Report {
    verify_from(None, entries, checkpoints)
}

fn location(i: usize) -> Location {
    Location {
        partition: 0,
        offset: i as i64,
    }
}

fn status(report: &Report, id: &str) -> ChainStatus {
    report
        .chains
        .iter()
        .find(|c| c.chain_id == id)
        .unwrap_or_else(|| panic!("no chain {id} in {report:?}"))
        .status
        .clone()
}

/// Entry `seq` of `entries` with another purpose, its hash recomputed (a forger who
/// knows the hash definition) or not.
fn rewritten(entries: &[AuditEntry], seq: usize, rehash: bool) -> AuditEntry {
    let mut entry = entries[seq].clone();
    entry.body = AuditBody {
        at: at(T0 + seq as i64),
        kind: Some(access("forged")),
    }
    .encode_to_vec();
    if rehash {
        let previous = Hash::try_from(entry.previous_hash.as_slice()).unwrap();
        entry.hash = entry_hash(&entry.chain_id, entry.sequence, &previous, &entry.body).to_vec();
    }
    entry
}

#[test]
fn an_untouched_closed_chain_verifies_clean_with_its_head() {
    let entries = chain("c1", 5);
    let report = verify(
        &entries,
        &[checkpoint(&entries, 2, false), closed(&entries)],
    );
    assert!(report.is_clean(), "{report:?}");
    let c = &report.chains[0];
    assert_eq!(c.status, ChainStatus::Closed);
    assert_eq!((c.entries, c.last_sequence), (6, Some(5)));
    assert_eq!(c.writer.as_deref(), Some("resolver"));
    assert_eq!(c.head.map(|h| h.to_vec()), Some(entries[5].hash.clone()));
    assert_eq!(c.checkpoint, Some((5, true)));
}

#[test]
fn a_chain_without_a_closed_checkpoint_after_its_last_is_open_not_failed() {
    let entries = chain("c1", 5);
    let report = verify(&entries, &[checkpoint(&entries, 3, false)]);
    assert!(report.is_clean());
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Open {
            verified_up_to: Some(5)
        }
    );
    // A checkpoint at the last entry that does not close it: still open.
    let report = verify(&entries, &[checkpoint(&entries, 5, false)]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Open {
            verified_up_to: Some(5)
        }
    );
    let report = verify(&entries, &[]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Open {
            verified_up_to: Some(5)
        }
    );
}

#[test]
fn a_changed_entry_is_found_by_its_hash() {
    let mut entries = chain("c1", 6);
    entries[3] = rewritten(&entries, 3, false);
    let report = verify(&entries, &[closed(&chain("c1", 6))]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Changed { seq: 3 })
    );
    assert_eq!(report.failed(), 1);
    assert!(!report.is_clean());
}

#[test]
fn a_changed_entry_with_a_recomputed_hash_breaks_the_next_link() {
    let mut entries = chain("c1", 6);
    entries[3] = rewritten(&entries, 3, true);
    let report = verify(&entries, &[]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::BrokenLink { seq: 4 })
    );
}

#[test]
fn a_missing_entry_is_a_gap_in_the_sequence() {
    let original = chain("c1", 6);
    let mut entries = original.clone();
    entries.remove(4);
    let report = verify(&entries, &[closed(&original)]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 4 })
    );
    let text = report_text(&report);
    assert!(text.contains("chain c1 "), "{text}");
    assert!(text.contains("FAILED: missing entry at seq 4"), "{text}");

    // A chain whose beginning is gone is missing its start.
    let report = verify(&original[2..], &[]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 0 })
    );
}

#[test]
fn entries_removed_and_renumbered_break_the_link() {
    let original = chain("c1", 6);
    let mut entries: Vec<AuditEntry> = original.clone();
    entries.remove(3);
    for e in &mut entries[3..] {
        e.sequence -= 1;
        let previous = Hash::try_from(e.previous_hash.as_slice()).unwrap();
        e.hash = entry_hash(&e.chain_id, e.sequence, &previous, &e.body).to_vec();
    }
    assert_eq!(
        status(&verify(&entries, &[]), "c1"),
        ChainStatus::Failed(Problem::BrokenLink { seq: 3 })
    );
}

#[test]
fn swapped_entries_are_reordered_not_missing() {
    let original = chain("c1", 6);
    let mut entries = original.clone();
    entries.swap(2, 3);
    let report = verify(&entries, &[closed(&original)]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Reordered { seq: 2, after: 3 })
    );
    // Moved further back, too.
    let mut entries = original.clone();
    let moved = entries.remove(1);
    entries.push(moved);
    assert_eq!(
        status(&verify(&entries, &[]), "c1"),
        ChainStatus::Failed(Problem::Reordered { seq: 1, after: 6 })
    );
}

#[test]
fn a_chain_that_ends_before_its_checkpoint_was_cut_off() {
    let original = chain("c1", 8);
    let report = verify(
        &original[..6],
        &[checkpoint(&original, 3, false), closed(&original)],
    );
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::CutOff {
            last: Some(5),
            expected: 8,
            by: "a checkpoint"
        })
    );
    assert!(report_text(&report).contains("cut off after seq 5"));

    // Every entry gone: the checkpoints still name the chain.
    let report = verify(&[], &[closed(&original)]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::CutOff {
            last: None,
            expected: 8,
            by: "a checkpoint"
        })
    );
}

#[test]
fn a_tail_rewritten_with_valid_hashes_does_not_match_the_checkpoint() {
    let original = chain("c1", 6);
    // Rewrite from seq 4 on, consistently, as a forger with the hash definition could.
    let mut entries = original[..4].to_vec();
    let mut tip = Tip {
        id: "c1".into(),
        next: 4,
        last_hash: Hash::try_from(original[3].hash.as_slice()).unwrap(),
    };
    for i in 4..=6 {
        let entry = tip.next_entry(&AuditBody {
            at: at(T0 + i),
            kind: Some(access("forged")),
        });
        tip.advance(&entry);
        entries.push(entry);
    }
    let report = verify(&entries, &[checkpoint(&original, 5, false)]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::CheckpointMismatch {
            seq: 5,
            by: "a checkpoint"
        })
    );
}

#[test]
fn an_exact_duplicate_is_a_retry_and_a_different_one_is_tampering() {
    let entries = chain("c1", 4);
    let mut with_retry = entries.clone();
    with_retry.insert(3, entries[2].clone());
    with_retry.push(entries[4].clone());
    let report = verify(&with_retry, &[closed(&entries)]);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.chains[0].duplicates, 2);
    assert_eq!(report.chains[0].entries, 5);

    let mut with_other = entries.clone();
    with_other.insert(4, rewritten(&entries, 2, true));
    assert_eq!(
        status(&verify(&with_other, &[closed(&entries)]), "c1"),
        ChainStatus::Failed(Problem::DuplicateDiffers { seq: 2 })
    );
}

#[test]
fn an_entry_after_the_closed_checkpoint_was_appended_by_someone_else() {
    let entries = chain("c1", 5);
    let report = verify(&entries, &[checkpoint(&entries, 4, true)]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::AfterClose { seq: 5 })
    );
}

#[test]
fn entries_a_writer_never_writes_are_malformed() {
    // A chain beginning with an access.
    let tip = Tip::new("c1".into());
    let entry = tip.next_entry(&AuditBody {
        at: at(T0),
        kind: Some(access("x")),
    });
    assert_eq!(
        status(&verify(&[entry], &[]), "c1"),
        ChainStatus::Failed(Problem::Malformed {
            seq: 0,
            what: "the first entry is not a chain start"
        })
    );
    // Messages that are no entries at all make the run fail, not a chain.
    let mut verifier = Verifier::new(None);
    verifier.add_entry(location(7), b"\xff\xff not protobuf");
    // Protobuf, but no chain: an empty message decodes to every field's default.
    verifier.add_entry(location(8), &[]);
    verifier.add_checkpoint(location(2), &[]);
    let report = verifier.finish();
    assert!(report.chains.is_empty());
    assert_eq!(report.foreign_entries, (2, Some(location(7))));
    assert_eq!(report.foreign_checkpoints, (1, Some(location(2))));
    assert!(!report.is_clean());
}

#[test]
fn interleaved_chains_are_verified_each_on_its_own() {
    let (a, b) = (chain("a", 4), chain("b", 3));
    let mut mixed = Vec::new();
    for i in 0..5 {
        mixed.extend(a.get(i).cloned());
        mixed.extend(b.get(i).cloned());
    }
    let mut broken = mixed.clone();
    broken.retain(|e| !(e.chain_id == "b" && e.sequence == 2));
    let report = verify(&broken, &[closed(&a), closed(&b)]);
    assert_eq!(status(&report, "a"), ChainStatus::Closed);
    assert_eq!(
        status(&report, "b"),
        ChainStatus::Failed(Problem::Missing { seq: 2 })
    );
    assert_eq!(report.failed(), 1);
}

fn time(seconds: i64) -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(seconds as u64))
}

#[test]
fn from_skips_a_chains_beginning_and_anchors_at_its_first_entry_after() {
    let entries = chain("c1", 9);
    // Entries 0..=4 are before `from`; a checkpoint among them cannot be checked.
    let checkpoints = [checkpoint(&entries, 2, false), closed(&entries)];
    let report = verify_from(time(T0 + 5), &entries, &checkpoints);
    assert!(report.is_clean(), "{report:?}");
    let c = &report.chains[0];
    assert_eq!(
        (c.skipped, c.entries, c.status.clone()),
        (5, 5, ChainStatus::Closed)
    );
    // The writer is still named, from the skipped start.
    assert_eq!(c.writer.as_deref(), Some("resolver"));

    // The first entries after `from` deleted: still missing, not a new anchor.
    let mut cut = entries.clone();
    cut.remove(5);
    assert_eq!(
        status(&verify_from(time(T0 + 5), &cut, &checkpoints), "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 5 })
    );
    // Tampering before `from` is not looked at; after it, it is.
    let mut early = entries.clone();
    early[1] = rewritten(&entries, 1, false);
    assert!(verify_from(time(T0 + 5), &early, &checkpoints).is_clean());
    let mut late = entries.clone();
    late[7] = rewritten(&entries, 7, false);
    assert_eq!(
        status(&verify_from(time(T0 + 5), &late, &checkpoints), "c1"),
        ChainStatus::Failed(Problem::Changed { seq: 7 })
    );
}

#[test]
fn from_anchors_every_check_at_the_first_verified_entry() {
    let entries = chain("c1", 9);
    let from = time(T0 + 5);
    let checkpoints = [closed(&entries)];
    // A late copy of a skipped entry is skipped too; a retry after the anchor is a
    // duplicate.
    let mut copies = entries.clone();
    copies.insert(8, entries[2].clone());
    copies.push(entries[6].clone());
    let report = verify_from(from, &copies, &checkpoints);
    assert!(report.is_clean(), "{report:?}");
    let c = &report.chains[0];
    assert_eq!((c.skipped, c.entries, c.duplicates), (6, 5, 1));
    // Swapped after the anchor.
    let mut swapped = entries.clone();
    swapped.swap(6, 7);
    assert_eq!(
        status(&verify_from(from, &swapped, &checkpoints), "c1"),
        ChainStatus::Failed(Problem::Reordered { seq: 6, after: 7 })
    );
    // A gap after the anchor, and how far the chain was seen.
    let mut gapped = entries.clone();
    gapped.remove(7);
    let report = verify_from(from, &gapped, &checkpoints);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 7 })
    );
    assert_eq!(report.chains[0].last_sequence, Some(9));
}

#[test]
fn a_clock_stepping_back_after_from_skips_nothing_more() {
    let mut tip = Tip::new("c1".into());
    let mut entries = Vec::new();
    for (i, seconds) in [0, 1, 5, 6, 2, 7].into_iter().enumerate() {
        let kind = if i == 0 { start(&[]) } else { access("x") };
        let entry = tip.next_entry(&AuditBody {
            at: at(T0 + seconds),
            kind: Some(kind),
        });
        tip.advance(&entry);
        entries.push(entry);
    }
    let report = verify_from(time(T0 + 5), &entries, &[closed(&entries)]);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.chains[0].skipped, report.chains[0].entries), (2, 4));
}

#[test]
fn a_second_gap_ends_forward_checking_and_the_first_is_reported() {
    let mut entries = chain("c1", 8);
    entries.remove(5);
    entries.remove(2);
    let report = verify(&entries, &[]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 2 })
    );
    // 0, 1, 3, 4 were verified; checking stopped at 6.
    assert_eq!(report.chains[0].entries, 4);
}

#[test]
fn a_gap_up_to_the_limit_is_held_open_for_a_late_entry() {
    let entries = chain("c1", 2);
    let mut far = entries[2].clone();
    far.sequence = 2 + MAX_GAP;
    let previous = Hash::try_from(far.previous_hash.as_slice()).unwrap();
    far.hash = entry_hash("c1", far.sequence, &previous, &far.body).to_vec();
    let late = entries[2].clone();
    let report = verify(&[&entries[..2], &[far, late]].concat(), &[]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Reordered {
            seq: 2,
            after: 2 + MAX_GAP
        })
    );
}

#[test]
fn from_after_a_whole_chain_leaves_it_unverified_but_still_finds_a_cut_off() {
    let entries = chain("c1", 3);
    let report = verify_from(time(T0 + 100), &entries, &[closed(&entries)]);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.chains[0].entries, 0);
    assert_eq!(report.chains[0].skipped, 4);
    let report = verify_from(time(T0 + 100), &entries[..2], &[closed(&entries)]);
    assert!(matches!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::CutOff { expected: 3, .. })
    ));
}

#[test]
fn forged_sequence_numbers_far_ahead_are_missing_without_allocating_the_gap() {
    let entries = chain("c1", 2);
    let mut far = entries[2].clone();
    far.sequence = u64::MAX - 1;
    let previous = Hash::try_from(far.previous_hash.as_slice()).unwrap();
    far.hash = entry_hash("c1", far.sequence, &previous, &far.body).to_vec();
    let report = verify(&[&entries[..2], &[far]].concat(), &[]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 2 })
    );
}

#[test]
fn the_json_report_names_kind_and_sequence() {
    let mut entries = chain("c1", 3);
    entries[2] = rewritten(&entries, 2, false);
    let json = verify(&entries, &[]).to_json();
    assert_eq!(json["clean"], false);
    assert_eq!(json["chains"][0]["chain_id"], "c1");
    assert_eq!(json["chains"][0]["problem"]["kind"], "changed");
    assert_eq!(json["chains"][0]["problem"]["sequence"], 2);
}

#[test]
fn from_parses_rfc3339() {
    assert_eq!(
        parse_time("2027-01-15T08:00:00Z").unwrap(),
        time(1_800_000_000).unwrap()
    );
    assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
}

fn report_text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}
