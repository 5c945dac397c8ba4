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
use crate::resolver::store::version;

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
            let mut value = format!("{}1", version::text(event.version));
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
        format!("{}0", version::text(version))
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
    let (version, rest) = version::split(value).ok_or("it does not lead with a version")?;
    let rest = std::str::from_utf8(rest).map_err(|_| "not UTF-8")?;
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
#[path = "summary_tests.rs"]
mod tests;
