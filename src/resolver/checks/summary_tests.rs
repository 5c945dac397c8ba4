//! Unit tests of the contribution summary and its stored form.

use super::super::fixtures::*;
use super::*;

fn ym(year: i32, month: u32) -> YearMonth {
    YearMonth::new(year, month).unwrap()
}

#[test]
fn summary_counts_months_per_region_and_finds_the_longest_gap() {
    let mut events = Vec::new();
    // 2022-01..=2022-06 in Beijing, then 2022-10..=2022-12 in Shanghai: a 3-month gap.
    for m in 1..=6 {
        events.push(contribution("C-BJ", 2022, m, BEIJING, 1));
    }
    for m in 10..=12 {
        events.push(contribution("C-SH", 2022, m, SHANGHAI, 1));
    }
    // A second insurance type in the same month adds no month.
    events.push(contribution_of(
        "M-BJ-2022-01",
        InsuranceType::Medical,
        2022,
        1,
        BEIJING,
        1,
        500,
    ));
    // A month recorded with nothing paid is not a paid month.
    events.push(contribution_of(
        "P-BJ-2022-08",
        InsuranceType::Pension,
        2022,
        8,
        BEIJING,
        1,
        0,
    ));
    let summary = ContributionSummary::from_periods(&events);
    assert_eq!(
        summary.months_paid_by_region(),
        BTreeMap::from([(BEIJING.to_owned(), 6), (SHANGHAI.to_owned(), 3)])
    );
    assert_eq!(summary.months_paid(), 9);
    assert_eq!(summary.last_paid_month(), Some(ym(2022, 12)));
    assert_eq!(
        summary.longest_gap(),
        Some(Gap {
            first: ym(2022, 7),
            last: ym(2022, 9),
            months: 3
        })
    );
    assert_eq!(summary.months_paid_in("3101", ym(2022, 1), ym(2022, 11)), 2);
    assert_eq!(summary.months_paid_in("", ym(2022, 6), ym(2022, 10)), 2);
    assert_eq!(
        summary.paid_months(BEIJING, InsuranceType::Medical),
        BTreeSet::from([ym(2022, 1)])
    );
    let view = summary.view();
    assert_eq!(view.months_paid, 9);
    assert_eq!(view.longest_gap.map(|g| g.months), Some(3));
}

#[test]
fn longest_gap_prefers_the_longer_then_the_earlier_run_and_spans_year_ends() {
    let months = [(2021, 11), (2022, 2), (2022, 3), (2022, 6), (2022, 9)];
    let events: Vec<_> = months
        .iter()
        .map(|&(y, m)| contribution("P", y, m, BEIJING, 1))
        .collect();
    let summary = ContributionSummary::from_periods(&events);
    // 2021-12..2022-01 (2), 2022-04..05 (2), 2022-07..08 (2): the earliest wins.
    assert_eq!(
        summary.longest_gap(),
        Some(Gap {
            first: ym(2021, 12),
            last: ym(2022, 1),
            months: 2
        })
    );
    let single = ContributionSummary::from_periods(&events[..1]);
    assert_eq!(single.longest_gap(), None);
    assert_eq!(ContributionSummary::default().last_paid_month(), None);
}

#[test]
fn new_versions_and_deletions_replace_what_earlier_versions_counted() {
    let mut summary = ContributionSummary::default();
    assert!(summary.apply(&contribution("P", 2023, 1, BEIJING, 1)));
    // Corrected: that month was paid in Shanghai.
    assert!(summary.apply(&contribution("P", 2023, 1, SHANGHAI, 2)));
    assert_eq!(
        summary.months_paid_by_region(),
        BTreeMap::from([(SHANGHAI.to_owned(), 1)])
    );
    // A late, older version changes nothing.
    assert!(!summary.apply(&contribution("P", 2023, 1, BEIJING, 1)));
    assert!(!summary.apply(&contribution("P", 2023, 1, BEIJING, 2)));
    // Deleted at the source, and a late version 2 cannot revive it.
    assert!(summary.apply(&deletion(
        crate::proto::Agency::SocialSecurity,
        "contribution_period",
        &contribution_id("P", 2023, 1),
        3
    )));
    assert!(!summary.apply(&contribution("P", 2023, 1, SHANGHAI, 2)));
    assert_eq!(summary.months_paid(), 0);
    // Records of other types are not contributions.
    assert!(!summary.apply(&loan_event(
        "L",
        9,
        SELLER_A,
        crate::proto::LoanStatus::Repaying,
        1
    )));
}

#[test]
fn incremental_equals_batch_for_shuffled_input_with_duplicates_and_new_versions() {
    let mut events = Vec::new();
    for i in 0..48u32 {
        let (year, month) = (2019 + (i / 12) as i32, i % 12 + 1);
        if i % 7 == 3 {
            continue; // gaps
        }
        events.push(contribution("P", year, month, BEIJING, 1));
        if i % 5 == 0 {
            // A correction of the same month: moved to Shanghai.
            events.push(contribution("P", year, month, SHANGHAI, 2));
        }
        if i % 11 == 0 {
            // Then deleted at the source.
            events.push(deletion(
                crate::proto::Agency::SocialSecurity,
                "contribution_period",
                &contribution_id("P", year, month),
                3,
            ));
        }
        if i % 3 == 0 {
            events.push(contribution("P", year, month, BEIJING, 1)); // duplicate
        }
    }
    let batch = ContributionSummary::from_periods(&events);
    // The expected state, computed independently of apply's version logic.
    // 48 months, 7 never paid, 5 deleted; 7 of the rest moved to Shanghai.
    assert_eq!(batch.months_paid(), 36);
    assert_eq!(
        batch.months_paid_by_region(),
        BTreeMap::from([(BEIJING.to_owned(), 29), (SHANGHAI.to_owned(), 7)])
    );
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..50 {
        let mut shuffled = events.clone();
        // Fisher-Yates with a fixed xorshift: deterministic, no dependency.
        for i in (1..shuffled.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            shuffled.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let mut incremental = ContributionSummary::default();
        for event in &shuffled {
            incremental.apply(event);
        }
        assert_eq!(incremental, batch);
        assert_eq!(incremental.view(), batch.view());
    }
}

/// Corrections, deletions, duplicates, unpaid months and two insurance types.
fn corrected_history() -> Vec<RecordEvent> {
    let mut events = Vec::new();
    for i in 0..36u32 {
        let (year, month) = (2020 + (i / 12) as i32, i % 12 + 1);
        events.push(contribution("P", year, month, BEIJING, 1));
        if i % 4 == 0 {
            events.push(contribution("P", year, month, SHANGHAI, 2));
        }
        if i % 9 == 0 {
            events.push(deletion(
                crate::proto::Agency::SocialSecurity,
                "contribution_period",
                &contribution_id("P", year, month),
                3,
            ));
        }
        if i % 6 == 1 {
            let id = format!("M-{year}-{month}");
            events.push(contribution_of(
                &id,
                InsuranceType::Medical,
                year,
                month,
                SHANGHAI,
                u64::MAX - 1,
                i64::from(i % 12) - 1,
            ));
            events.push(contribution_of(
                &id,
                InsuranceType::Medical,
                year,
                month,
                BEIJING,
                7,
                500,
            ));
        }
    }
    events
}

/// The leading version of a stored value, as the store's script cuts it: the letter that
/// counts its digits, then the digits.
fn version_of(value: &str) -> &str {
    let digits = usize::from(value.as_bytes()[0] - b'a') + 1;
    &value[..=digits]
}

/// What the store does with the fields: per record id, the value whose leading
/// version (compared as text) is highest wins (a tie keeps the first).
fn fold_like_the_store(events: &[&RecordEvent]) -> BTreeMap<String, String> {
    let mut index: BTreeMap<String, String> = BTreeMap::new();
    for event in events {
        let (id, value) = ContributionSummary::stored_value(event).unwrap();
        match index.get(&id) {
            Some(stored) if version_of(stored) >= version_of(&value) => {}
            _ => {
                index.insert(id, value);
            }
        }
    }
    index
}

#[test]
fn the_stored_index_folds_to_the_summary_of_the_live_records_in_any_order() {
    let events = corrected_history();
    // The live records, decided independently of versions in stored form: the
    // highest version of each record, when it is not a deletion.
    let mut latest: BTreeMap<&str, &RecordEvent> = BTreeMap::new();
    for e in &events {
        if latest
            .get(e.record_id.as_str())
            .is_none_or(|l| l.version < e.version)
        {
            latest.insert(&e.record_id, e);
        }
    }
    let live: Vec<&RecordEvent> = latest
        .values()
        .copied()
        .filter(|e| e.op() != Op::Delete)
        .collect();
    assert!(live.len() < latest.len(), "the history deletes records");
    let expected = ContributionSummary::from_periods(live.iter().copied());
    assert!(expected.months_paid() > 0);
    assert_ne!(
        expected
            .entries
            .values()
            .filter(|e| e.paid.is_none())
            .count(),
        0,
        "live records that pay nothing are counted as such"
    );
    let mut order: Vec<&RecordEvent> = events.iter().collect();
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    for _ in 0..50 {
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let read = ContributionSummary::from_stored(fold_like_the_store(&order)).unwrap();
        assert_eq!(read, expected);
        assert_eq!(
            read.view(),
            ContributionSummary::from_periods(&events).view()
        );
    }
}

#[test]
fn stored_values_are_version_flag_and_paid_month() {
    let paid = contribution("P", 2023, 2, BEIJING, 42);
    let month = month_index(ym(2023, 2));
    assert_eq!(
        ContributionSummary::stored_value(&paid),
        Some(("P-2023-02".to_owned(), format!("b421{BEIJING}|1|{month}")))
    );
    let unpaid = contribution_of("U", InsuranceType::Medical, 2023, 2, BEIJING, 7, 0);
    assert_eq!(ContributionSummary::stored_value(&unpaid).unwrap().1, "a71");
    let deleted = deletion(
        crate::proto::Agency::SocialSecurity,
        "contribution_period",
        "D",
        u64::MAX,
    );
    assert_eq!(
        ContributionSummary::stored_value(&deleted),
        Some(("D".to_owned(), "t184467440737095516150".to_owned()))
    );
    assert_eq!(ContributionSummary::stored_tombstone(3), "a30");
    let other = loan_event("L", 9, SELLER_A, crate::proto::LoanStatus::Repaying, 1);
    assert_eq!(ContributionSummary::stored_value(&other), None);
    // The index of one record of each kind reads back as their summary.
    let read = ContributionSummary::from_stored([
        ContributionSummary::stored_value(&paid).unwrap(),
        ContributionSummary::stored_value(&unpaid).unwrap(),
        ContributionSummary::stored_value(&deleted).unwrap(),
    ])
    .unwrap();
    assert_eq!(read, ContributionSummary::from_periods([&paid, &unpaid]));
}

#[test]
fn a_stored_field_the_summary_did_not_make_is_refused_with_its_reason() {
    let refused = |value: &str| {
        ContributionSummary::from_stored([("R-1", value)])
            .unwrap_err()
            .reason
    };
    let version = "a1";
    for no_version in ["", "b1", "ax1", "b011", "t999999999999999999991", "0000001"] {
        assert_eq!(refused(no_version), "it does not lead with a version");
    }
    assert_eq!(
        refused(version),
        "the flag is neither 1 (live) nor 0 (tombstone)"
    );
    assert_eq!(
        refused(&format!("{version}2")),
        "the flag is neither 1 (live) nor 0 (tombstone)"
    );
    assert_eq!(
        refused(&format!("{version}0110105|1|24000")),
        "a tombstone with a paid month"
    );
    assert_eq!(
        refused(&format!("{version}1110105|24000")),
        "the paid month is not region|insurance type|month"
    );
    assert_eq!(
        refused(&format!("{version}1110105|1|x")),
        "the month index is not a number"
    );
    assert_eq!(
        refused(&format!("{version}1110105|1|120000")),
        "the month index is outside years 1-9999"
    );
    assert_eq!(
        refused(&format!("{version}1110105|p|24000")),
        "the insurance type is not a number"
    );
    let err = ContributionSummary::from_stored([("R-1", &b"a11\xff"[..])]).unwrap_err();
    assert_eq!(err.to_string(), "contribution index field R-1: not UTF-8");
    // A region holding the separator still reads back whole.
    let read =
        ContributionSummary::from_stored([("R-1", format!("{version}1a|b|1|24000"))]).unwrap();
    assert_eq!(
        read.months_paid_by_region(),
        BTreeMap::from([("a|b".to_owned(), 1)])
    );
}

#[test]
fn summary_survives_a_serde_round_trip() {
    let events = [
        contribution("P", 2020, 1, BEIJING, 1),
        contribution("P", 2020, 3, SHANGHAI, 4),
    ];
    let summary = ContributionSummary::from_periods(&events);
    let text = serde_json::to_string(&summary).unwrap();
    let back: ContributionSummary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, summary);
    assert!(
        !text.contains(SELLER_A),
        "no resident id in the stored summary"
    );
}
