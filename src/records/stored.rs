//! The stored form of a record event: what the resolver keeps of each version.
//!
//! A materialized copy is always read with its record key and version, and a record's
//! subjects are derived from its payload ([`subjects_of`]). So the copy leaves out what
//! those give back — agency, record type, record id, subjects, version, and the op (a
//! copy is always of an upsert) — keeps an event id in canonical UUID form as its 16
//! bytes, and [`restore`] puts it all back, field for field the event as published. A
//! household registration sheds about 40% of its bytes this way, for every subject it is
//! listed under.

use prost::Message as _;
use prost::bytes::Buf as _;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};

use super::{RecordKey, subjects_of};
use crate::proto::{Op, RecordEvent, record_event::Payload};

/// `RecordEvent.event_id`.
const EVENT_ID: u32 = 1;
/// `RecordEvent` fields a copy does not keep: agency, record_type, record_id, subjects,
/// version, op.
const RESTORED_FIELDS: [u32; 6] = [2, 3, 4, 5, 6, 8];
/// The stored form's own field (unknown to `RecordEvent`, so decoding skips it): the
/// event id as 16 bytes, in place of its 36 characters.
const EVENT_ID_BYTES: u32 = 1000;

/// Bytes that are not an encoded `RecordEvent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an encoded RecordEvent: {0}")]
pub struct NotAnEvent(String);

impl From<prost::DecodeError> for NotAnEvent {
    fn from(e: prost::DecodeError) -> NotAnEvent {
        NotAnEvent(e.to_string())
    }
}

/// The stored form of an encoded `RecordEvent`: the same bytes without the fields
/// [`restore`] puts back. Copies the kept fields as they are, without decoding them.
pub fn compact(event: &[u8]) -> Result<Vec<u8>, NotAnEvent> {
    let mut stored = Vec::with_capacity(event.len());
    let mut rest = event;
    while rest.has_remaining() {
        let start = rest;
        let (tag, wire_type) = decode_key(&mut rest)?;
        let skip = match wire_type {
            WireType::Varint => {
                decode_varint(&mut rest)?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => usize::try_from(decode_varint(&mut rest)?)
                .map_err(|_| NotAnEvent("a field length overflows".into()))?,
            WireType::StartGroup | WireType::EndGroup => {
                return Err(NotAnEvent("a group, which RecordEvent does not use".into()));
            }
        };
        if rest.remaining() < skip {
            return Err(NotAnEvent(format!("field {tag} runs past the end")));
        }
        let value = &rest[..skip];
        rest.advance(skip);
        let uuid = (tag == EVENT_ID && wire_type == WireType::LengthDelimited)
            .then(|| canonical_uuid(value))
            .flatten();
        if let Some(id) = uuid {
            encode_key(EVENT_ID_BYTES, WireType::LengthDelimited, &mut stored);
            encode_varint(16, &mut stored);
            stored.extend_from_slice(id.as_bytes());
            continue;
        }
        if !RESTORED_FIELDS.contains(&tag) {
            stored.extend_from_slice(&start[..start.len() - rest.len()]);
        }
    }
    Ok(stored)
}

/// The UUID `text` spells in canonical form (lowercase, hyphenated), the form it comes
/// back in; `None` for any other text.
fn canonical_uuid(text: &[u8]) -> Option<uuid::Uuid> {
    let text = std::str::from_utf8(text).ok()?;
    let id = uuid::Uuid::parse_str(text).ok()?;
    (id.hyphenated().to_string() == text).then_some(id)
}

/// The event id a stored form keeps as 16 bytes, if it does.
fn event_id_bytes(mut stored: &[u8]) -> Result<Option<uuid::Uuid>, NotAnEvent> {
    let mut found = None;
    while stored.has_remaining() {
        let (tag, wire_type) = decode_key(&mut stored)?;
        if tag == EVENT_ID_BYTES && wire_type == WireType::LengthDelimited {
            let len = decode_varint(&mut stored)? as usize;
            let bytes = stored
                .get(..len)
                .and_then(|b| uuid::Uuid::from_slice(b).ok());
            found = Some(bytes.ok_or_else(|| NotAnEvent("a malformed event id".into()))?);
            stored.advance(len);
        } else {
            prost::encoding::skip_field(wire_type, tag, &mut stored, Default::default())?;
        }
    }
    Ok(found)
}

/// The event a stored copy of `key` at `version` was made from.
pub fn restore(key: &RecordKey, version: u64, stored: &[u8]) -> Result<RecordEvent, NotAnEvent> {
    let mut event = RecordEvent::decode(stored)?;
    if let Some(id) = event_id_bytes(stored)? {
        event.event_id = id.hyphenated().to_string();
    }
    event.op = if event.payload.is_some() {
        Op::Upsert
    } else {
        Op::Delete
    } as i32;
    let record_type = key.record_type();
    event.agency = record_type.agency() as i32;
    record_type.as_str().clone_into(&mut event.record_type);
    key.record_id().clone_into(&mut event.record_id);
    event.version = version;
    event.subjects = event
        .payload
        .as_ref()
        .map(|p: &Payload| subjects_of(p).iter().map(|s| s.to_proto()).collect())
        .unwrap_or_default();
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{self, Agency};
    use crate::records::RecordType;

    fn household_event() -> RecordEvent {
        let payload = Payload::HouseholdRegistration(proto::HouseholdRegistration {
            person_id: "11010519491231002X".into(),
            household_number: "H-1".into(),
            region_code: "110105".into(),
            address: "北京市朝阳区建国路88号3栋201".into(),
            status: proto::HouseholdStatus::Registered as i32,
            property_unit_number: "110105001002GB00017F00030201".into(),
            ..Default::default()
        });
        RecordEvent {
            event_id: "0190a0b2-0000-7000-8000-000000000001".into(),
            agency: Agency::PublicSecurity as i32,
            record_type: "household_registration".into(),
            record_id: "H-1".into(),
            subjects: subjects_of(&payload).iter().map(|s| s.to_proto()).collect(),
            version: 7,
            source_event_id: "src-1".into(),
            op: Op::Upsert as i32,
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            published_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_001,
                nanos: 0,
            }),
            payload: Some(payload),
        }
    }

    #[test]
    fn a_restored_copy_is_the_published_event() {
        let event = household_event();
        assert_eq!(event.subjects.len(), 2, "a person and a unit");
        let key = RecordKey::new(RecordType::HouseholdRegistration, "H-1");
        let stored = compact(&event.encode_to_vec()).unwrap();
        assert!(
            stored.len() * 5 < event.encoded_len() * 3,
            "{} bytes",
            stored.len()
        );
        assert_eq!(restore(&key, 7, &stored).unwrap(), event);
    }

    #[test]
    fn an_event_id_in_another_form_is_kept_as_it_is() {
        let key = RecordKey::new(RecordType::HouseholdRegistration, "H-1");
        for id in [
            "0190A0B2-0000-7000-8000-000000000001",
            "0190a0b2000070008000000000000001",
            "not-a-uuid",
            "",
        ] {
            let mut event = household_event();
            event.event_id = id.into();
            let stored = compact(&event.encode_to_vec()).unwrap();
            assert_eq!(restore(&key, 7, &stored).unwrap(), event, "{id:?}");
        }
    }

    #[test]
    fn a_deletion_restores_without_subjects() {
        let mut event = household_event();
        event.payload = None;
        event.subjects.clear();
        event.op = Op::Delete as i32;
        let key = RecordKey::new(RecordType::HouseholdRegistration, "H-1");
        let stored = compact(&event.encode_to_vec()).unwrap();
        assert_eq!(restore(&key, 7, &stored).unwrap(), event);
    }

    #[test]
    fn truncated_or_grouped_bytes_are_refused() {
        let bytes = household_event().encode_to_vec();
        for cut in 1..bytes.len() {
            // A cut inside a field is refused; a cut between fields is a shorter event.
            if let Ok(stored) = compact(&bytes[..cut]) {
                assert!(
                    RecordEvent::decode(stored.as_slice()).is_ok(),
                    "cut at {cut}"
                );
            }
        }
        assert!(compact(&[0x0b]).is_err(), "a start-group key");
        assert!(
            compact(&[0x0a, 0x05, b'a']).is_err(),
            "a length past the end"
        );
    }
}
