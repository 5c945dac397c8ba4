//! Working days in China, in which the case engine counts step deadlines.
//!
//! Saturdays and Sundays are rest days and Monday to Friday working days, except that
//! the State Council each year gives public holidays on weekdays and, to make up for
//! them, turns some weekend days into working days (调休). Those exceptions come from a
//! calendar file (TOML; `deploy/calendar.toml` is the default, compiled in):
//!
//! ```toml
//! [[year]]                                   # one table per year, each year once
//! year = 2026
//! holidays = ["2026-01-01", "2026-01-02"]    # days off; weekend days allowed, harmless
//! workdays = ["2026-01-04"]                  # make-up working days: weekend days only
//! ```
//!
//! Every date must be `YYYY-MM-DD` within its table's year, and no date may be both a
//! holiday and a workday. For a year the file does not list, only weekends rest:
//! [`WorkCalendar::covers`] says which years are listed so the engine can warn rather
//! than silently count a holiday as a working day.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::domain::CivilDate;
use crate::toml_lines::Lines;

/// The default calendar: the State Council schedules this release knows about.
const EMBEDDED: &str = include_str!("../../deploy/calendar.toml");

/// Names of the days of the week, Monday first, as [`weekday`] numbers them.
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Why a calendar file could not be read or is wrong; every content error names the
/// line and the year, and the entry where there is one.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The file could not be read.
    // The I/O error is part of the message rather than a `source`, so that one line
    // printed at startup says why.
    #[error("cannot read calendar file {}: {error}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading failed.
        error: std::io::Error,
    },
    /// The file was read but its content is wrong.
    #[error("calendar file {}: {error}", path.display())]
    File {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong with its content.
        error: Box<CalendarError>,
    },
    /// The text is not valid TOML, or a key is unknown, missing or of the wrong type.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// The parser's description.
        message: String,
    },
    /// `year` is outside the years a date can have.
    #[error("line {line}: year {year} is out of range 1-9999")]
    YearOutOfRange {
        /// 1-based line of the `year` key.
        line: usize,
        /// The year written.
        year: i32,
    },
    /// A second table for the same year: which one holds would be a guess.
    #[error("line {line}: year {year} is listed twice (first at line {first_line})")]
    DuplicateYear {
        /// 1-based line of the second `year` key.
        line: usize,
        /// The year.
        year: i32,
        /// 1-based line of the first.
        first_line: usize,
    },
    /// An entry is not a `YYYY-MM-DD` date that exists.
    #[error("line {line}: year {year}: {list} entry {text:?} is not a date: {reason}")]
    BadDate {
        /// 1-based line of the entry.
        line: usize,
        /// The year of the table.
        year: i32,
        /// `holidays` or `workdays`.
        list: &'static str,
        /// The entry as written.
        text: String,
        /// Why it is not a date.
        reason: String,
    },
    /// An entry is a date in another year than its table's, most likely a typo.
    #[error("line {line}: year {year}: {list} entry {date} is not in {year}")]
    OutsideYear {
        /// 1-based line of the entry.
        line: usize,
        /// The year of the table.
        year: i32,
        /// `holidays` or `workdays`.
        list: &'static str,
        /// The date.
        date: CivilDate,
    },
    /// An entry appears twice in its list; a repeat often hides a mistyped neighbour.
    #[error("line {line}: year {year}: {list} entry {date} is listed twice")]
    Repeated {
        /// 1-based line of the second occurrence.
        line: usize,
        /// The year of the table.
        year: i32,
        /// `holidays` or `workdays`.
        list: &'static str,
        /// The date.
        date: CivilDate,
    },
    /// A date is both a holiday and a workday.
    #[error("line {line}: year {year}: {date} is listed both in holidays and in workdays")]
    HolidayAndWorkday {
        /// 1-based line of the `workdays` entry.
        line: usize,
        /// The year of the table.
        year: i32,
        /// The date.
        date: CivilDate,
    },
    /// A workday falls on Monday-Friday, which is a working day already.
    #[error(
        "line {line}: year {year}: workdays entry {date} is a {weekday}; \
         only a Saturday or Sunday can be a make-up working day"
    )]
    WorkdayNotWeekend {
        /// 1-based line of the entry.
        line: usize,
        /// The year of the table.
        year: i32,
        /// The date.
        date: CivilDate,
        /// The day of the week it falls on.
        weekday: &'static str,
    },
}

/// Which days are working days: Monday-Friday except listed holidays, plus listed
/// make-up working days on weekends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCalendar {
    /// The years the file lists; other years have no holidays known.
    years: BTreeSet<i32>,
    /// Days off, of all years (each checked to lie in its table's year).
    holidays: BTreeSet<CivilDate>,
    /// Weekend days that are working days, of all years.
    workdays: BTreeSet<CivilDate>,
}

impl WorkCalendar {
    /// The default calendar compiled in from `deploy/calendar.toml`.
    pub fn embedded() -> Result<WorkCalendar, CalendarError> {
        Self::parse(EMBEDDED)
    }

    /// Reads and validates a calendar file; every error names `path`.
    pub fn load(path: &Path) -> Result<WorkCalendar, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|error| CalendarError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text).map_err(|error| CalendarError::File {
            path: path.to_owned(),
            error: Box::new(error),
        })
    }

    /// Parses and validates a calendar file's text (format in the module docs).
    pub fn parse(text: &str) -> Result<WorkCalendar, CalendarError> {
        let lines = Lines(text);
        let raw: RawCalendar = toml::from_str(text).map_err(|e| CalendarError::Syntax {
            line: e.span().map_or(1, |s| lines.at(s.start)),
            // The message alone: toml's Display repeats the file excerpt on several lines.
            message: e.message().trim_end().to_owned(),
        })?;
        let mut calendar = WorkCalendar {
            years: BTreeSet::new(),
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
        };
        let mut first_lines: BTreeMap<i32, usize> = BTreeMap::new();
        for table in &raw.year {
            let year = *table.year.get_ref();
            let line = lines.of(&table.year);
            if !(1..=9999).contains(&year) {
                return Err(CalendarError::YearOutOfRange { line, year });
            }
            if let Some(&first_line) = first_lines.get(&year) {
                return Err(CalendarError::DuplicateYear {
                    line,
                    year,
                    first_line,
                });
            }
            first_lines.insert(year, line);
            let holidays = dates(&lines, year, "holidays", &table.holidays)?;
            let workdays = dates(&lines, year, "workdays", &table.workdays)?;
            for &(date, line) in &workdays {
                if holidays.iter().any(|&(holiday, _)| holiday == date) {
                    return Err(CalendarError::HolidayAndWorkday { line, year, date });
                }
                if !is_weekend(date) {
                    return Err(CalendarError::WorkdayNotWeekend {
                        line,
                        year,
                        date,
                        weekday: WEEKDAYS[weekday(date)],
                    });
                }
            }
            calendar.years.insert(year);
            calendar.holidays.extend(holidays.iter().map(|&(d, _)| d));
            calendar.workdays.extend(workdays.iter().map(|&(d, _)| d));
        }
        Ok(calendar)
    }

    /// Whether the calendar lists `year`; outside listed years only weekends rest.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The years the calendar lists, in order.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: CivilDate) -> bool {
        // Parsing rejects a date in both sets, so the order of these checks is free.
        if self.workdays.contains(&date) {
            return true;
        }
        !self.holidays.contains(&date) && !is_weekend(date)
    }

    /// The day by which a step opened on `start` is due: the `working_days`-th working
    /// day after `start` (a Friday plus 1 is the next working Monday); `start` itself
    /// for 0, and 9999-12-31 if the count runs past the last representable date.
    pub fn deadline(&self, start: CivilDate, working_days: u32) -> CivilDate {
        let mut date = start;
        let mut left = working_days;
        while left > 0 {
            let Some(next) = next_day(date) else {
                return CivilDate::MAX;
            };
            date = next;
            if self.is_working_day(date) {
                left -= 1;
            }
        }
        date
    }

    /// The number of working days after `from` up to and including `to` (0 if `to` is
    /// not after `from`): how many working days a step opened on `from` took.
    pub fn working_days_between(&self, from: CivilDate, to: CivilDate) -> u32 {
        let mut count: u32 = 0;
        let mut date = from;
        while let Some(next) = next_day(date).filter(|&next| next <= to) {
            date = next;
            if self.is_working_day(date) {
                count = count.saturating_add(1);
            }
        }
        count
    }
}

/// The file as written; `Spanned` keeps where each value is for error messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    /// `[[year]]` tables; none at all is a calendar where only weekends rest.
    #[serde(default)]
    year: Vec<RawYear>,
}

/// One `[[year]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: Spanned<i32>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
    #[serde(default)]
    workdays: Vec<Spanned<String>>,
}

/// Validates one list of a `year` table into dates with the line each is on.
fn dates(
    lines: &Lines<'_>,
    year: i32,
    list: &'static str,
    entries: &[Spanned<String>],
) -> Result<Vec<(CivilDate, usize)>, CalendarError> {
    let mut out: Vec<(CivilDate, usize)> = Vec::with_capacity(entries.len());
    for entry in entries {
        let line = lines.of(entry);
        let text = entry.get_ref();
        let date = parse_date(text).map_err(|reason| CalendarError::BadDate {
            line,
            year,
            list,
            text: text.clone(),
            reason,
        })?;
        if date.year() != year {
            return Err(CalendarError::OutsideYear {
                line,
                year,
                list,
                date,
            });
        }
        if out.iter().any(|&(seen, _)| seen == date) {
            return Err(CalendarError::Repeated {
                line,
                year,
                list,
                date,
            });
        }
        out.push((date, line));
    }
    Ok(out)
}

/// Parses exactly `YYYY-MM-DD`; looser forms are refused so that a file reads one way.
fn parse_date(text: &str) -> Result<CivilDate, String> {
    const SHAPE: &str = "expected YYYY-MM-DD";
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(SHAPE.to_owned());
    }
    // All digits by the check above, so these parses cannot fail; map just in case.
    let number = |range: std::ops::Range<usize>| {
        text.get(range)
            .and_then(|digits| digits.parse::<u32>().ok())
            .ok_or_else(|| SHAPE.to_owned())
    };
    let year = i32::try_from(number(0..4)?).map_err(|_| SHAPE.to_owned())?;
    CivilDate::new(year, number(5..7)?, number(8..10)?).map_err(|e| e.to_string())
}

/// Whether `date` falls on a Saturday or Sunday.
fn is_weekend(date: CivilDate) -> bool {
    weekday(date) >= 5
}

/// The day of the week, 0 for Monday to 6 for Sunday.
fn weekday(date: CivilDate) -> usize {
    // 1970-01-01, epoch day 0, was a Thursday (3).
    let index = (epoch_day(date) + 3).rem_euclid(7);
    // rem_euclid(7) is within 0..7, so the fallback never applies.
    usize::try_from(index).unwrap_or(0)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01. Shifting the year to
/// start in March puts the leap day last, so each 400-year era has a fixed shape.
fn epoch_day(date: CivilDate) -> i64 {
    let month = i64::from(date.month());
    let year = i64::from(date.year()) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let march_month = (month + 9) % 12;
    let day_of_year = (153 * march_month + 2) / 5 + i64::from(date.day()) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The day after `date`, or `None` after 9999-12-31.
fn next_day(date: CivilDate) -> Option<CivilDate> {
    let (year, month, day) = (date.year(), date.month(), date.day());
    CivilDate::new(year, month, day + 1)
        .or_else(|_| CivilDate::new(year, month + 1, 1))
        .or_else(|_| CivilDate::new(year + 1, 1, 1))
        .ok()
}

#[cfg(test)]
#[path = "calendar_tests.rs"]
mod tests;
