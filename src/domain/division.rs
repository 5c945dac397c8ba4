//! Administrative division codes (GB/T 2260) and the province-level prefix
//! rule shared by every identifier that embeds one.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid administrative division code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DivisionCodeError {
    /// The code is not exactly 6 characters long.
    #[error("division code must be 6 characters, found {found}")]
    Length {
        /// The number of characters received.
        found: usize,
    },
    /// A character is not an ASCII digit.
    #[error(
        "division code character at position {position} must be an ASCII digit, found {found:?}"
    )]
    Charset {
        /// 1-based position of the offending character.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// The first two digits are not a province-level code.
    #[error("division code must start with a valid province-level code (GB/T 2260), found {found}")]
    Region {
        /// The first two digits received.
        found: String,
    },
}

impl DivisionCodeError {
    /// A short, stable machine name for the violated rule.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Length { .. } => "length",
            Self::Charset { .. } => "charset",
            Self::Region { .. } => "region",
        }
    }
}

/// A 6-digit administrative division code whose province-level prefix is valid.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DivisionCode(String);

impl DivisionCode {
    /// Parses a division code: exactly 6 ASCII digits with a valid province prefix.
    pub fn parse(s: &str) -> Result<DivisionCode, DivisionCodeError> {
        let found = s.chars().count();
        if found != 6 {
            return Err(DivisionCodeError::Length { found });
        }
        if let Some((i, found)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(DivisionCodeError::Charset {
                position: i + 1,
                found,
            });
        }
        // All characters are ASCII from here on, so byte slicing is safe.
        if !is_valid_province(&s[..2]) {
            return Err(DivisionCodeError::Region {
                found: s[..2].to_owned(),
            });
        }
        Ok(DivisionCode(s.to_owned()))
    }

    /// The 6-digit code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The province-level prefix (first 2 digits).
    pub fn province(&self) -> &str {
        &self.0[..2]
    }
}

impl FromStr for DivisionCode {
    type Err = DivisionCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DivisionCode").field(&self.0).finish()
    }
}

/// Whether `two_digits` is exactly a GB/T 2260 province-level code (11-15, 21-23,
/// 31-37, 41-46, 50-54, 61-65, 71, 81, 82).
pub fn is_valid_province(two_digits: &str) -> bool {
    let &[tens, units] = two_digits.as_bytes() else {
        return false;
    };
    if !tens.is_ascii_digit() || !units.is_ascii_digit() {
        return false;
    }
    let code = (tens - b'0') * 10 + (units - b'0');
    matches!(
        code,
        11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_codes() {
        for s in [
            "110000", "110105", "350100", "440305", "650102", "710000", "820000",
        ] {
            let code = DivisionCode::parse(s).unwrap();
            assert_eq!(code.as_str(), s);
            assert_eq!(code.to_string(), s);
            assert_eq!(code.province(), &s[..2]);
            assert_eq!(s.parse::<DivisionCode>().unwrap(), code);
        }
        assert_eq!(
            format!("{:?}", DivisionCode::parse("110105").unwrap()),
            "DivisionCode(\"110105\")"
        );
    }

    #[test]
    fn province_table() {
        let valid: Vec<u8> = (0..=99)
            .filter(|n| is_valid_province(&format!("{n:02}")))
            .collect();
        assert_eq!(
            valid,
            [
                11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
                50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82
            ]
        );
        for s in ["", "1", "110", "1a", "+1", "１１"] {
            assert!(!is_valid_province(s), "{s:?}");
        }
    }

    #[test]
    fn rejects_wrong_length() {
        for (s, found) in [("", 0), ("11010", 5), ("1101051", 7)] {
            let err = DivisionCode::parse(s).unwrap_err();
            assert_eq!(err, DivisionCodeError::Length { found });
            assert_eq!(err.rule(), "length");
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Six multibyte characters are a charset problem, not a length problem.
        let err = DivisionCode::parse("北京市东城区").unwrap_err();
        assert_eq!(
            err,
            DivisionCodeError::Charset {
                position: 1,
                found: '北'
            }
        );
    }

    #[test]
    fn rejects_bad_charset() {
        let err = DivisionCode::parse("11010a").unwrap_err();
        assert_eq!(err.rule(), "charset");
        assert_eq!(
            err.to_string(),
            "division code character at position 6 must be an ASCII digit, found 'a'"
        );
        let err = DivisionCode::parse("11０105").unwrap_err();
        assert_eq!(
            err,
            DivisionCodeError::Charset {
                position: 3,
                found: '０'
            }
        );
    }

    #[test]
    fn rejects_bad_province() {
        for s in ["000000", "100000", "160000", "990101", "830000"] {
            let err = DivisionCode::parse(s).unwrap_err();
            assert_eq!(err.rule(), "region");
            assert_eq!(
                err.to_string(),
                format!(
                    "division code must start with a valid province-level code (GB/T 2260), found {}",
                    &s[..2]
                )
            );
        }
    }
}
