//! A person's social-security contribution history in summary: months paid per region,
//! the longest gap, the last paid month.
//!
//! Thirty years of monthly contributions are hundreds of records; a lookup must not decode
//! them all. The materializer keeps one [`ContributionSummary`] per person and calls
//! [`ContributionSummary::apply`] for every contribution event it stores; lookups read the
//! small [`SummaryView`]. `apply` keeps its own version per record, so the summary
//! converges to the same state whatever the order, duplicates or replays of the events:
//! folding events one by one equals [`ContributionSummary::from_periods`] over all of them.

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
/// what the earlier version counted, and a late older version is ignored. Serializable so
/// the resolver can keep it in the store next to the person's records.
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
        let Some(key) = key_of(event) else {
            return false;
        };
        if key != crate::records::RecordKey::new(RecordType::ContributionPeriod, &event.record_id) {
            return false;
        }
        if let Some(seen) = self.entries.get(&event.record_id)
            && seen.version >= event.version
        {
            return false;
        }
        let paid = match (&event.payload, event.op()) {
            (_, Op::Delete) => None,
            (Some(Payload::ContributionPeriod(period)), _) => paid_month(period),
            _ => None,
        };
        self.entries.insert(
            event.record_id.clone(),
            Entry {
                version: event.version,
                paid,
            },
        );
        true
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
