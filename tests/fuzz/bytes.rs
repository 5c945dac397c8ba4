//! Bytes off the wire: arbitrary, and encodings of generated requests with bytes changed,
//! cut short or spliced, each decoded as every request message and checked.

use proptest::collection::vec;
use proptest::prelude::*;

use super::checks::Checks;
use super::strategies::{adapter_request, cases_request, resolver_request};

/// An encoded request of any service.
fn encoded() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        adapter_request().prop_map(|r| r.encode()),
        resolver_request().prop_map(|r| r.encode()),
        cases_request().prop_map(|r| r.encode()),
    ]
}

/// Changes to an encoding: bytes overwritten, a cut, bytes inserted.
#[derive(Debug, Clone)]
enum Change {
    Overwrite(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Change::Overwrite(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Change::Truncate),
        2 => (any::<prop::sample::Index>(), vec(any::<u8>(), 1..12))
            .prop_map(|(i, bytes)| Change::Insert(i, bytes)),
    ]
}

fn apply(mut bytes: Vec<u8>, changes: &[Change]) -> Vec<u8> {
    for c in changes {
        if bytes.is_empty() {
            break;
        }
        match c {
            Change::Overwrite(i, b) => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            Change::Truncate(i) => bytes.truncate(i.index(bytes.len())),
            Change::Insert(i, more) => {
                let at = i.index(bytes.len());
                bytes.splice(at..at, more.iter().copied());
            }
        }
    }
    bytes
}

proptest! {
    #[test]
    fn arbitrary_bytes_decode_as_any_request_without_harm(bytes in vec(any::<u8>(), 0..512)) {
        Checks::new().every_decoder(&bytes);
    }

    #[test]
    fn changed_encodings_decode_as_any_request_without_harm(
        bytes in encoded(),
        changes in vec(change(), 0..4),
    ) {
        Checks::new().every_decoder(&apply(bytes, &changes));
    }
}
