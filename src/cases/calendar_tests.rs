use std::path::Path;

use super::*;

fn day(year: i32, month: u32, d: u32) -> CivilDate {
    CivilDate::new(year, month, d).unwrap()
}

fn embedded() -> WorkCalendar {
    WorkCalendar::embedded().unwrap()
}

#[test]
fn the_embedded_calendar_parses_and_covers_2025_and_2026() {
    let calendar = embedded();
    assert!(calendar.covers(2025));
    assert!(calendar.covers(2026));
    assert!(!calendar.covers(2024));
    assert!(!calendar.covers(2027));
    assert_eq!(calendar.years().collect::<Vec<_>>(), vec![2025, 2026]);
    // Weekdays off are the 13 statutory holidays plus one per make-up working day:
    // 2025 has 1+6+1+3+1+6 = 18 and 5 make-up days, 2026 has 2+6+1+3+1+1+5 = 19 and 6.
    for (year, weekday_holidays, workdays) in [(2025, 18, 5), (2026, 19, 6)] {
        let in_year = |set: &BTreeSet<CivilDate>, weekend: bool| {
            set.iter()
                .filter(|d| d.year() == year && is_weekend(**d) == weekend)
                .count()
        };
        assert_eq!(
            in_year(&calendar.holidays, false),
            weekday_holidays,
            "{year}"
        );
        assert_eq!(in_year(&calendar.workdays, true), workdays, "{year}");
    }
}

#[test]
fn weekdays_are_computed_from_the_date() {
    assert_eq!(epoch_day(day(1970, 1, 1)), 0);
    assert_eq!(epoch_day(day(2000, 3, 1)), 11_017);
    assert_eq!(epoch_day(day(1, 1, 1)), -719_162);
    assert_eq!(epoch_day(day(9999, 12, 31)), 2_932_896);
    assert_eq!(WEEKDAYS[weekday(day(1970, 1, 1))], "Thursday");
    assert_eq!(WEEKDAYS[weekday(day(2026, 1, 1))], "Thursday");
    assert_eq!(WEEKDAYS[weekday(day(2025, 1, 26))], "Sunday");
    assert_eq!(WEEKDAYS[weekday(day(2024, 2, 29))], "Thursday");
    assert_eq!(WEEKDAYS[weekday(day(2026, 2, 14))], "Saturday");
    // Consecutive days are consecutive weekdays, across month, year and leap-day ends.
    let mut date = day(2023, 12, 1);
    while date < day(2029, 1, 1) {
        let next = next_day(date).unwrap();
        assert_eq!(epoch_day(next), epoch_day(date) + 1, "{date}");
        assert_eq!(weekday(next), (weekday(date) + 1) % 7, "{date}");
        date = next;
    }
    assert_eq!(next_day(day(2024, 2, 28)), Some(day(2024, 2, 29)));
    assert_eq!(next_day(day(2025, 2, 28)), Some(day(2025, 3, 1)));
    assert_eq!(next_day(day(2025, 12, 31)), Some(day(2026, 1, 1)));
    assert_eq!(next_day(CivilDate::MAX), None);
}

#[test]
fn holidays_on_weekdays_rest_and_make_up_weekend_days_work() {
    let calendar = embedded();
    // Spring Festival 2026: Saturday Feb 14 works, Monday Feb 16 rests.
    assert!(calendar.is_working_day(day(2026, 2, 14)));
    assert!(!calendar.is_working_day(day(2026, 2, 16)));
    assert!(!calendar.is_working_day(day(2026, 2, 23)));
    assert!(calendar.is_working_day(day(2026, 2, 24)));
    assert!(calendar.is_working_day(day(2026, 2, 28)));
    // Plain days: a Friday works, a Saturday and Sunday rest.
    assert!(calendar.is_working_day(day(2026, 3, 6)));
    assert!(!calendar.is_working_day(day(2026, 3, 7)));
    assert!(!calendar.is_working_day(day(2026, 3, 8)));
    // 2025: New Year's Day on a Wednesday rests; Sunday Jan 26 works.
    assert!(!calendar.is_working_day(day(2025, 1, 1)));
    assert!(calendar.is_working_day(day(2025, 1, 26)));
    assert!(!calendar.is_working_day(day(2025, 10, 8)));
    assert!(calendar.is_working_day(day(2025, 10, 11)));
}

#[test]
fn deadlines_skip_weekends_and_holidays() {
    let calendar = embedded();
    // A Friday plus one working day is the Monday.
    assert_eq!(calendar.deadline(day(2026, 3, 6), 1), day(2026, 3, 9));
    // Zero working days: the day the step was opened, even a rest day.
    assert_eq!(calendar.deadline(day(2026, 3, 7), 0), day(2026, 3, 7));
    // Opened on a Saturday: the Monday is the first working day after it.
    assert_eq!(calendar.deadline(day(2026, 3, 7), 1), day(2026, 3, 9));
    // Thursday 2026-04-30 plus 1: May 1-5 are off, so Wednesday May 6.
    assert_eq!(calendar.deadline(day(2026, 4, 30), 1), day(2026, 5, 6));
    // ...and plus 4: May 6, 7, 8 and the make-up Saturday May 9.
    assert_eq!(calendar.deadline(day(2026, 4, 30), 4), day(2026, 5, 9));
}

#[test]
fn a_deadline_across_the_spring_festival() {
    let calendar = embedded();
    // Friday 2026-02-13 plus 3: Sat Feb 14 (make-up) is 1, Feb 15-23 are off,
    // Tue Feb 24 is 2, Wed Feb 25 is 3.
    assert_eq!(calendar.deadline(day(2026, 2, 13), 3), day(2026, 2, 25));
    assert_eq!(calendar.deadline(day(2026, 2, 13), 1), day(2026, 2, 14));
    assert_eq!(calendar.deadline(day(2026, 2, 14), 1), day(2026, 2, 24));
    // 2025: Monday Jan 27 plus 1 skips Jan 28 - Feb 4, so Wednesday Feb 5.
    assert_eq!(calendar.deadline(day(2025, 1, 27), 1), day(2025, 2, 5));
}

#[test]
fn a_deadline_across_new_year_2026_counts_the_make_up_sunday() {
    let calendar = embedded();
    // Wednesday 2025-12-31 plus 1: Jan 1-3 are off, Sunday Jan 4 works.
    assert_eq!(calendar.deadline(day(2025, 12, 31), 1), day(2026, 1, 4));
    assert_eq!(calendar.deadline(day(2025, 12, 31), 2), day(2026, 1, 5));
    assert_eq!(calendar.deadline(day(2025, 12, 29), 3), day(2026, 1, 4));
    assert_eq!(
        calendar.working_days_between(day(2025, 12, 31), day(2026, 1, 5)),
        2
    );
}

#[test]
fn working_days_between_agrees_with_deadline() {
    let calendar = embedded();
    let mut start = day(2024, 12, 1);
    while start <= day(2026, 12, 31) {
        for n in 0..=25 {
            let due = calendar.deadline(start, n);
            assert_eq!(
                calendar.working_days_between(start, due),
                n,
                "{start} + {n}"
            );
            if n > 0 {
                assert!(calendar.is_working_day(due), "{start} + {n} = {due}");
            }
        }
        start = next_day(start).unwrap();
    }
}

#[test]
fn working_days_between_is_zero_unless_to_is_after_from() {
    let calendar = embedded();
    let monday = day(2026, 3, 9);
    assert_eq!(calendar.working_days_between(monday, monday), 0);
    assert_eq!(calendar.working_days_between(monday, day(2026, 3, 2)), 0);
    // Tuesday to Friday of that week, then the whole Spring Festival fortnight.
    assert_eq!(calendar.working_days_between(monday, day(2026, 3, 13)), 4);
    assert_eq!(
        calendar.working_days_between(day(2026, 2, 13), day(2026, 2, 28)),
        6
    );
}

#[test]
fn outside_covered_years_only_weekends_rest() {
    let calendar = embedded();
    // 2024-10-01 (Tuesday) was National Day, but 2024 is not in the file.
    assert!(!calendar.covers(2024));
    assert!(calendar.is_working_day(day(2024, 10, 1)));
    assert!(!calendar.is_working_day(day(2024, 10, 5)));
    // 2027-01-01 is a Friday: unknown, so a working day; Saturday Jan 2 rests.
    assert!(calendar.is_working_day(day(2027, 1, 1)));
    assert!(!calendar.is_working_day(day(2027, 1, 2)));
    assert_eq!(calendar.deadline(day(2026, 12, 31), 1), day(2027, 1, 1));
    // An empty file is a calendar of weekends only.
    let empty = WorkCalendar::parse("# nothing yet\n").unwrap();
    assert!(!empty.covers(2026));
    assert!(empty.is_working_day(day(2026, 1, 1)));
    assert!(!empty.is_working_day(day(2026, 2, 14)));
}

#[test]
fn deadlines_stop_at_the_last_date() {
    let calendar = embedded();
    assert_eq!(calendar.deadline(day(9999, 12, 30), 5), CivilDate::MAX);
    assert_eq!(calendar.deadline(CivilDate::MAX, 1), CivilDate::MAX);
    assert_eq!(
        calendar.working_days_between(day(9999, 12, 30), CivilDate::MAX),
        1
    );
}

/// Parses `text` and returns the error's message, which must name the line and entry.
fn error(text: &str) -> String {
    WorkCalendar::parse(text).unwrap_err().to_string()
}

#[test]
fn bad_toml_names_the_line() {
    assert_eq!(
        error("[[year]]\nyear = 2026\nholiday = []\n"),
        "line 3: unknown field `holiday`, expected one of `year`, `holidays`, `workdays`"
    );
    let message = error("[[year]]\nyear = 2026\nholidays = [2026-01-01]\n");
    assert!(message.starts_with("line 3: invalid type"), "{message}");
}

#[test]
fn a_year_out_of_range_is_named() {
    assert_eq!(
        error("[[year]]\nyear = 0\n"),
        "line 2: year 0 is out of range 1-9999"
    );
}

#[test]
fn a_duplicate_year_names_both_lines() {
    assert_eq!(
        error("[[year]]\nyear = 2026\n\n[[year]]\nyear = 2026\n"),
        "line 5: year 2026 is listed twice (first at line 2)"
    );
}

#[test]
fn a_bad_date_text_is_named() {
    assert_eq!(
        error("[[year]]\nyear = 2026\nholidays = [\n  \"2026-01-01\",\n  \"2026-1-2\",\n]\n"),
        "line 5: year 2026: holidays entry \"2026-1-2\" is not a date: expected YYYY-MM-DD"
    );
    assert_eq!(
        error("[[year]]\nyear = 2026\nworkdays = [\"2026-02-30\"]\n"),
        "line 3: year 2026: workdays entry \"2026-02-30\" is not a date: \
         day 30 is out of range 1-28 for 2026-02"
    );
    assert_eq!(
        error("[[year]]\nyear = 2026\nholidays = [\"2026-13-01\"]\n"),
        "line 3: year 2026: holidays entry \"2026-13-01\" is not a date: \
         month 13 is out of range 1-12"
    );
}

#[test]
fn a_date_outside_its_year_is_named() {
    assert_eq!(
        error("[[year]]\nyear = 2026\nholidays = [\"2025-10-01\"]\n"),
        "line 3: year 2026: holidays entry 2025-10-01 is not in 2026"
    );
}

#[test]
fn a_repeated_entry_is_named() {
    assert_eq!(
        error("[[year]]\nyear = 2026\nholidays = [\"2026-10-01\",\n\"2026-10-01\"]\n"),
        "line 4: year 2026: holidays entry 2026-10-01 is listed twice"
    );
}

#[test]
fn a_date_both_holiday_and_workday_is_named() {
    assert_eq!(
        error("[[year]]\nyear = 2026\nholidays = [\"2026-02-14\"]\nworkdays = [\"2026-02-14\"]\n"),
        "line 4: year 2026: 2026-02-14 is listed both in holidays and in workdays"
    );
}

#[test]
fn a_workday_on_a_weekday_is_named() {
    assert_eq!(
        error("[[year]]\nyear = 2026\nworkdays = [\"2026-02-13\"]\n"),
        "line 3: year 2026: workdays entry 2026-02-13 is a Friday; \
         only a Saturday or Sunday can be a make-up working day"
    );
}

#[test]
fn holidays_on_weekends_are_allowed() {
    let calendar =
        WorkCalendar::parse("[[year]]\nyear = 2026\nholidays = [\"2026-02-15\"]\n").unwrap();
    assert!(calendar.covers(2026));
    assert!(!calendar.is_working_day(day(2026, 2, 15)));
    assert!(calendar.is_working_day(day(2026, 2, 16)));
}

#[test]
fn loading_names_the_file() {
    let err = WorkCalendar::load(Path::new("/nonexistent/calendar.toml")).unwrap_err();
    assert!(matches!(err, CalendarError::Read { .. }));
    assert_eq!(
        err.to_string(),
        "cannot read calendar file /nonexistent/calendar.toml: \
         No such file or directory (os error 2)"
    );

    let dir = std::env::temp_dir().join(format!("govlink-calendar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[year]]\nyear = 2026\nworkdays = [\"2026-02-13\"]\n").unwrap();
    let err = WorkCalendar::load(&bad).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "calendar file {}: line 3: year 2026:",
            bad.display()
        )),
        "{err}"
    );
    let good = dir.join("good.toml");
    std::fs::write(&good, EMBEDDED).unwrap();
    assert_eq!(WorkCalendar::load(&good).unwrap(), embedded());
    std::fs::remove_dir_all(&dir).unwrap();
}
