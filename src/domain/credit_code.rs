//! Unified social credit codes (GB 32100-2015) of organizations: validation
//! of the structure, the embedded division code and the check character.

use std::fmt;
use std::str::FromStr;

use super::division::is_valid_province;

/// The code alphabet; a character's value is its index. I, O, S, V and Z are
/// excluded to avoid confusion with 1, 0, 5, U and 2.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Check weights for positions 1-17 (3^(i-1) mod 31).
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
/// Registration authority codes allowed in position 1.
const REGISTRATION_AUTHORITIES: &[u8] = b"123456789ANY";
/// Positions 3-8 of organizations registered by central (national-level)
/// authorities, e.g. State Council bodies. Not a GB/T 2260 code, but a
/// government gateway must accept it.
const NATIONAL_DIVISION: &str = "100000";

/// Why a string is not a valid unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    /// The code is not exactly 18 characters long.
    #[error("unified social credit code must be 18 characters, found {found}")]
    Length {
        /// The number of characters received.
        found: usize,
    },
    /// A character is not allowed at its position.
    #[error(
        "unified social credit code character at position {position} must be {expected}, found {found:?}"
    )]
    Charset {
        /// 1-based position of the offending character.
        position: usize,
        /// The offending character (uppercased).
        found: char,
        /// What the position accepts.
        expected: &'static str,
    },
    /// Position 1 is not a registration authority code.
    #[error(
        "registration authority code (position 1) must be one of 1-9, A, N, Y, found {found:?}"
    )]
    RegistrationAuthority {
        /// The character received.
        found: char,
    },
    /// Position 2 is not an organization type code.
    #[error("organization type code (position 2) must be 1-9 or a letter, found {found:?}")]
    OrgType {
        /// The character received.
        found: char,
    },
    /// Positions 3-8 are not a division code with a valid province prefix.
    #[error(
        "division code (positions 3-8) must start with a valid province-level code (GB/T 2260) or be 100000, found {found}"
    )]
    Region {
        /// Positions 3-4 as received.
        found: String,
    },
    /// The check character does not match the first 17 characters.
    #[error("check character is {found}, expected {expected} (GB 32100 MOD 31)")]
    CheckCharacter {
        /// The check character received (uppercased).
        found: char,
        /// The check character the first 17 characters require.
        expected: char,
    },
}

impl CreditCodeError {
    /// A short, stable machine name for the violated rule.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Length { .. } => "length",
            Self::Charset { .. } => "charset",
            Self::RegistrationAuthority { .. } => "registration_authority",
            Self::OrgType { .. } => "org_type",
            Self::Region { .. } => "region",
            Self::CheckCharacter { .. } => "check_character",
        }
    }
}

/// A validated 18-character unified social credit code, in uppercase.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CreditCode(String);

impl CreditCode {
    /// Parses a credit code, accepting lowercase and normalizing to uppercase.
    pub fn parse(s: &str) -> Result<CreditCode, CreditCodeError> {
        let found = s.chars().count();
        if found != 18 {
            return Err(CreditCodeError::Length { found });
        }
        for (i, c) in s.chars().enumerate() {
            let c = c.to_ascii_uppercase();
            let (ok, expected) = if (2..8).contains(&i) {
                (c.is_ascii_digit(), "an ASCII digit")
            } else {
                (
                    value_of(c).is_some(),
                    "a digit or a letter other than I, O, S, V, Z",
                )
            };
            if !ok {
                return Err(CreditCodeError::Charset {
                    position: i + 1,
                    found: c,
                    expected,
                });
            }
        }
        // All characters are ASCII from here on, so byte slicing is safe.
        let code = s.to_ascii_uppercase();
        let bytes = code.as_bytes();
        if !REGISTRATION_AUTHORITIES.contains(&bytes[0]) {
            return Err(CreditCodeError::RegistrationAuthority {
                found: char::from(bytes[0]),
            });
        }
        if bytes[1] == b'0' {
            return Err(CreditCodeError::OrgType { found: '0' });
        }
        let division = &code[2..8];
        if division != NATIONAL_DIVISION && !is_valid_province(&division[..2]) {
            return Err(CreditCodeError::Region {
                found: division[..2].to_owned(),
            });
        }
        // Deliberately lenient: positions 9-17 are not checked against the
        // GB 11714 organization-code check digit, because codes converted from
        // older registration numbers do not always satisfy it.
        let expected = mod31(&bytes[..17]);
        let found = char::from(bytes[17]);
        if found != expected {
            return Err(CreditCodeError::CheckCharacter { found, expected });
        }
        Ok(CreditCode(code))
    }

    /// The 18-character code in uppercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The check character for 17 leading characters; same as the module-level [`check_character`].
    pub fn check_character(first17: &str) -> Option<char> {
        check_character(first17)
    }
}

impl FromStr for CreditCode {
    type Err = CreditCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CreditCode").field(&self.0).finish()
    }
}

/// The GB 32100 check character for 17 leading characters, or `None` if they
/// are not 17 characters of the code alphabet (lowercase is accepted).
///
/// Only the alphabet is checked, not the positional rules of [`CreditCode::parse`].
pub fn check_character(first17: &str) -> Option<char> {
    let upper = first17.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    if bytes.len() != 17 || !bytes.iter().all(|&b| value_of(char::from(b)).is_some()) {
        return None;
    }
    Some(mod31(bytes))
}

fn value_of(c: char) -> Option<u32> {
    let b = u8::try_from(c).ok()?;
    ALPHABET
        .iter()
        .position(|&a| a == b)
        .and_then(|i| u32::try_from(i).ok())
}

/// Callers guarantee `chars` holds 17 uppercase alphabet characters.
fn mod31(chars: &[u8]) -> char {
    let sum: u32 = chars
        .iter()
        .zip(WEIGHTS)
        .map(|(&c, w)| value_of(char::from(c)).unwrap_or(0) * w)
        .sum();
    // 31 - 0 would be 31, which has no character; the standard maps it to 0.
    let check = (31 - sum % 31) % 31;
    char::from(ALPHABET[check as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", check_character(first17).unwrap())
    }

    #[test]
    fn published_examples_are_valid() {
        for s in [
            // The example cited in most descriptions of GB 32100.
            "91350100M000100Y43",
            // A central government body: positions 3-8 are 100000.
            "11100000000013127D",
            // Large companies whose codes appear on their public filings.
            "91440300708461136T",
            "914403001922038216",
        ] {
            let code = CreditCode::parse(s).unwrap();
            assert_eq!(code.as_str(), s);
            assert_eq!(code.to_string(), s);
            assert_eq!(check_character(&s[..17]), s.chars().nth(17));
        }
    }

    #[test]
    fn self_built_vectors_are_valid() {
        for first17 in [
            "91110000MA01ABCDE",
            "52310000MJ1234567",
            "Y1650102MA7XYW123",
            "A1820000123456789",
            "N2710000ABCDEFGHJ",
        ] {
            let s = with_check(first17);
            assert!(CreditCode::parse(&s).is_ok(), "{s}");
            assert_eq!(
                CreditCode::check_character(first17),
                check_character(first17)
            );
        }
    }

    #[test]
    fn check_character_covers_zero_and_rejects_bad_input() {
        // Find a prefix whose sum is divisible by 31, where the check character is 0.
        let zero = (0..31u32)
            .map(|n| format!("9111000012345678{}", char::from(ALPHABET[n as usize])))
            .find(|p| check_character(p) == Some('0'))
            .unwrap();
        assert!(CreditCode::parse(&format!("{zero}0")).is_ok());
        assert_eq!(check_character("91350100M000100Y"), None);
        assert_eq!(check_character("91350100M000100YI"), None);
        assert_eq!(check_character("91350100M000100Y4中"), None);
        assert_eq!(check_character("91350100m000100y4"), Some('3'));
    }

    #[test]
    fn lowercase_is_normalized() {
        let code = CreditCode::parse("91350100m000100y43").unwrap();
        assert_eq!(code.as_str(), "91350100M000100Y43");
        assert_eq!(code, "91350100M000100Y43".parse().unwrap());
        assert_eq!(format!("{code:?}"), "CreditCode(\"91350100M000100Y43\")");
    }

    #[test]
    fn rejects_wrong_length() {
        for (s, found) in [
            ("", 0),
            ("91350100M000100Y4", 17),
            ("91350100M000100Y430", 19),
        ] {
            let err = CreditCode::parse(s).unwrap_err();
            assert_eq!(err, CreditCodeError::Length { found });
            assert_eq!(err.rule(), "length");
        }
    }

    #[test]
    fn rejects_bad_charset() {
        for (s, position, found) in [
            ("91350100M000100I43", 16, 'I'),
            ("91350100MO00100Y43", 10, 'O'),
            ("91350100M000100Y4S", 18, 'S'),
            ("91350100M00V100Y43", 12, 'V'),
            ("Z1350100M000100Y43", 1, 'Z'),
            ("91350100M000100Y4-", 18, '-'),
        ] {
            let err = CreditCode::parse(s).unwrap_err();
            assert_eq!(
                err,
                CreditCodeError::Charset {
                    position,
                    found,
                    expected: "a digit or a letter other than I, O, S, V, Z"
                }
            );
            assert_eq!(err.rule(), "charset");
        }
        let err = CreditCode::parse("9135A100M000100Y43").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unified social credit code character at position 5 must be an ASCII digit, found 'A'"
        );
    }

    #[test]
    fn rejects_multibyte_input_by_character_position() {
        let err = CreditCode::parse("91350100M000100Y4３").unwrap_err();
        assert_eq!(err.rule(), "charset");
        assert!(matches!(
            err,
            CreditCodeError::Charset {
                position: 18,
                found: '３',
                ..
            }
        ));
    }

    #[test]
    fn rejects_bad_registration_authority() {
        let s = with_check("B1350100M000100Y4");
        let err = CreditCode::parse(&s).unwrap_err();
        assert_eq!(err, CreditCodeError::RegistrationAuthority { found: 'B' });
        assert_eq!(err.rule(), "registration_authority");
        let s = with_check("01350100M000100Y4");
        assert_eq!(
            CreditCode::parse(&s).unwrap_err().rule(),
            "registration_authority"
        );
    }

    #[test]
    fn rejects_bad_org_type() {
        let s = with_check("90350100M000100Y4");
        let err = CreditCode::parse(&s).unwrap_err();
        assert_eq!(err, CreditCodeError::OrgType { found: '0' });
        assert_eq!(err.rule(), "org_type");
    }

    #[test]
    fn rejects_bad_region() {
        for first17 in [
            "91990100M000100Y4",
            "91000000M000100Y4",
            "91100100M000100Y4",
        ] {
            let err = CreditCode::parse(&with_check(first17)).unwrap_err();
            assert_eq!(
                err,
                CreditCodeError::Region {
                    found: first17[2..4].to_owned()
                }
            );
            assert_eq!(err.rule(), "region");
        }
    }

    #[test]
    fn rejects_wrong_check_character() {
        let err = CreditCode::parse("91350100M000100Y44").unwrap_err();
        assert_eq!(
            err,
            CreditCodeError::CheckCharacter {
                found: '4',
                expected: '3'
            }
        );
        assert_eq!(err.rule(), "check_character");
        assert_eq!(
            err.to_string(),
            "check character is 4, expected 3 (GB 32100 MOD 31)"
        );
    }
}
