//! Resident identity card numbers (GB 11643-1999): validation, the derived
//! birth date and sex, and the masked form that is safe to log.
//!
//! Error messages and `Debug` output never contain the whole number.

use std::fmt;
use std::str::FromStr;

use super::date::{CivilDate, DateError};
use super::division::is_valid_province;

/// ISO 7064 MOD 11-2 weights for the first 17 digits (2^(18-i) mod 11).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check characters indexed by the weighted sum mod 11.
const CHECK_CHARS: [u8; 11] = *b"10X98765432";
/// Earliest accepted birth year; earlier dates are data-entry errors in practice.
const MIN_BIRTH_YEAR: i32 = 1900;

/// Why a string is not a valid resident ID number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    /// The number is not exactly 18 characters long.
    #[error("resident ID number must be 18 characters, found {found}")]
    Length {
        /// The number of characters received.
        found: usize,
    },
    /// A character is not allowed at its position.
    #[error(
        "resident ID number character at position {position} must be {expected}, found {found:?}"
    )]
    Charset {
        /// 1-based position of the offending character.
        position: usize,
        /// The offending character.
        found: char,
        /// What the position accepts.
        expected: &'static str,
    },
    /// The region prefix does not start with a province-level code.
    #[error(
        "region code (positions 1-6) must start with a valid province-level code (GB/T 2260), found {found}"
    )]
    Region {
        /// The first two digits received.
        found: String,
    },
    /// Positions 7-14 are not a calendar date.
    // The date itself is deliberately not echoed: with the region it narrows
    // down a person, and messages end up in logs.
    #[error(
        "birth date (positions 7-14) must be a valid calendar date YYYYMMDD: {component} is out of range"
    )]
    BirthDateInvalid {
        /// Which part of the date is wrong: "year", "month" or "day".
        component: &'static str,
    },
    /// The birth date is before 1900.
    #[error("birth date (positions 7-14) must not be before 1900-01-01")]
    BirthDateTooEarly,
    /// The birth date is after today in China.
    #[error("birth date (positions 7-14) must not be after today (UTC+8)")]
    BirthDateInFuture,
    /// The check character does not match the first 17 digits.
    #[error("check character is {found}, expected {expected} (ISO 7064 MOD 11-2)")]
    CheckCharacter {
        /// The check character received (normalized to uppercase).
        found: char,
        /// The check character the first 17 digits require.
        expected: char,
    },
}

impl ResidentIdError {
    /// A short, stable machine name for the violated rule.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Length { .. } => "length",
            Self::Charset { .. } => "charset",
            Self::Region { .. } => "region",
            Self::BirthDateInvalid { .. } | Self::BirthDateTooEarly | Self::BirthDateInFuture => {
                "birth_date"
            }
            Self::CheckCharacter { .. } => "check_character",
        }
    }
}

/// Sex encoded in the 17th digit of a resident ID number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Odd 17th digit.
    Male,
    /// Even 17th digit.
    Female,
}

/// A validated 18-character resident ID number, with an uppercase check character.
///
/// `Display` prints the full number; `Debug` prints only the masked form.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResidentId {
    // Field order matters: ordering is by the number; the birth date is derived from it.
    id: String,
    birth_date: CivilDate,
}

impl ResidentId {
    /// Parses a resident ID number, checking birth dates against today in China.
    pub fn parse(s: &str) -> Result<ResidentId, ResidentIdError> {
        Self::parse_as_of(s, CivilDate::today_in_china())
    }

    /// Parses a resident ID number, rejecting birth dates after `today`.
    pub fn parse_as_of(s: &str, today: CivilDate) -> Result<ResidentId, ResidentIdError> {
        let found = s.chars().count();
        if found != 18 {
            return Err(ResidentIdError::Length { found });
        }
        for (i, c) in s.chars().enumerate() {
            let ok = c.is_ascii_digit() || (i == 17 && matches!(c, 'X' | 'x'));
            if !ok {
                return Err(ResidentIdError::Charset {
                    position: i + 1,
                    found: c,
                    expected: if i == 17 {
                        "an ASCII digit or X"
                    } else {
                        "an ASCII digit"
                    },
                });
            }
        }
        // All characters are ASCII from here on, so byte slicing is safe.
        let id = s.to_ascii_uppercase();
        if !is_valid_province(&id[..2]) {
            return Err(ResidentIdError::Region {
                found: id[..2].to_owned(),
            });
        }
        let birth_date = birth_date_of(&id)?;
        if birth_date.year() < MIN_BIRTH_YEAR {
            return Err(ResidentIdError::BirthDateTooEarly);
        }
        if birth_date > today {
            return Err(ResidentIdError::BirthDateInFuture);
        }
        let expected = mod11_2(&id.as_bytes()[..17]);
        let found = char::from(id.as_bytes()[17]);
        if found != expected {
            return Err(ResidentIdError::CheckCharacter { found, expected });
        }
        Ok(ResidentId { id, birth_date })
    }

    /// The full 18-character number (check character uppercase).
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The birth date encoded in positions 7-14.
    pub fn birth_date(&self) -> CivilDate {
        self.birth_date
    }

    /// The sex encoded in the parity of the 17th digit.
    pub fn sex(&self) -> Sex {
        if (self.id.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The 6-digit region code the number was issued under (first 6 digits).
    pub fn region(&self) -> &str {
        &self.id[..6]
    }

    /// The first 6 characters, 8 asterisks, then the last 4: safe for logs and masked answers.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.id[..6], &self.id[14..])
    }

    /// The check character for 17 leading digits; same as the module-level [`check_character`].
    ///
    /// # Panics
    ///
    /// Panics if `first17` is not exactly 17 ASCII digits.
    pub fn check_character(first17: &str) -> char {
        check_character(first17)
    }

    /// The valid number of 17 leading digits and their check character (tests, fixtures).
    ///
    /// # Panics
    ///
    /// Panics if `first17` is not 17 ASCII digits of a valid number.
    pub fn completing(first17: &str) -> ResidentId {
        let id = format!("{first17}{}", check_character(first17));
        ResidentId::parse(&id).expect("17 digits of a valid number and their check character")
    }
}

impl FromStr for ResidentId {
    type Err = ResidentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for ResidentId {
    // Masked so that a stray `{:?}` in a log line never leaks the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResidentId").field(&self.masked()).finish()
    }
}

/// The ISO 7064 MOD 11-2 check character ('0'-'9' or 'X') for 17 leading digits.
///
/// Meant for building valid numbers in tests and fixtures.
///
/// # Panics
///
/// Panics if `first17` is not exactly 17 ASCII digits.
pub fn check_character(first17: &str) -> char {
    assert!(
        first17.len() == 17 && first17.bytes().all(|b| b.is_ascii_digit()),
        "check_character needs exactly 17 ASCII digits"
    );
    mod11_2(first17.as_bytes())
}

/// Callers guarantee `digits` holds 17 ASCII digits.
fn mod11_2(digits: &[u8]) -> char {
    let sum: u32 = digits
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    char::from(CHECK_CHARS[(sum % 11) as usize])
}

/// Callers guarantee `id` is ASCII digits in positions 7-14.
fn birth_date_of(id: &str) -> Result<CivilDate, ResidentIdError> {
    let number = |range: std::ops::Range<usize>| -> u32 {
        id.as_bytes()[range]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let year = i32::try_from(number(6..10)).unwrap_or(0);
    CivilDate::new(year, number(10..12), number(12..14)).map_err(|e: DateError| {
        ResidentIdError::BirthDateInvalid {
            component: e.rule(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB_EXAMPLE: &str = "11010519491231002X";

    fn today() -> CivilDate {
        CivilDate::new(2025, 6, 15).unwrap()
    }

    /// Builds a valid number from 17 leading digits using our own check character.
    fn with_check(first17: &str) -> String {
        format!("{first17}{}", check_character(first17))
    }

    #[test]
    fn published_examples_are_valid() {
        // The worked example in GB 11643-1999 itself.
        let id = ResidentId::parse(GB_EXAMPLE).unwrap();
        assert_eq!(id.as_str(), GB_EXAMPLE);
        assert_eq!(id.birth_date(), CivilDate::new(1949, 12, 31).unwrap());
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.region(), "110105");
        assert_eq!(check_character("11010519491231002"), 'X');
        // The other example commonly cited alongside it: its check character is
        // right, but the 1880 birth date falls before the accepted range.
        assert_eq!(check_character("44052418800101001"), '4');
        assert_eq!(
            ResidentId::parse("440524188001010014").unwrap_err(),
            ResidentIdError::BirthDateTooEarly
        );
    }

    #[test]
    fn self_built_vectors_are_valid() {
        for first17 in [
            "11010119900307447",
            "35010219851010123",
            "65010220000229001",
            "82000019000101001",
        ] {
            let s = with_check(first17);
            let id = ResidentId::parse_as_of(&s, today()).unwrap();
            assert_eq!(id.to_string(), s);
            assert_eq!(
                ResidentId::check_character(first17),
                check_character(first17)
            );
        }
        // Every check character, including 'X' and '0', round-trips.
        let mut seen: Vec<char> = (0..200)
            .map(|n| check_character(&format!("110105199001{n:05}")))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 11);
    }

    #[test]
    fn birth_date_and_sex() {
        let id = ResidentId::parse_as_of(&with_check("11010120000229003"), today()).unwrap();
        assert_eq!(id.birth_date().to_string(), "2000-02-29");
        assert_eq!(id.sex(), Sex::Male);
        let id = ResidentId::parse_as_of(&with_check("11010120000229004"), today()).unwrap();
        assert_eq!(id.sex(), Sex::Female);
    }

    #[test]
    fn today_is_accepted_as_birth_date() {
        let s = with_check("11010120250615001");
        assert!(ResidentId::parse_as_of(&s, today()).is_ok());
    }

    #[test]
    fn lowercase_x_is_normalized() {
        let id = ResidentId::parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), GB_EXAMPLE);
        assert_eq!(id, ResidentId::parse(GB_EXAMPLE).unwrap());
        assert_eq!(id.to_string(), GB_EXAMPLE);
        assert_eq!(GB_EXAMPLE.parse::<ResidentId>().unwrap(), id);
    }

    #[test]
    fn rejects_wrong_length() {
        for (s, found) in [
            ("", 0),
            ("11010519491231002", 17),
            ("11010519491231002X0", 19),
            ("110105491231002", 15),
        ] {
            let err = ResidentId::parse(s).unwrap_err();
            assert_eq!(err, ResidentIdError::Length { found });
            assert_eq!(err.rule(), "length");
        }
    }

    #[test]
    fn rejects_bad_charset() {
        let err = ResidentId::parse("1101051949123100XX").unwrap_err();
        assert_eq!(err.rule(), "charset");
        assert_eq!(
            err.to_string(),
            "resident ID number character at position 17 must be an ASCII digit, found 'X'"
        );
        let err = ResidentId::parse("11010519491231002Y").unwrap_err();
        assert_eq!(
            err.to_string(),
            "resident ID number character at position 18 must be an ASCII digit or X, found 'Y'"
        );
        let err = ResidentId::parse(" 1010519491231002X").unwrap_err();
        assert_eq!(err.rule(), "charset");
    }

    #[test]
    fn rejects_multibyte_input_by_character_position() {
        // 18 characters but more than 18 bytes: a charset problem at the right position.
        let err = ResidentId::parse("110105１9491231002X").unwrap_err();
        assert_eq!(
            err,
            ResidentIdError::Charset {
                position: 7,
                found: '１',
                expected: "an ASCII digit"
            }
        );
        let err = ResidentId::parse("11010519491231002乂").unwrap_err();
        assert_eq!(err.rule(), "charset");
    }

    #[test]
    fn rejects_bad_region() {
        for s in [
            "00010519491231002X",
            "99010519491231002X",
            "83000019900101001X",
        ] {
            let err = ResidentId::parse(s).unwrap_err();
            assert_eq!(err.rule(), "region");
            assert_eq!(
                err,
                ResidentIdError::Region {
                    found: s[..2].to_owned()
                }
            );
        }
    }

    #[test]
    fn rejects_impossible_birth_dates() {
        for (first17, component) in [
            ("11010119230229001", "day"),
            ("11010119000229001", "day"),
            ("11010119901301001", "month"),
            ("11010119900001001", "month"),
            ("11010119900431001", "day"),
            ("11010119900100001", "day"),
        ] {
            let err = ResidentId::parse_as_of(&with_check(first17), today()).unwrap_err();
            assert_eq!(err, ResidentIdError::BirthDateInvalid { component });
            assert_eq!(err.rule(), "birth_date");
        }
        let err = ResidentId::parse_as_of(&with_check("11010100000101001"), today()).unwrap_err();
        assert_eq!(err, ResidentIdError::BirthDateInvalid { component: "year" });
    }

    #[test]
    fn rejects_birth_dates_before_1900() {
        let err = ResidentId::parse_as_of(&with_check("11010118991231001"), today()).unwrap_err();
        assert_eq!(err, ResidentIdError::BirthDateTooEarly);
        assert_eq!(err.rule(), "birth_date");
    }

    #[test]
    fn rejects_future_birth_dates() {
        let err = ResidentId::parse_as_of(&with_check("11010120250616001"), today()).unwrap_err();
        assert_eq!(err, ResidentIdError::BirthDateInFuture);
        assert_eq!(err.rule(), "birth_date");
        // Against the real clock.
        let err = ResidentId::parse(&with_check("11010129990101001")).unwrap_err();
        assert_eq!(err, ResidentIdError::BirthDateInFuture);
    }

    #[test]
    fn rejects_wrong_check_character() {
        let err = ResidentId::parse("110105194912310025").unwrap_err();
        assert_eq!(
            err,
            ResidentIdError::CheckCharacter {
                found: '5',
                expected: 'X'
            }
        );
        assert_eq!(err.rule(), "check_character");
        assert_eq!(
            err.to_string(),
            "check character is 5, expected X (ISO 7064 MOD 11-2)"
        );
        let err = ResidentId::parse("440524199001010010").unwrap_err();
        assert_eq!(err.rule(), "check_character");
    }

    #[test]
    fn checks_run_in_documented_order() {
        // With several problems at once, the earliest check in the order wins.
        assert_eq!(
            ResidentId::parse("99010519491331002Y").unwrap_err().rule(),
            "charset"
        );
        assert_eq!(
            ResidentId::parse("990105194913310025").unwrap_err().rule(),
            "region"
        );
        assert_eq!(
            ResidentId::parse("110105194913310025").unwrap_err().rule(),
            "birth_date"
        );
    }

    #[test]
    fn masked_and_debug_never_contain_the_number() {
        let id = ResidentId::parse(GB_EXAMPLE).unwrap();
        assert_eq!(id.masked(), "110105********002X");
        let debug = format!("{id:?}");
        assert_eq!(debug, "ResidentId(\"110105********002X\")");
        assert!(!debug.contains(GB_EXAMPLE));
        assert!(!debug.contains("19491231"));
        let debug = format!("{:?}", vec![id.clone()]);
        assert!(!debug.contains(GB_EXAMPLE));
        let debug = format!("{:?}", Some(&id));
        assert!(!debug.contains(GB_EXAMPLE));
    }

    #[test]
    fn errors_never_contain_the_number() {
        let inputs = [
            "11010519491231002",
            "11010519491231002Y",
            "99010519491231002X",
            "110105194902300020",
            "110105299912310020",
            "110105194912310025",
        ];
        for s in inputs {
            let err = ResidentId::parse(s).unwrap_err();
            for rendered in [err.to_string(), format!("{err:?}")] {
                assert!(!rendered.contains(&s[..17]), "{rendered}");
                assert!(!rendered.contains(&s[6..14]), "{rendered}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "exactly 17 ASCII digits")]
    fn check_character_panics_on_bad_input() {
        let _ = check_character("1101051949123100X");
    }
}
