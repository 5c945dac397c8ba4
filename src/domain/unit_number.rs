//! Real-estate unit numbers (不动产单元号): the 28-character structure of
//! division code, cadastral zone, parcel and fixture segments.
//!
//! Layout (1-based positions): 1-6 division code, 7-12 cadastral zone and
//! subzone, 13-14 parcel feature code, 15-19 parcel number, 20 fixture
//! feature code, 21-28 fixture unit number.

use std::fmt;
use std::str::FromStr;

use super::division::is_valid_province;

/// Allowed first characters of the parcel feature code: ownership.
const PARCEL_OWNERSHIP: &[u8] = b"GJZ";
/// Allowed second characters of the parcel feature code: right type.
const PARCEL_RIGHT_TYPE: &[u8] = b"ABSXCDEFHGWY";
/// Allowed fixture feature codes.
const FIXTURE_FEATURE: &[u8] = b"FLQW";
/// The fixture feature code meaning "no fixture".
const NO_FIXTURE: u8 = b'W';
/// The only fixture unit number allowed without a fixture.
const NO_FIXTURE_UNIT: &str = "00000000";

/// A segment of a real-estate unit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitSegment {
    /// Positions 1-6.
    DivisionCode,
    /// Positions 7-12 (zone 7-9, subzone 10-12).
    CadastralZone,
    /// Positions 13-14.
    ParcelFeatureCode,
    /// Positions 15-19.
    ParcelNumber,
    /// Position 20.
    FixtureFeatureCode,
    /// Positions 21-28.
    FixtureUnitNumber,
}

impl UnitSegment {
    /// The segment containing a 0-based position below 28.
    fn at(index: usize) -> UnitSegment {
        match index {
            0..6 => Self::DivisionCode,
            6..12 => Self::CadastralZone,
            12..14 => Self::ParcelFeatureCode,
            14..19 => Self::ParcelNumber,
            19 => Self::FixtureFeatureCode,
            _ => Self::FixtureUnitNumber,
        }
    }
}

impl fmt::Display for UnitSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DivisionCode => "division code",
            Self::CadastralZone => "cadastral zone",
            Self::ParcelFeatureCode => "parcel feature code",
            Self::ParcelNumber => "parcel number",
            Self::FixtureFeatureCode => "fixture feature code",
            Self::FixtureUnitNumber => "fixture unit number",
        })
    }
}

/// Why a string is not a valid real-estate unit number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitNumberError {
    /// The number is not exactly 28 characters long.
    #[error("real-estate unit number must be 28 characters, found {found}")]
    Length {
        /// The number of characters received.
        found: usize,
    },
    /// A character in a numeric segment is not an ASCII digit.
    #[error("{segment} character at position {position} must be an ASCII digit, found {found:?}")]
    Charset {
        /// The segment containing the character.
        segment: UnitSegment,
        /// 1-based position of the offending character.
        position: usize,
        /// The offending character (uppercased).
        found: char,
    },
    /// The division code does not start with a province-level code.
    #[error(
        "division code (positions 1-6) must start with a valid province-level code (GB/T 2260), found {found}"
    )]
    Region {
        /// The first two digits received.
        found: String,
    },
    /// A parcel feature code character is not in its code list.
    #[error(
        "parcel feature code character at position {position} must be one of {expected}, found {found:?}"
    )]
    ParcelFeatureCode {
        /// 1-based position of the offending character (13 or 14).
        position: usize,
        /// The offending character (uppercased).
        found: char,
        /// The allowed characters.
        expected: &'static str,
    },
    /// The fixture feature code is not F, L, Q or W.
    #[error("fixture feature code at position 20 must be one of F, L, Q, W, found {found:?}")]
    FixtureFeatureCode {
        /// The offending character (uppercased).
        found: char,
    },
    /// A unit without a fixture has a non-zero fixture unit number.
    #[error(
        "fixture unit number (positions 21-28) must be 00000000 when fixture feature code is W"
    )]
    FixtureUnitNumber,
}

impl UnitNumberError {
    /// A short, stable machine name for the violated rule.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Length { .. } => "length",
            Self::Charset { .. } => "charset",
            Self::Region { .. } => "region",
            Self::ParcelFeatureCode { .. } => "parcel_feature_code",
            Self::FixtureFeatureCode { .. } => "fixture_feature_code",
            Self::FixtureUnitNumber => "fixture_unit_number",
        }
    }
}

/// A validated 28-character real-estate unit number, in uppercase.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitNumber(String);

impl UnitNumber {
    /// Parses a unit number, accepting lowercase and normalizing to uppercase.
    pub fn parse(s: &str) -> Result<UnitNumber, UnitNumberError> {
        let found = s.chars().count();
        if found != 28 {
            return Err(UnitNumberError::Length { found });
        }
        for (i, c) in s.chars().enumerate() {
            check_character_at(i, c.to_ascii_uppercase())?;
        }
        // All characters are ASCII from here on, so byte slicing is safe.
        let unit = s.to_ascii_uppercase();
        if !is_valid_province(&unit[..2]) {
            return Err(UnitNumberError::Region {
                found: unit[..2].to_owned(),
            });
        }
        if unit.as_bytes()[19] == NO_FIXTURE && &unit[20..] != NO_FIXTURE_UNIT {
            return Err(UnitNumberError::FixtureUnitNumber);
        }
        Ok(UnitNumber(unit))
    }

    /// The 28-character number in uppercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6-digit division code (positions 1-6).
    pub fn division(&self) -> &str {
        &self.0[..6]
    }
}

/// Checks one uppercased character against what its 0-based position allows.
fn check_character_at(index: usize, c: char) -> Result<(), UnitNumberError> {
    let position = index + 1;
    let in_list = |list: &[u8]| u8::try_from(c).is_ok_and(|b| list.contains(&b));
    match index {
        12 if !in_list(PARCEL_OWNERSHIP) => Err(UnitNumberError::ParcelFeatureCode {
            position,
            found: c,
            expected: "G, J, Z",
        }),
        13 if !in_list(PARCEL_RIGHT_TYPE) => Err(UnitNumberError::ParcelFeatureCode {
            position,
            found: c,
            expected: "A, B, S, X, C, D, E, F, H, G, W, Y",
        }),
        19 if !in_list(FIXTURE_FEATURE) => Err(UnitNumberError::FixtureFeatureCode { found: c }),
        12 | 13 | 19 => Ok(()),
        _ if !c.is_ascii_digit() => Err(UnitNumberError::Charset {
            segment: UnitSegment::at(index),
            position,
            found: c,
        }),
        _ => Ok(()),
    }
}

impl FromStr for UnitNumber {
    type Err = UnitNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for UnitNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UnitNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnitNumber").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILDING: &str = "110105001001GB00001F00010001";
    const BARE_LAND: &str = "350102003002JC00012W00000000";

    /// Replaces the character at a 1-based position.
    fn with_at(s: &str, position: usize, c: char) -> String {
        s.chars()
            .enumerate()
            .map(|(i, old)| if i + 1 == position { c } else { old })
            .collect()
    }

    #[test]
    fn parses_valid_numbers() {
        for s in [
            BUILDING,
            BARE_LAND,
            "650102123456ZY99999L12345678",
            "820000000000GG00000Q00000000",
        ] {
            let unit = UnitNumber::parse(s).unwrap();
            assert_eq!(unit.as_str(), s);
            assert_eq!(unit.to_string(), s);
            assert_eq!(unit.division(), &s[..6]);
            assert_eq!(s.parse::<UnitNumber>().unwrap(), unit);
        }
        assert_eq!(
            format!("{:?}", UnitNumber::parse(BUILDING).unwrap()),
            format!("UnitNumber(\"{BUILDING}\")")
        );
    }

    #[test]
    fn every_listed_feature_code_is_accepted() {
        for (position, list) in [
            (13, PARCEL_OWNERSHIP),
            (14, PARCEL_RIGHT_TYPE),
            (20, FIXTURE_FEATURE),
        ] {
            for &b in list {
                let s = with_at(BUILDING, position, char::from(b));
                let s = if b == NO_FIXTURE && position == 20 {
                    format!("{}{NO_FIXTURE_UNIT}", &s[..20])
                } else {
                    s
                };
                assert!(UnitNumber::parse(&s).is_ok(), "{s}");
            }
        }
    }

    #[test]
    fn lowercase_is_normalized() {
        let unit = UnitNumber::parse("110105001001gb00001f00010001").unwrap();
        assert_eq!(unit.as_str(), BUILDING);
        assert_eq!(unit, UnitNumber::parse(BUILDING).unwrap());
    }

    #[test]
    fn ordering_follows_the_text() {
        let a = UnitNumber::parse(BUILDING).unwrap();
        let b = UnitNumber::parse(BARE_LAND).unwrap();
        assert!(a < b);
    }

    #[test]
    fn rejects_wrong_length() {
        for (s, found) in [
            ("", 0),
            (&BUILDING[..27], 27),
            (&format!("{BUILDING}0")[..], 29),
        ] {
            let err = UnitNumber::parse(s).unwrap_err();
            assert_eq!(err, UnitNumberError::Length { found });
            assert_eq!(err.rule(), "length");
        }
    }

    #[test]
    fn rejects_non_digits_naming_the_segment() {
        for (position, segment) in [
            (1, UnitSegment::DivisionCode),
            (6, UnitSegment::DivisionCode),
            (7, UnitSegment::CadastralZone),
            (12, UnitSegment::CadastralZone),
            (15, UnitSegment::ParcelNumber),
            (19, UnitSegment::ParcelNumber),
            (21, UnitSegment::FixtureUnitNumber),
            (28, UnitSegment::FixtureUnitNumber),
        ] {
            let err = UnitNumber::parse(&with_at(BUILDING, position, 'A')).unwrap_err();
            assert_eq!(
                err,
                UnitNumberError::Charset {
                    segment,
                    position,
                    found: 'A'
                }
            );
            assert_eq!(err.rule(), "charset");
        }
        let err = UnitNumber::parse(&with_at(BUILDING, 16, 'x')).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parcel number character at position 16 must be an ASCII digit, found 'X'"
        );
    }

    #[test]
    fn rejects_multibyte_input_by_character_position() {
        let err = UnitNumber::parse(&with_at(BUILDING, 9, '九')).unwrap_err();
        assert_eq!(
            err,
            UnitNumberError::Charset {
                segment: UnitSegment::CadastralZone,
                position: 9,
                found: '九'
            }
        );
        let err = UnitNumber::parse(&with_at(BUILDING, 20, 'Ｆ')).unwrap_err();
        assert_eq!(err, UnitNumberError::FixtureFeatureCode { found: 'Ｆ' });
    }

    #[test]
    fn rejects_bad_region() {
        let err = UnitNumber::parse(&with_at(BUILDING, 1, '9')).unwrap_err();
        assert_eq!(
            err,
            UnitNumberError::Region {
                found: "91".to_owned()
            }
        );
        assert_eq!(err.rule(), "region");
        assert_eq!(
            err.to_string(),
            "division code (positions 1-6) must start with a valid province-level code (GB/T 2260), found 91"
        );
    }

    #[test]
    fn rejects_bad_parcel_feature_code() {
        let err = UnitNumber::parse(&with_at(BUILDING, 13, 'A')).unwrap_err();
        assert_eq!(
            err,
            UnitNumberError::ParcelFeatureCode {
                position: 13,
                found: 'A',
                expected: "G, J, Z"
            }
        );
        assert_eq!(err.rule(), "parcel_feature_code");
        let err = UnitNumber::parse(&with_at(BUILDING, 14, 'Z')).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parcel feature code character at position 14 must be one of A, B, S, X, C, D, E, F, H, G, W, Y, found 'Z'"
        );
        let err = UnitNumber::parse(&with_at(BUILDING, 14, '1')).unwrap_err();
        assert_eq!(err.rule(), "parcel_feature_code");
    }

    #[test]
    fn rejects_bad_fixture_feature_code() {
        let err = UnitNumber::parse(&with_at(BUILDING, 20, 'X')).unwrap_err();
        assert_eq!(err, UnitNumberError::FixtureFeatureCode { found: 'X' });
        assert_eq!(err.rule(), "fixture_feature_code");
        assert_eq!(
            err.to_string(),
            "fixture feature code at position 20 must be one of F, L, Q, W, found 'X'"
        );
    }

    #[test]
    fn rejects_fixture_unit_without_fixture() {
        let err = UnitNumber::parse(&with_at(BARE_LAND, 28, '1')).unwrap_err();
        assert_eq!(err, UnitNumberError::FixtureUnitNumber);
        assert_eq!(err.rule(), "fixture_unit_number");
        // A fixture may legitimately have unit number 00000000.
        assert!(UnitNumber::parse("110105001001GB00001F00000000").is_ok());
    }
}
