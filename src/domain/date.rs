//! Civil (calendar) dates and year-months in the proleptic Gregorian calendar,
//! and "today" as seen by a clock in China (UTC+8).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a year, month and day do not form a valid civil date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// The year is outside 1-9999.
    #[error("year {year} is out of range 1-9999")]
    Year {
        /// The rejected year.
        year: i32,
    },
    /// The month is outside 1-12.
    #[error("month {month} is out of range 1-12")]
    Month {
        /// The rejected month.
        month: u32,
    },
    /// The day does not exist in the given month.
    #[error("day {day} is out of range 1-{max} for {year:04}-{month:02}")]
    Day {
        /// The year of the rejected date.
        year: i32,
        /// The month of the rejected date.
        month: u32,
        /// The rejected day.
        day: u32,
        /// The last day of that month.
        max: u32,
    },
}

impl DateError {
    /// A short, stable machine name for the violated rule.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Year { .. } => "year",
            Self::Month { .. } => "month",
            Self::Day { .. } => "day",
        }
    }
}

/// A validated calendar date (year 1-9999), ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate {
    // Field order matters: the derived `Ord` must compare year, then month, then day.
    year: i32,
    month: u32,
    day: u32,
}

/// China has used a single UTC+8 offset without daylight saving since 1991.
const CHINA_UTC_OFFSET_SECS: i64 = 8 * 3600;
const SECS_PER_DAY: i64 = 86_400;
/// Days from 1970-01-01 to 0001-01-01.
const MIN_EPOCH_DAY: i64 = -719_162;
/// Days from 1970-01-01 to 9999-12-31.
const MAX_EPOCH_DAY: i64 = 2_932_896;

impl CivilDate {
    /// Builds a date, rejecting years outside 1-9999 and days that do not exist.
    pub fn new(year: i32, month: u32, day: u32) -> Result<CivilDate, DateError> {
        if !(1..=9999).contains(&year) {
            return Err(DateError::Year { year });
        }
        if !(1..=12).contains(&month) {
            return Err(DateError::Month { month });
        }
        let max = days_in_month(year, month);
        if !(1..=max).contains(&day) {
            return Err(DateError::Day {
                year,
                month,
                day,
                max,
            });
        }
        Ok(CivilDate { year, month, day })
    }

    /// The year (1-9999).
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month (1-12).
    pub fn month(&self) -> u32 {
        self.month
    }

    /// The day of the month (1-31).
    pub fn day(&self) -> u32 {
        self.day
    }

    /// The year and month this date falls in.
    pub fn year_month(&self) -> YearMonth {
        YearMonth {
            year: self.year,
            month: self.month,
        }
    }

    /// The latest date there is: 9999-12-31.
    pub const MAX: CivilDate = CivilDate {
        year: 9999,
        month: 12,
        day: 31,
    };

    /// Today's date in China (UTC+8) according to the system clock.
    pub fn today_in_china() -> CivilDate {
        let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            Err(before) => {
                let before = before.duration();
                // Round away from the epoch so a fraction of a second before
                // midnight still belongs to the earlier day.
                let whole = before.as_secs() + u64::from(before.subsec_nanos() > 0);
                i64::try_from(whole).map_or(i64::MIN, |s| -s)
            }
        };
        Self::in_china_at(secs)
    }

    /// The date in China (UTC+8) at `unix_secs` seconds after 1970-01-01T00:00:00Z,
    /// clamped to 0001-01-01..=9999-12-31. Lets callers inject "now" in tests.
    pub fn in_china_at(unix_secs: i64) -> CivilDate {
        let days = unix_secs
            .saturating_add(CHINA_UTC_OFFSET_SECS)
            .div_euclid(SECS_PER_DAY);
        Self::from_epoch_day_clamped(days)
    }

    /// Converts days since 1970-01-01, clamping to the representable range so
    /// that a wildly wrong system clock cannot make "today" unrepresentable.
    fn from_epoch_day_clamped(days: i64) -> CivilDate {
        let (year, month, day) = civil_from_days(days.clamp(MIN_EPOCH_DAY, MAX_EPOCH_DAY));
        // The clamp keeps the year within 1..=9999, so the conversion cannot fail.
        let year = i32::try_from(year).unwrap_or(9999);
        CivilDate { year, month, day }
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A validated year and month (year 1-9999), ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    // Field order matters: the derived `Ord` must compare year, then month.
    year: i32,
    month: u32,
}

impl YearMonth {
    /// Builds a year-month, rejecting years outside 1-9999 and months outside 1-12.
    pub fn new(year: i32, month: u32) -> Result<YearMonth, DateError> {
        if !(1..=9999).contains(&year) {
            return Err(DateError::Year { year });
        }
        if !(1..=12).contains(&month) {
            return Err(DateError::Month { month });
        }
        Ok(YearMonth { year, month })
    }

    /// The year (1-9999).
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month (1-12).
    pub fn month(&self) -> u32 {
        self.month
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `civil_from_days`: shifting the year to start in March
/// puts the leap day last, so each 400-year era has a fixed shape.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Month and day are 1..=12 and 1..=31 by construction, so the fallbacks never apply.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inverse of `civil_from_days`, used to cross-check it.
    fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(month);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn valid_dates() {
        let d = CivilDate::new(1949, 12, 31).unwrap();
        assert_eq!((d.year(), d.month(), d.day()), (1949, 12, 31));
        assert_eq!(d.to_string(), "1949-12-31");
        assert_eq!(CivilDate::new(1, 1, 1).unwrap().to_string(), "0001-01-01");
        assert_eq!(
            CivilDate::new(9999, 12, 31).unwrap().to_string(),
            "9999-12-31"
        );
        assert!(CivilDate::new(2000, 2, 29).is_ok());
        assert!(CivilDate::new(2024, 2, 29).is_ok());
    }

    #[test]
    fn rejects_year_out_of_range() {
        for year in [0, -1, 10_000] {
            let err = CivilDate::new(year, 1, 1).unwrap_err();
            assert_eq!(err, DateError::Year { year });
            assert_eq!(err.rule(), "year");
        }
    }

    #[test]
    fn rejects_month_out_of_range() {
        for month in [0, 13] {
            let err = CivilDate::new(2020, month, 1).unwrap_err();
            assert_eq!(err.rule(), "month");
            assert_eq!(
                err.to_string(),
                format!("month {month} is out of range 1-12")
            );
        }
    }

    #[test]
    fn rejects_feb_29_in_non_leap_years() {
        for year in [1900, 2023, 2100] {
            let err = CivilDate::new(year, 2, 29).unwrap_err();
            assert_eq!(err.rule(), "day");
            assert_eq!(
                err.to_string(),
                format!("day 29 is out of range 1-28 for {year}-02")
            );
        }
    }

    #[test]
    fn rejects_day_out_of_range() {
        assert_eq!(CivilDate::new(2024, 4, 31).unwrap_err().rule(), "day");
        assert_eq!(CivilDate::new(2024, 1, 0).unwrap_err().rule(), "day");
        assert_eq!(CivilDate::new(2024, 1, 32).unwrap_err().rule(), "day");
    }

    #[test]
    fn ordering_is_chronological() {
        let a = CivilDate::new(1999, 12, 31).unwrap();
        let b = CivilDate::new(2000, 1, 1).unwrap();
        let c = CivilDate::new(2000, 2, 1).unwrap();
        assert!(a < b && b < c);
        let ym1 = YearMonth::new(1999, 12).unwrap();
        let ym2 = YearMonth::new(2000, 1).unwrap();
        assert!(ym1 < ym2);
        assert_eq!(c.year_month(), YearMonth::new(2000, 2).unwrap());
    }

    #[test]
    fn year_month() {
        let ym = YearMonth::new(2024, 3).unwrap();
        assert_eq!((ym.year(), ym.month()), (2024, 3));
        assert_eq!(ym.to_string(), "2024-03");
        assert_eq!(YearMonth::new(2024, 13).unwrap_err().rule(), "month");
        assert_eq!(YearMonth::new(0, 1).unwrap_err().rule(), "year");
    }

    #[test]
    fn epoch_day_conversion() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(MIN_EPOCH_DAY), (1, 1, 1));
        assert_eq!(civil_from_days(MAX_EPOCH_DAY), (9999, 12, 31));
        assert_eq!(days_from_civil(1, 1, 1), MIN_EPOCH_DAY);
        assert_eq!(days_from_civil(9999, 12, 31), MAX_EPOCH_DAY);
    }

    #[test]
    fn epoch_day_conversion_round_trips_and_agrees_with_new() {
        let mut days = MIN_EPOCH_DAY;
        while days <= MAX_EPOCH_DAY {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(CivilDate::new(i32::try_from(y).unwrap(), m, d).is_ok());
            days += 97;
        }
    }

    #[test]
    fn epoch_day_clamping() {
        assert_eq!(
            CivilDate::from_epoch_day_clamped(i64::MIN / SECS_PER_DAY),
            CivilDate::new(1, 1, 1).unwrap()
        );
        assert_eq!(
            CivilDate::from_epoch_day_clamped(i64::MAX / SECS_PER_DAY),
            CivilDate::new(9999, 12, 31).unwrap()
        );
    }

    #[test]
    fn the_date_in_china_turns_at_16_00_utc() {
        // 2026-11-27T15:59:59Z is 23:59:59 in Beijing; one second later it is the 28th.
        let before = 1_795_795_199;
        assert_eq!(
            CivilDate::in_china_at(before),
            CivilDate::new(2026, 11, 27).unwrap()
        );
        assert_eq!(
            CivilDate::in_china_at(before + 1),
            CivilDate::new(2026, 11, 28).unwrap()
        );
        assert_eq!(
            CivilDate::in_china_at(-CHINA_UTC_OFFSET_SECS - 1),
            CivilDate::new(1969, 12, 31).unwrap()
        );
        assert_eq!(CivilDate::in_china_at(i64::MAX), CivilDate::MAX);
        assert_eq!(
            CivilDate::in_china_at(i64::MIN),
            CivilDate::new(1, 1, 1).unwrap()
        );
        assert_eq!(CivilDate::MAX, CivilDate::new(9999, 12, 31).unwrap());
    }

    #[test]
    fn today_is_plausible() {
        let today = CivilDate::today_in_china();
        assert!(today >= CivilDate::new(2024, 1, 1).unwrap());
        assert!(today <= CivilDate::new(2200, 1, 1).unwrap());
    }
}
