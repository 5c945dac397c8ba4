//! A chain lives in one partition (its key's): a copy of one of its entries written onto
//! another partition is named with where it sits, whatever order the partitions are read
//! in, and the chain itself is not reported as missing anything.

use super::*;

/// Where the chain under test lives.
const HOME: i32 = 2;

fn home(offset: usize) -> Location {
    Location {
        partition: HOME,
        offset: offset as i64,
    }
}

const FOREIGN: Location = Location {
    partition: 0,
    offset: 7,
};

/// Verifies `entries` read in their partition (offsets 0..), with `copies` of other
/// partitions read first or last.
fn verify_with(
    entries: &[AuditEntry],
    copies: &[(Location, AuditEntry)],
    copies_first: bool,
) -> Report {
    let mut verifier = Verifier::new(None);
    verifier.add_checkpoint(location(0), &closed(entries).encode_to_vec());
    let add_copies = |verifier: &mut Verifier| {
        for (at, copy) in copies {
            verifier.add_entry(*at, &copy.encode_to_vec());
        }
    };
    if copies_first {
        add_copies(&mut verifier);
    }
    for (i, entry) in entries.iter().enumerate() {
        verifier.add_entry(home(i), &entry.encode_to_vec());
    }
    if !copies_first {
        add_copies(&mut verifier);
    }
    verifier.finish()
}

/// The chain's report line (without the summary).
fn chain_line(report: &Report) -> String {
    let text = report_text(report);
    text.lines()
        .find(|l| l.starts_with("chain c1 "))
        .unwrap_or_else(|| panic!("no line for c1\n{text}"))
        .to_owned()
}

#[test]
fn an_exact_copy_in_another_partition_is_a_duplicate_named_with_its_place() {
    let entries = chain("c1", 6);
    for copies_first in [true, false] {
        let report = verify_with(&entries, &[(FOREIGN, entries[3].clone())], copies_first);
        let line = chain_line(&report);
        assert!(
            line.ends_with(
                "FAILED: duplicate entry at seq 3 in partition 0 offset 7: the chain lives in partition 2"
            ),
            "copies first: {copies_first}: {line}"
        );
        // The chain in its own partition verified whole.
        assert!(line.contains("entries=7 last_seq=6 "), "{line}");
        assert!(!report_text(&report).contains("missing"), "{line}");
        assert_eq!(report.chains.len(), 1);
        assert_eq!(report.failed(), 1);
    }
}

#[test]
fn a_changed_copy_in_another_partition_is_changed_not_a_gap_in_the_chain() {
    let entries = chain("c1", 6);
    // Its hash left as it was (it no longer matches), or recomputed by the forger.
    for rehash in [false, true] {
        for copies_first in [true, false] {
            let copy = rewritten(&entries, 3, rehash);
            let report = verify_with(&entries, &[(FOREIGN, copy)], copies_first);
            let line = chain_line(&report);
            assert!(
                line.ends_with(
                    "FAILED: changed copy of seq 3 in partition 0 offset 7: the chain lives in partition 2, where seq 3 differs"
                ),
                "rehash {rehash}, copies first {copies_first}: {line}"
            );
            assert!(line.contains("entries=7 last_seq=6 "), "{line}");
        }
    }
}

#[test]
fn a_copy_of_the_start_on_a_lower_partition_does_not_take_the_chain_over() {
    let entries = chain("c1", 4);
    let report = verify_with(&entries, &[(FOREIGN, entries[0].clone())], true);
    let line = chain_line(&report);
    assert!(
        line.ends_with(
            "FAILED: duplicate entry at seq 0 in partition 0 offset 7: the chain lives in partition 2"
        ),
        "{line}"
    );
    assert!(
        line.contains("writer=resolver entries=5 last_seq=4 "),
        "{line}"
    );
}

#[test]
fn an_entry_in_another_partition_beyond_the_chain_matches_nothing() {
    let entries = chain("c1", 6);
    let longer = chain("c1", 8);
    let report = verify_with(&entries, &[(FOREIGN, longer[8].clone())], true);
    let line = chain_line(&report);
    assert!(
        line.ends_with(
            "FAILED: entry at seq 8 in partition 0 offset 7: the chain lives in partition 2, which has no seq 8"
        ),
        "{line}"
    );
}

#[test]
fn several_copies_in_another_partition_name_the_first_and_the_chains_own_problems_still_count() {
    let entries = chain("c1", 6);
    let later = Location {
        partition: 1,
        offset: 20,
    };
    let copies = [
        (FOREIGN, entries[4].clone()),
        (later, entries[5].clone()),
        (
            Location {
                partition: 0,
                offset: 9,
            },
            entries[2].clone(),
        ),
    ];
    let report = verify_with(&entries, &copies, false);
    // Partition 0's first copy is of seq 4; partition 1's of seq 5: the lower is named.
    assert!(
        chain_line(&report).ends_with(
            "duplicate entry at seq 4 in partition 0 offset 7: the chain lives in partition 2"
        ),
        "{}",
        chain_line(&report)
    );
    // A gap in the chain itself, before the copies, comes first.
    let mut gapped = entries.clone();
    gapped.remove(1);
    let mut verifier = Verifier::new(None);
    for (i, entry) in gapped.iter().enumerate() {
        verifier.add_entry(home(i), &entry.encode_to_vec());
    }
    verifier.add_entry(FOREIGN, &entries[4].encode_to_vec());
    let report = verifier.finish();
    assert!(
        chain_line(&report).ends_with("FAILED: missing entry at seq 1"),
        "{}",
        chain_line(&report)
    );
}

#[test]
fn the_json_report_places_the_copy_and_the_chain() {
    let entries = chain("c1", 3);
    let json = verify_with(&entries, &[(FOREIGN, entries[1].clone())], true).to_json();
    let chain = &json["chains"][0];
    assert_eq!(chain["partition"], HOME, "{json}");
    assert_eq!(chain["entries"], 4, "{json}");
    let problem = &chain["problem"];
    assert_eq!(problem["kind"], "duplicate in another partition", "{json}");
    assert_eq!(problem["sequence"], 1);
    assert_eq!(problem["at"]["partition"], 0);
    assert_eq!(problem["at"]["offset"], 7);
}

#[test]
fn only_a_start_in_the_chains_own_partition_declares_an_abandonment() {
    let mut old = chain("old", 5);
    let head = Hash::try_from(old[3].hash.as_slice()).unwrap();
    old.remove(4);
    let new = chain("new", 2);
    // A start of `new` rewritten to declare `old` abandoned at its entry 3, with a valid
    // hash, on another partition.
    let forged = chain_declaring("new", 0, &[("old", Some(3), Some(head))]);
    let mut verifier = Verifier::new(None);
    verifier.add_entry(FOREIGN, &forged[0].encode_to_vec());
    for (i, entry) in old.iter().chain(&new).enumerate() {
        verifier.add_entry(home(i), &entry.encode_to_vec());
    }
    let report = verifier.finish();
    assert_eq!(
        status(&report, "old"),
        ChainStatus::Failed(Problem::Missing { seq: 4 })
    );
    assert_eq!(
        status(&report, "new"),
        ChainStatus::Failed(Problem::OtherPartition {
            seq: 0,
            at: FOREIGN,
            home: HOME,
            likeness: Likeness::Changed
        })
    );
}

#[test]
fn as_many_entries_elsewhere_as_in_the_chain_the_one_beginning_it_is_the_chain() {
    // A chain of its start alone, and a forged next entry on a lower partition.
    let entries = chain("c1", 1);
    let report = verify_with(&entries[..1], &[(FOREIGN, entries[1].clone())], true);
    let line = chain_line(&report);
    assert!(
        line.ends_with(
            "FAILED: entry at seq 1 in partition 0 offset 7: the chain lives in partition 2, which has no seq 1"
        ),
        "{line}"
    );
}
