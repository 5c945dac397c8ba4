//! Versions as stored: text whose order is the numbers' order, and as short as the
//! number. One letter gives the count of digits (`a` for one, … `t` for twenty), then the
//! digits without leading zeros: `a7`, `b10`, `t18446744073709551615`. A longer number
//! has a later letter, so comparing the texts (as the Redis scripts do, in Lua, without
//! losing precision above 2^53) compares the numbers. Every copy, record entry and index
//! field leads with one, so small versions cost two or three bytes instead of twenty.

/// The stored text of `version`.
pub fn text(version: u64) -> String {
    let digits = version.to_string();
    // A u64 has 1 to 20 digits.
    let letter = char::from(b'a' + (digits.len() - 1) as u8);
    format!("{letter}{digits}")
}

/// The version a stored value leads with, and the rest of the value; `None` if it does
/// not lead with one.
pub fn split(value: &[u8]) -> Option<(u64, &[u8])> {
    let digits = usize::from(value.first()?.checked_sub(b'a')?) + 1;
    let (number, rest) = value.get(1..)?.split_at_checked(digits)?;
    let canonical =
        digits <= 20 && number.iter().all(u8::is_ascii_digit) && (digits == 1 || number[0] != b'0');
    let version = std::str::from_utf8(number).ok()?.parse().ok();
    Some((version.filter(|_| canonical)?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_order_like_numbers_and_split_back() {
        let mut versions = vec![
            0,
            1,
            9,
            10,
            99,
            100,
            1 << 53,
            (1 << 53) + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        versions.extend((0..64).map(|shift| 1u64 << shift));
        let mut texts: Vec<String> = versions.iter().map(|v| text(*v)).collect();
        texts.sort();
        versions.sort_unstable();
        versions.dedup();
        texts.dedup();
        assert_eq!(texts, versions.iter().map(|v| text(*v)).collect::<Vec<_>>());
        for v in versions {
            let stored = format!("{}rest", text(v));
            assert_eq!(split(stored.as_bytes()), Some((v, &b"rest"[..])));
        }
        assert_eq!(text(7), "a7");
        assert_eq!(text(u64::MAX), "t18446744073709551615");
    }

    #[test]
    fn anything_else_is_no_version() {
        for bad in [
            &b""[..],
            b"a",
            b"b1",
            b"b01",
            b"ax",
            b"A1",
            b"u123456789012345678901",
            b"t99999999999999999999",
        ] {
            assert_eq!(split(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
