//! Generated field values, from valid to hostile: text, identifiers, enum values, dates,
//! instants, amounts and repeated fields.

use std::time::{SystemTime, UNIX_EPOCH};

use govlink::domain::resident_id::check_character;
use govlink::proto;
use govlink::records::{MAX_REPEATED, max_chars};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// A unit number that parses (Beijing, Chaoyang).
pub const UNIT: &str = "110105001002GB00017F00030201";
/// A unified social credit code that parses.
const CREDIT_CODE: &str = "91350100M000100Y43";

/// Characters that break naive text handling: controls (C0, DEL, C1), separators, a
/// byte-order mark, combining and wide characters.
const HOSTILE: &[char] = &[
    '\u{0}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{feff}', '\u{301}',
    '王', '%', '"', '\\', ' ', '😀',
];

/// Any text: short plain, arbitrary Unicode, hostile characters, or runs just around and
/// far beyond the contract's longest field.
pub fn text() -> BoxedStrategy<String> {
    let lengths = prop_oneof![
        Just(max_chars::ACCOUNT_NUMBER + 1),
        Just(max_chars::NAME + 1),
        Just(max_chars::ADDRESS),
        Just(max_chars::ADDRESS + 1),
        0usize..5_000,
    ];
    prop_oneof![
        16 => "[A-Za-z0-9._:-][A-Za-z0-9 ._:-]{0,23}",
        2 => any::<String>(),
        2 => vec(select(HOSTILE), 0..12).prop_map(|cs| cs.into_iter().collect()),
        1 => (lengths, select(&['a', '王', ' ', '\u{0}'][..]))
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
        1 => Just(String::new()),
    ]
    .boxed()
}

/// A resident ID number that parses (born 1900 to 2035: some in the future).
fn valid_person_id() -> BoxedStrategy<String> {
    (
        select(&["110105", "310104", "440305", "510107", "650102"][..]),
        1900u32..2035,
        1u32..=12,
        1u32..=28,
        0u32..1000,
    )
        .prop_map(|(region, year, month, day, seq)| {
            let first17 = format!("{region}{year:04}{month:02}{day:02}{seq:03}");
            format!("{first17}{}", check_character(&first17))
        })
        .boxed()
}

/// A resident ID number: valid, of the right shape, or anything.
pub fn person_id() -> BoxedStrategy<String> {
    prop_oneof![
        10 => valid_person_id(),
        1 => "[0-9]{17}[0-9Xx]",
        1 => text(),
    ]
    .boxed()
}

/// A real-estate unit number: valid, one character changed, of the right length, or
/// anything.
pub fn unit() -> BoxedStrategy<String> {
    prop_oneof![
        10 => Just(UNIT.to_owned()),
        2 => (0usize..28, any::<char>()).prop_map(|(i, c)| {
            UNIT.chars().enumerate().map(|(j, u)| if i == j { c } else { u }).collect()
        }),
        1 => "[0-9A-Z]{28}",
        1 => text(),
    ]
    .boxed()
}

/// An administrative division code.
pub fn region() -> BoxedStrategy<String> {
    prop_oneof![
        10 => select(&["110105", "310104", "440305", "110000", "990000"][..]).prop_map(String::from),
        1 => "[0-9]{6}",
        1 => text(),
    ]
    .boxed()
}

/// A unified social credit code, or nothing, or anything.
pub fn credit_code() -> BoxedStrategy<String> {
    prop_oneof![
        10 => Just(CREDIT_CODE.to_owned()),
        1 => Just(String::new()),
        1 => "[0-9A-Z]{18}",
        1 => text(),
    ]
    .boxed()
}

/// An enum value: mostly known ones, sometimes any number.
pub fn enumeration() -> BoxedStrategy<i32> {
    prop_oneof![8 => 1i32..3, 2 => 0i32..8, 1 => any::<i32>()].boxed()
}

/// A civil date: plausible, impossible (month 13, day 31 of a short month) or any
/// numbers; sometimes unset.
pub fn date() -> BoxedStrategy<Option<proto::Date>> {
    let past = (1950i32..2025, 1i32..=12, 1i32..=28);
    let plausible = (1890i32..2100, 1i32..=12, 1i32..=31);
    let any_numbers = (any::<i32>(), any::<i32>(), any::<i32>());
    prop::option::weighted(
        0.9,
        prop_oneof![8 => past, 2 => plausible, 1 => any_numbers]
            .prop_map(|(year, month, day)| proto::Date { year, month, day }),
    )
    .boxed()
}

/// An instant: around now, or any numbers (negative nanos, far past and future).
pub fn timestamp() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let near = (now - 86_400 * 400..now + 86_400, 0i32..1_000_000_000);
    let any_numbers = (any::<i64>(), any::<i32>());
    prop::option::weighted(
        0.9,
        prop_oneof![4 => near, 1 => any_numbers]
            .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    )
    .boxed()
}

/// An amount in fen.
pub fn money() -> BoxedStrategy<i64> {
    prop_oneof![4 => 0i64..10_000_000_000, 1 => any::<i64>()].boxed()
}

/// A repeated field: a few entries, or many copies of one (up to far past the
/// contract's bound, cheaply).
pub fn repeated<T: Clone + std::fmt::Debug + 'static>(
    entry: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Vec<T>> {
    let entry = entry.boxed();
    prop_oneof![
        6 => vec(entry.clone(), 0..4),
        1 => (entry, 0usize..(MAX_REPEATED * 40))
            .prop_map(|(e, n)| vec![e; n]),
    ]
    .boxed()
}
