//! A person's social-security contribution history in summary: months paid per region,
//! the longest gap, the last paid month.
//!
//! Thirty years of monthly contributions are hundreds of records; a lookup must not decode
//! them all. As it materializes a contribution record, the store keeps one small field per
//! record under the person ([`ContributionSummary::stored_value`]: version, live flag and
//! the month it pays), compare-and-set by version like every copy; a lookup reads that
//! index and folds it with [`ContributionSummary::from_stored`]. [`ContributionSummary::apply`]
//! keeps its own version per record too, so the summary converges to the same state
//! whatever the order, duplicates or replays of the events: folding events one by one
//! equals [`ContributionSummary::from_periods`] over all of them, and the index read back
//! equals `from_periods` over the person's live contribution records.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{key_of, month_index, month_of_index, year_month};
use crate::domain::YearMonth;
use crate::proto::{ContributionPeriod, InsuranceType, Op, RecordEvent, record_event::Payload};
use crate::records::RecordType;

/// The contribution history of one person, incrementally maintainable.
///
/// It remembers, per contribution record, the highest version seen and the month it pays
/// (or nothing, for a deletion or an unpaid month). That is what makes `apply` order-proof:
/// a correction (a new version moving a month to another region, or a deletion) replaces
/// what the earlier version counted, and a late older version is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContributionSummary {
    /// By record id: all contribution records share one agency and type, so the id alone
    /// identifies the record and keeps the stored summary small.
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    version: u64,
    /// `None` when the record is deleted or pays nothing: the version still counts, so a
    /// late lower version cannot bring the month back.
    paid: Option<PaidMonth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PaidMonth {
    region: String,
    /// `InsuranceType` as on the wire, so unknown future types survive a round trip.
    insurance_type: i32,
    /// Months since year 0 (see `month_index`).
    month: i32,
}

/// A run of consecutive months without any paid contribution, between two paid months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The first unpaid month.
    pub first: YearMonth,
    /// The last unpaid month.
    pub last: YearMonth,
    /// How many months (at least 1).
    pub months: u32,
}

/// What a person-profile lookup returns of the history: small and cheap to read. Not
/// serde: its stored and wire form is the resolver's proto message, built from these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryView {
    /// Distinct months with a paid contribution (any insurance type), per region code.
    pub months_paid_by_region: BTreeMap<String, u32>,
    /// Distinct months with a paid contribution anywhere.
    pub months_paid: u32,
    /// The longest run of unpaid months between the first and last paid month (the
    /// earliest of equally long runs).
    pub longest_gap: Option<Gap>,
    /// The latest month with a paid contribution.
    pub last_paid_month: Option<YearMonth>,
}

impl ContributionSummary {
    /// The summary of a set of events, in any order, duplicates and deletions included.
    pub fn from_periods<'a>(events: impl IntoIterator<Item = &'a RecordEvent>) -> Self {
        let mut summary = ContributionSummary::default();
        for event in events {
            summary.apply(event);
        }
        summary
    }

    /// Folds one event in. Returns whether the summary changed: false for events of other
    /// record types and for versions not higher than the one already counted (duplicates,
    /// replays, late arrivals).
    pub fn apply(&mut self, event: &RecordEvent) -> bool {
        let Some((_, paid)) = read_event(event) else {
            return false;
        };
        if let Some(seen) = self.entries.get(&event.record_id)
            && seen.version >= event.version
        {
            return false;
        }
        self.entries.insert(
            event.record_id.clone(),
            Entry {
                version: event.version,
                paid,
            },
        );
        true
    }

    /// The field a contribution event makes in the person's contribution index, as the
    /// store keeps it: record id → `<version, 20 digits><flag><paid month>`, the flag `1`
    /// for a live version and `0` for a deletion, the paid month `region|insurance
    /// type|month index` or empty when the version pays nothing. The version leads, in the
    /// store's fixed-width form, so the store compares and sets the field by version like
    /// every copy it keeps. `None` for events of other record types.
    pub fn stored_value(event: &RecordEvent) -> Option<(String, String)> {
        let (live, paid) = read_event(event)?;
        let value = if live {
            let mut value = format!("{:0width$}1", event.version, width = STORED_VERSION_WIDTH);
            if let Some(p) = paid {
                value.push_str(&format!("{}|{}|{}", p.region, p.insurance_type, p.month));
            }
            value
        } else {
            ContributionSummary::stored_tombstone(event.version)
        };
        Some((event.record_id.clone(), value))
    }

    /// The field value of a contribution record under a person it is no longer about (a
    /// deletion, or a version that names another person): it counts nothing, and its
    /// version keeps a late older version out.
    pub fn stored_tombstone(version: u64) -> String {
        format!("{version:0width$}0", width = STORED_VERSION_WIDTH)
    }

    /// The summary of a person's contribution index (fields made by
    /// [`ContributionSummary::stored_value`] and [`ContributionSummary::stored_tombstone`],
    /// one per record id). Tombstones are left out, so the result equals
    /// [`ContributionSummary::from_periods`] over the person's live contribution records.
    pub fn from_stored<K: AsRef<str>, V: AsRef<[u8]>>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, StoredFieldError> {
        let mut summary = ContributionSummary::default();
        for (record_id, value) in fields {
            let record_id = record_id.as_ref();
            let bad = |reason| StoredFieldError {
                record_id: record_id.to_owned(),
                reason,
            };
            if let Some(entry) = parse_stored(value.as_ref()).map_err(bad)? {
                summary.entries.insert(record_id.to_owned(), entry);
            }
        }
        Ok(summary)
    }

    /// Distinct paid months (as indices) of the contributions `keep` selects.
    fn months_where(&self, keep: impl Fn(&PaidMonth) -> bool) -> BTreeSet<i32> {
        self.entries
            .values()
            .filter_map(|e| e.paid.as_ref())
            .filter(|p| keep(p))
            .map(|p| p.month)
            .collect()
    }

    /// Distinct months with a paid contribution (any insurance type), per region code.
    pub fn months_paid_by_region(&self) -> BTreeMap<String, u32> {
        let mut by_region: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
        for paid in self.entries.values().filter_map(|e| e.paid.as_ref()) {
            by_region
                .entry(&paid.region)
                .or_default()
                .insert(paid.month);
        }
        by_region
            .into_iter()
            .map(|(region, months)| (region.to_owned(), count(&months)))
            .collect()
    }

    /// Distinct months with a paid contribution anywhere.
    pub fn months_paid(&self) -> u32 {
        count(&self.months_where(|_| true))
    }

    /// The latest month with a paid contribution.
    pub fn last_paid_month(&self) -> Option<YearMonth> {
        self.months_where(|_| true)
            .last()
            .and_then(|m| month_of_index(*m))
    }

    /// The longest run of months with no paid contribution anywhere, between the first
    /// and the last paid month; the earliest of equally long runs.
    pub fn longest_gap(&self) -> Option<Gap> {
        let mut longest: Option<Gap> = None;
        for gap in gaps_in(&self.months_where(|_| true)) {
            if longest.is_none_or(|l| gap.months > l.months) {
                longest = Some(gap);
            }
        }
        longest
    }

    /// Distinct paid months in regions whose code starts with `region_prefix` (e.g. "3101"
    /// for all of Shanghai), from `first` to `last` inclusive, any insurance type.
    pub fn months_paid_in(&self, region_prefix: &str, first: YearMonth, last: YearMonth) -> u32 {
        let (first, last) = (month_index(first), month_index(last));
        count(&self.months_where(|p| {
            p.region.starts_with(region_prefix) && (first..=last).contains(&p.month)
        }))
    }

    /// The paid months of one insurance type in one region.
    pub fn paid_months(&self, region: &str, insurance_type: InsuranceType) -> BTreeSet<YearMonth> {
        self.months_where(|p| p.region == region && p.insurance_type == insurance_type as i32)
            .into_iter()
            .filter_map(month_of_index)
            .collect()
    }

    /// The small form a person-profile lookup reads.
    pub fn view(&self) -> SummaryView {
        SummaryView {
            months_paid_by_region: self.months_paid_by_region(),
            months_paid: self.months_paid(),
            longest_gap: self.longest_gap(),
            last_paid_month: self.last_paid_month(),
        }
    }
}

/// Width of the version that leads a stored index field: the store's fixed-width decimal
/// form, whose text order is numeric order for every `u64`.
const STORED_VERSION_WIDTH: usize = 20;

/// A contribution index field that [`ContributionSummary::stored_value`] cannot have made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contribution index field {record_id}: {reason}")]
pub struct StoredFieldError {
    /// The field (a contribution record id).
    pub record_id: String,
    /// What is wrong with its value.
    pub reason: &'static str,
}

/// What a contribution event says of its record: whether this version is live (not a
/// deletion), and the month it pays. `None` for events of other record types.
fn read_event(event: &RecordEvent) -> Option<(bool, Option<PaidMonth>)> {
    let key = key_of(event)?;
    if key != crate::records::RecordKey::new(RecordType::ContributionPeriod, &event.record_id) {
        return None;
    }
    Some(match (&event.payload, event.op()) {
        (_, Op::Delete) => (false, None),
        (Some(Payload::ContributionPeriod(period)), _) => (true, paid_month(period)),
        _ => (true, None),
    })
}

/// One stored index value: the entry it counts, `None` for a tombstone.
fn parse_stored(value: &[u8]) -> Result<Option<Entry>, &'static str> {
    let value = std::str::from_utf8(value).map_err(|_| "not UTF-8")?;
    let (version, rest) = value
        .split_at_checked(STORED_VERSION_WIDTH)
        .ok_or("shorter than a version")?;
    if !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the version is not 20 digits");
    }
    let version: u64 = version.parse().map_err(|_| "the version is above u64")?;
    let paid = match rest.split_at_checked(1) {
        Some(("0", "")) => return Ok(None),
        Some(("0", _)) => return Err("a tombstone with a paid month"),
        Some(("1", "")) => None,
        Some(("1", paid)) => Some(parse_paid(paid)?),
        _ => return Err("the flag is neither 1 (live) nor 0 (tombstone)"),
    };
    Ok(Some(Entry { version, paid }))
}

/// `region|insurance type|month index`; the region is split off last, so the two numbers
/// are found whatever it holds.
fn parse_paid(text: &str) -> Result<PaidMonth, &'static str> {
    let mut parts = text.rsplitn(3, '|');
    let (Some(month), Some(insurance_type), Some(region)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err("the paid month is not region|insurance type|month");
    };
    let month: i32 = month
        .parse()
        .map_err(|_| "the month index is not a number")?;
    if month_of_index(month).is_none() {
        return Err("the month index is outside years 1-9999");
    }
    Ok(PaidMonth {
        region: region.to_owned(),
        insurance_type: insurance_type
            .parse()
            .map_err(|_| "the insurance type is not a number")?,
        month,
    })
}

/// The month a contribution pays, when it pays anything: a record with no money paid (an
/// arrear the bureau recorded) is not a paid month.
fn paid_month(period: &ContributionPeriod) -> Option<PaidMonth> {
    let month = year_month(period.period.as_ref())?;
    let paid = period.personal_fen.saturating_add(period.employer_fen) > 0;
    paid.then(|| PaidMonth {
        region: period.region_code.clone(),
        insurance_type: period.insurance_type,
        month: month_index(month),
    })
}

/// The runs of missing months between the first and the last of `months`, in order.
pub(crate) fn gaps_in(months: &BTreeSet<i32>) -> Vec<Gap> {
    let mut gaps = Vec::new();
    let mut previous: Option<i32> = None;
    for &month in months {
        if let Some(prev) = previous
            && month - prev > 1
            && let (Some(first), Some(last)) = (month_of_index(prev + 1), month_of_index(month - 1))
        {
            gaps.push(Gap {
                first,
                last,
                months: (month - prev - 1) as u32,
            });
        }
        previous = Some(month);
    }
    gaps
}

fn count<T>(set: &BTreeSet<T>) -> u32 {
    u32::try_from(set.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
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

    /// What the store does with the fields: per record id, the value whose leading
    /// version is highest wins (a tie keeps the first).
    fn fold_like_the_store(events: &[&RecordEvent]) -> BTreeMap<String, String> {
        let mut index: BTreeMap<String, String> = BTreeMap::new();
        for event in events {
            let (id, value) = ContributionSummary::stored_value(event).unwrap();
            match index.get(&id) {
                Some(stored) if stored[..20] >= value[..20] => {}
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
            Some((
                "P-2023-02".to_owned(),
                format!("000000000000000000421{BEIJING}|1|{month}")
            ))
        );
        let unpaid = contribution_of("U", InsuranceType::Medical, 2023, 2, BEIJING, 7, 0);
        assert_eq!(
            ContributionSummary::stored_value(&unpaid).unwrap().1,
            "000000000000000000071"
        );
        let deleted = deletion(
            crate::proto::Agency::SocialSecurity,
            "contribution_period",
            "D",
            u64::MAX,
        );
        assert_eq!(
            ContributionSummary::stored_value(&deleted),
            Some(("D".to_owned(), "184467440737095516150".to_owned()))
        );
        assert_eq!(
            ContributionSummary::stored_tombstone(3),
            "000000000000000000030"
        );
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
        let version = "00000000000000000001";
        assert_eq!(refused("0000001"), "shorter than a version");
        assert_eq!(
            refused("0000000000000000000x1"),
            "the version is not 20 digits"
        );
        assert_eq!(refused("999999999999999999991"), "the version is above u64");
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
        let err = ContributionSummary::from_stored([("R-1", &[0xff_u8][..])]).unwrap_err();
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
}
