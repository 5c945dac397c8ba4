//! The purpose a lookup names and a grant is for, e.g. `property-transfer`.

use std::fmt;

use crate::identity::{SlugError, check_slug};

/// Why data is looked at, e.g. `property-transfer`: a validated lowercase slug.
///
/// Every lookup names its purpose; a grant is for one purpose, never a wildcard, so
/// data fetched for one procedure cannot silently serve another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purpose(String);

impl Purpose {
    /// Parses a purpose at the wire or file boundary.
    pub fn parse(s: &str) -> Result<Self, SlugError> {
        check_slug(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The purpose as written, e.g. `property-transfer`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_lowercase_slugs() {
        assert_eq!(
            Purpose::parse("property-transfer").unwrap().as_str(),
            "property-transfer"
        );
        assert_eq!(
            Purpose::parse("self-view2").unwrap().to_string(),
            "self-view2"
        );
        let rule = |s: &str| Purpose::parse(s).unwrap_err().rule;
        assert_eq!(rule(""), "must not be empty");
        assert_eq!(
            rule("Property-Transfer"),
            "only a-z, 0-9 and '-' are allowed"
        );
        assert_eq!(
            rule("property transfer"),
            "only a-z, 0-9 and '-' are allowed"
        );
        assert_eq!(rule("房产过户"), "only a-z, 0-9 and '-' are allowed");
        assert_eq!(rule("2fa"), "must start with a letter");
        assert_eq!(rule("-x"), "must start with a letter");
        assert_eq!(
            rule("property-"),
            "'-' must separate words (no trailing or doubled '-')"
        );
        assert_eq!(
            rule("a--b"),
            "'-' must separate words (no trailing or doubled '-')"
        );
        assert_eq!(rule(&"a".repeat(65)), "must be at most 64 characters");
        assert!(Purpose::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            Purpose::parse(&"A".repeat(100)).unwrap_err().found.len(),
            64
        );
    }
}
