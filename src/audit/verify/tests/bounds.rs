//! What verification holds in memory: forged sequence numbers, however far ahead, cost
//! no more than the message that carries them.

use super::*;

/// The most the verifier may hold per message read, by its own accounting (each chain's
/// state, its index entry and the hashes it keeps), for messages with short chain ids...
const PER_MESSAGE: usize = 1024;
/// ... on top of what it holds before reading anything and its first allocations.
const FIXED: usize = 4096;

/// One entry of chain `id` at `seq` whose hash matches it, as anyone who can write to
/// the topic can make: about 80 bytes.
fn forged(id: &str, seq: u64) -> AuditEntry {
    let body = AuditBody {
        at: at(T0),
        kind: Some(access("x")),
    }
    .encode_to_vec();
    let previous = [9; 32];
    AuditEntry {
        chain_id: id.into(),
        sequence: seq,
        previous_hash: previous.to_vec(),
        hash: entry_hash(id, seq, &previous, &body).to_vec(),
        body,
    }
}

#[test]
fn thousands_of_forged_chains_jumping_far_ahead_stay_within_a_fixed_budget() {
    const CHAINS: usize = 3000;
    let mut verifier = Verifier::new(None);
    let mut read = 0;
    let mut bytes = 0;
    for i in 0..CHAINS {
        // Just within the gap held open for a late entry, far beyond it, and a chain
        // that starts properly and then jumps.
        let started = chain(&format!("s{i}"), 0).remove(0);
        let jumped = forged(&format!("s{i}"), MAX_GAP);
        for entry in [
            forged(&format!("n{i}"), MAX_GAP),
            forged(&format!("f{i}"), 1_000_000_000),
            started,
            jumped,
        ] {
            let payload = entry.encode_to_vec();
            bytes += payload.len();
            verifier.add_entry(location(read), &payload);
            read += 1;
            // Counting walks every chain: after each of the first messages, then now and then.
            if read > 16 && read % 256 != 0 {
                continue;
            }
            let held = verifier.held_bytes();
            assert!(
                held <= FIXED + read * PER_MESSAGE,
                "{held} bytes held after {read} messages ({bytes} bytes read)"
            );
        }
    }
    println!(
        "{read} forged messages ({bytes} bytes): the verifier holds {} bytes",
        verifier.held_bytes()
    );
    // Each is reported missing what it jumped over.
    let report = verifier.finish();
    assert_eq!(report.chains.len(), 3 * CHAINS);
    for c in &report.chains {
        let first_missing = if c.chain_id.starts_with('s') { 1 } else { 0 };
        assert_eq!(
            c.status,
            ChainStatus::Failed(Problem::Missing { seq: first_missing }),
            "{}",
            c.chain_id
        );
    }
}

#[test]
fn an_honest_chain_holds_its_hashes_and_little_more() {
    let entries = chain("c1", 10_000);
    let mut verifier = Verifier::new(None);
    for (i, entry) in entries.iter().enumerate() {
        verifier.add_entry(location(i), &entry.encode_to_vec());
    }
    // 32 bytes per entry, twice that at most while the vector grows.
    let held = verifier.held_bytes();
    assert!(held <= FIXED + 64 * entries.len(), "{held}");
    assert!(verifier.finish().is_clean());
}

#[test]
fn late_entries_fill_a_gap_from_its_start_and_a_retry_of_one_is_a_duplicate() {
    let entries = chain("c1", 8);
    // 0, 1, then 6..=8; 2 and 3 come late, 3 twice; 4 and 5 never.
    let mut read: Vec<AuditEntry> = [&entries[..2], &entries[6..]].concat();
    read.extend([entries[2].clone(), entries[3].clone(), entries[3].clone()]);
    let report = verify(&read, &[]);
    let c = &report.chains[0];
    assert_eq!(
        c.status,
        ChainStatus::Failed(Problem::Reordered { seq: 2, after: 8 })
    );
    assert_eq!((c.entries, c.duplicates), (5, 1));
    // The head is the last entry in order, after the gap.
    assert_eq!(c.head.map(|h| h.to_vec()), Some(entries[8].hash.clone()));
    // Without the late ones, the gap is missing from its start.
    let report = verify(&[&entries[..2], &entries[6..]].concat(), &[]);
    assert_eq!(
        status(&report, "c1"),
        ChainStatus::Failed(Problem::Missing { seq: 2 })
    );
}
