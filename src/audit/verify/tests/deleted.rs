//! Records deleted from the start of a partition (retention, `DeleteRecords`): the run
//! fails naming the partition and its low watermark, and a chain that lost its beginning
//! with it says so.

use super::*;

/// Verifies `entries` and `checkpoints` (both in partition 0), with the
/// partitions' low watermarks `starts`.
fn verify_starting(
    entries: &[AuditEntry],
    checkpoints: &[AuditCheckpoint],
    starts: &[(TrailTopic, i32, i64)],
) -> Report {
    let mut verifier = Verifier::new(None);
    for (i, c) in checkpoints.iter().enumerate() {
        verifier.add_checkpoint(location(i), &c.encode_to_vec());
    }
    for (i, e) in entries.iter().enumerate() {
        verifier.add_entry(location(i), &e.encode_to_vec());
    }
    for (topic, partition, low) in starts {
        verifier.partition_starts_at(*topic, *partition, *low);
    }
    verifier.finish()
}

#[test]
fn a_partition_that_no_longer_starts_at_offset_0_fails_the_run_naming_it() {
    // A whole chain without checkpoints (its writer crashed) deleted: nothing else shows.
    let kept = chain("kept", 3);
    let checkpoints = [closed(&kept)];
    let whole = verify_starting(&kept, &checkpoints, &[(TrailTopic::Entries, 0, 0)]);
    assert!(whole.is_clean(), "{}", report_text(&whole));

    let report = verify_starting(
        &kept,
        &checkpoints,
        &[
            (TrailTopic::Checkpoints, 1, 2),
            (TrailTopic::Entries, 0, 4),
            (TrailTopic::Entries, 1, 0),
        ],
    );
    assert!(!report.is_clean());
    assert_eq!(status(&report, "kept"), ChainStatus::Closed);
    assert_eq!(
        report.truncated,
        [
            Truncated {
                topic: TrailTopic::Entries,
                partition: 0,
                low_watermark: 4
            },
            Truncated {
                topic: TrailTopic::Checkpoints,
                partition: 1,
                low_watermark: 2
            }
        ]
    );
    let text = report_text(&report);
    assert!(
        text.contains("FAILED: partition 0 of the audit topic starts at offset 4 (its low watermark): the 4 records before it were deleted\n"),
        "{text}"
    );
    assert!(
        text.contains("FAILED: partition 1 of the checkpoint topic starts at offset 2 (its low watermark): the 2 records before it were deleted\n"),
        "{text}"
    );
    let json = report.to_json();
    assert_eq!(json["clean"], false);
    assert_eq!(json["truncated"][0]["topic"], "audit");
    assert_eq!(json["truncated"][0]["partition"], 0);
    assert_eq!(json["truncated"][0]["low_watermark"], 4);
    assert_eq!(json["truncated"][1]["topic"], "checkpoint");
}

#[test]
fn a_chain_whose_beginning_went_with_its_partitions_is_named_deleted() {
    let entries = chain("c1", 6);
    let report = verify_starting(
        &entries[3..],
        &[closed(&entries)],
        &[(TrailTopic::Entries, 0, 7)],
    );
    let deleted = Problem::Deleted {
        seq: 0,
        left: Some(3),
        vouched: None,
        partition: 0,
        low_watermark: 7,
    };
    assert_eq!(status(&report, "c1"), ChainStatus::Failed(deleted.clone()));
    assert_eq!(deleted.kind(), "deleted");
    let text = report_text(&report);
    assert!(
        text.contains(": FAILED: deleted entries from seq 0 to seq 2; partition 0 starts at offset 7 (its low watermark), the records before it were deleted\n"),
        "{text}"
    );
    // The same chain in a partition that starts at 0 is missing its start, as before.
    let report = verify_starting(
        &entries[3..],
        &[closed(&entries)],
        &[(TrailTopic::Entries, 0, 0), (TrailTopic::Entries, 1, 7)],
    );
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 0 })
    );
}

#[test]
fn checkpoints_of_a_chain_with_no_entry_left_name_the_partition_and_its_low_watermark() {
    let gone = chain("gone", 5);
    let report = verify_starting(&[], &[closed(&gone)], &[(TrailTopic::Entries, 0, 12)]);
    assert_eq!(
        status(&report, "gone"),
        ChainStatus::Failed(Problem::Deleted {
            seq: 0,
            left: None,
            vouched: Some((5, "a checkpoint")),
            partition: 0,
            low_watermark: 12,
        })
    );
    let text = report_text(&report);
    assert!(
        text.contains("chain gone writer=? entries=0 last_seq=- head=-: FAILED: deleted: no entry left, but a checkpoint says the chain reached seq 5; partition 0 starts at offset 12 (its low watermark), the records before it were deleted\n"),
        "{text}"
    );
    // Two partitions lost their beginning: which one held the chain is not known; the
    // run names both, the chain says what it misses.
    let report = verify_starting(
        &[],
        &[closed(&gone)],
        &[(TrailTopic::Entries, 0, 12), (TrailTopic::Entries, 2, 3)],
    );
    assert_eq!(
        status(&report, "gone"),
        ChainStatus::Failed(Problem::CutOff {
            last: None,
            expected: 5,
            by: "a checkpoint"
        })
    );
    assert_eq!(report.truncated.len(), 2);
}

#[test]
fn what_is_not_a_lost_beginning_keeps_its_own_name() {
    let entries = chain("c1", 9);
    let starts = [(TrailTopic::Entries, 0, 5)];
    // A gap in the middle.
    let mut gapped = entries.clone();
    gapped.remove(4);
    assert_eq!(
        status(&verify_starting(&gapped, &[], &starts), "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 4 })
    );
    // Entries right after `--from` gone, while those before it were read.
    let mut verifier = Verifier::new(time(T0 + 5));
    for (i, e) in entries.iter().enumerate().filter(|(i, _)| *i != 5) {
        verifier.add_entry(location(i), &e.encode_to_vec());
    }
    verifier.partition_starts_at(TrailTopic::Entries, 0, 5);
    assert_eq!(
        status(&verifier.finish(), "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 5 })
    );
    // A chain abandoned before any entry was acknowledged may lack its start; the run
    // still fails on the partition.
    let lost = chain("lost", 2)[1..].to_vec();
    let new = chain_declaring("new", 1, &[("lost", None, None)]);
    let report = verify_starting(&[lost, new.clone()].concat(), &[closed(&new)], &starts);
    assert!(matches!(
        status(&report, "lost"),
        ChainStatus::Abandoned { .. }
    ));
    assert!(!report.is_clean());
}
