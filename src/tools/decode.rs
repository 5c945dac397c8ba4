//! Reading govlink's topics as an operator does: which message each topic holds, its
//! protobuf in the canonical JSON mapping (from the contract's own descriptors, so every
//! field of every topic shows without a hand-written printer), and the identifiers in it
//! masked with the resolver's masking rules unless asked otherwise.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions, Value,
};
use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_json::{Value as Json, json};

use crate::kafka::Topics;
use crate::proto::{Agency, SubjectKind};
use crate::records::AGENCIES;
use crate::resolver::dead_letter::{
    DeadLetterKind, OFFSET_HEADER, PARTITION_HEADER, REASON_HEADER, REPLAY_COUNT_HEADER,
    REPLAY_ORIGINAL_HEADER, TOPIC_HEADER, TRUNCATED_FROM_HEADER,
};
use crate::resolver::policy::{MaskKind, mask};

/// What a govlink topic holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// An agency's record changes.
    Records(Agency),
    /// Events the materializer could not use, with the reason in headers.
    DeadLetters,
    /// The audit trail's hash-chained entries.
    Audit,
    /// The audit chains' acknowledged heads.
    AuditCheckpoints,
    /// Changes asked of cases.
    CaseCommands,
    /// What happened to cases.
    Cases,
    /// An agency's tasks.
    Tasks(Agency),
}

impl TopicKind {
    /// The full name of the protobuf message the topic's values are (for the dead-letter
    /// topic: the record event each letter holds the bytes of).
    pub fn message(self) -> &'static str {
        match self {
            TopicKind::Records(_) | TopicKind::DeadLetters => "govlink.v1.RecordEvent",
            TopicKind::Audit => "govlink.v1.AuditEntry",
            TopicKind::AuditCheckpoints => "govlink.v1.AuditCheckpoint",
            TopicKind::CaseCommands => "govlink.v1.CaseCommand",
            TopicKind::Cases => "govlink.v1.CaseEvent",
            TopicKind::Tasks(_) => "govlink.v1.Task",
        }
    }
}

/// Every topic of a deployment with what it holds, in the order of [`Topics::all`].
pub fn catalog(topics: &Topics) -> Vec<(String, TopicKind)> {
    let mut all: Vec<(String, TopicKind)> = AGENCIES
        .into_iter()
        .map(|a| (topics.records(a), TopicKind::Records(a)))
        .collect();
    all.extend([
        (topics.dlq(), TopicKind::DeadLetters),
        (topics.audit(), TopicKind::Audit),
        (topics.audit_checkpoints(), TopicKind::AuditCheckpoints),
        (topics.case_commands(), TopicKind::CaseCommands),
        (topics.cases(), TopicKind::Cases),
    ]);
    all.extend(AGENCIES.map(|a| (topics.tasks(a), TopicKind::Tasks(a))));
    all
}

/// A topic name that is none of the deployment's.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name:?} is not a govlink topic of this deployment (topic prefix {prefix:?}); \
     the topics are: {}", known.join(", ")
)]
pub struct UnknownTopic {
    /// The name asked for.
    pub name: String,
    /// The configured prefix.
    pub prefix: String,
    /// The deployment's topics, full names.
    pub known: Vec<String>,
}

/// The topic `name` names, given with or without the deployment's topic prefix
/// (`govlink.dlq.v1` and `<prefix>govlink.dlq.v1` are the same topic).
pub fn resolve(
    topics: &Topics,
    prefix: &str,
    name: &str,
) -> Result<(String, TopicKind), UnknownTopic> {
    let all = catalog(topics);
    let prefixed = format!("{prefix}{name}");
    all.iter()
        .find(|(topic, _)| *topic == name || *topic == prefixed)
        .cloned()
        .ok_or_else(|| UnknownTopic {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            known: all.into_iter().map(|(topic, _)| topic).collect(),
        })
}

/// The contract's descriptors, decoded once.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("build.rs writes a complete descriptor set of proto/")
    })
}

/// The descriptor of a message of the contract.
fn descriptor(full_name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is a message of proto/"))
}

/// How an identifier is masked: as a personal value of the policy's kinds, or as a
/// record id or key (or an agency's event id), which may hold a resident ID number (see
/// [`mask::resident_ids_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identifier {
    Personal(MaskKind),
    RecordId,
}

impl Identifier {
    /// The identifier a string field of the contract holds, by the field's name: the
    /// contract names them consistently (a test checks that no other field looks like one).
    fn of_field(name: &str) -> Option<Identifier> {
        match name {
            "person_id" | "person_ids" | "seller_ids" | "buyer_ids" | "borrower_id"
            | "on_behalf_of" => Some(Identifier::Personal(MaskKind::ResidentId)),
            "name" => Some(Identifier::Personal(MaskKind::Name)),
            "address" | "destination_address" => Some(Identifier::Personal(MaskKind::Address)),
            // An agency's own event id is free text too, often built from the record id.
            "record_id" | "record_key" | "source_event_id" => Some(Identifier::RecordId),
            _ => None,
        }
    }

    fn mask(self, text: &str) -> String {
        match self {
            Identifier::Personal(kind) => kind.mask(text),
            Identifier::RecordId => mask::resident_ids_in(text),
        }
    }
}

/// Masks every identifier in `message` and in the messages it holds.
fn mask_message(message: &mut DynamicMessage) {
    // A subject's id is a resident ID when it names a person (a unit number otherwise).
    if message.descriptor().full_name() == "govlink.v1.Subject" {
        let person = message
            .get_field_by_name("kind")
            .and_then(|k| k.as_enum_number())
            == Some(SubjectKind::Person as i32);
        if let (true, Some(id)) = (person, message.get_field_by_name_mut("id")) {
            mask_value(id, Identifier::Personal(MaskKind::ResidentId));
        }
        return;
    }
    for (field, value) in message.fields_mut() {
        match Identifier::of_field(field.name()) {
            Some(identifier) => mask_value(value, identifier),
            None => mask_nested(value),
        }
    }
}

fn mask_value(value: &mut Value, identifier: Identifier) {
    match value {
        Value::String(text) => *text = identifier.mask(text),
        Value::List(items) => items.iter_mut().for_each(|v| mask_value(v, identifier)),
        _ => {}
    }
}

fn mask_nested(value: &mut Value) {
    match value {
        Value::Message(m) => mask_message(m),
        Value::List(items) => items.iter_mut().for_each(mask_nested),
        Value::Map(entries) => entries.values_mut().for_each(mask_nested),
        _ => {}
    }
}

/// `bytes` as the message `full_name`, in the canonical JSON mapping, identifiers masked
/// unless `unmasked`; or why they are not such a message. An audit entry's body (the
/// bytes its hash covers) is shown decoded too.
pub fn decode_value(full_name: &str, bytes: &[u8], unmasked: bool) -> Result<Json, String> {
    let mut message = DynamicMessage::decode(descriptor(full_name), bytes)
        .map_err(|e| format!("not a {full_name}: {e}"))?;
    let body = match full_name {
        "govlink.v1.AuditEntry" => message
            .get_field_by_name("body")
            .and_then(|b| b.as_bytes().cloned()),
        _ => None,
    };
    if !unmasked {
        mask_message(&mut message);
    }
    let mut json = to_json(&message)?;
    if let (Some(body), Json::Object(fields)) = (body, &mut json) {
        let decoded = decode_value("govlink.v1.AuditBody", &body, unmasked)
            .unwrap_or_else(|e| json!({ "error": e }));
        fields.insert("body".into(), decoded);
    }
    Ok(json)
}

fn to_json(message: &DynamicMessage) -> Result<Json, String> {
    message
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|e| format!("cannot show as JSON: {e}"))
}

/// Text of a key or header: UTF-8 as is, anything else in hex.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("0x{}", hex::encode(bytes)),
    }
}

/// A message key as an operator reads it: a record id may be or hold a resident ID
/// number, masked as [`mask::resident_ids_in`] does. A key that is not UTF-8 is read as
/// far as it is (hex would show the digits).
fn masked_key(bytes: &[u8]) -> String {
    mask::resident_ids_in(&String::from_utf8_lossy(bytes))
}

/// The headers of a message, by name (a repeated name keeps its last value).
pub fn headers(message: &OwnedMessage) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            all.insert(
                header.key.to_owned(),
                header.value.map(text).unwrap_or_default(),
            );
        }
    }
    all
}

/// What the headers of a dead letter say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The reason, as the materializer wrote it.
    pub reason: String,
    /// Its kind.
    pub kind: DeadLetterKind,
    /// Where the original was read: topic, partition, offset (absent when the headers do
    /// not say).
    pub topic: Option<String>,
    /// The original's partition.
    pub partition: Option<i32>,
    /// The original's offset.
    pub offset: Option<i64>,
    /// Set when the letter holds only a prefix of the original: the original's length.
    pub truncated_from: Option<u64>,
    /// Lineage, when a replay sent the event this letter was made of: where the event of
    /// the first letter of the line was read (`topic/partition/offset`).
    pub replay_original: Option<String>,
    /// How many replays the event went through (0: it never was replayed).
    pub replays: u32,
}

impl DeadLetter {
    /// Reads the dead-letter headers of `message`.
    pub fn of(message: &OwnedMessage) -> DeadLetter {
        let headers = headers(message);
        let reason = headers.get(REASON_HEADER).cloned().unwrap_or_default();
        DeadLetter {
            kind: DeadLetterKind::of_reason(&reason),
            reason,
            topic: headers.get(TOPIC_HEADER).cloned(),
            partition: headers.get(PARTITION_HEADER).and_then(|p| p.parse().ok()),
            offset: headers.get(OFFSET_HEADER).and_then(|o| o.parse().ok()),
            truncated_from: headers
                .get(TRUNCATED_FROM_HEADER)
                .and_then(|l| l.parse().ok()),
            replay_original: headers.get(REPLAY_ORIGINAL_HEADER).cloned(),
            replays: headers
                .get(REPLAY_COUNT_HEADER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        }
    }

    /// Where the event of the first letter of its line was read (`topic/partition/offset`):
    /// the lineage's original for a letter of a replayed event, else the letter's own
    /// origin; `None` when the headers do not say.
    pub fn original(&self) -> Option<String> {
        if let Some(original) = &self.replay_original {
            return Some(original.clone());
        }
        let (topic, partition, offset) = (self.topic.as_ref()?, self.partition?, self.offset?);
        Some(format!("{topic}/{partition}/{offset}"))
    }

    fn to_json(&self) -> Json {
        json!({
            "reason": self.reason,
            "kind": self.kind.as_str(),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "truncated_from": self.truncated_from,
            "original": self.original(),
            "replays": self.replays,
        })
    }
}

/// The time of a message as RFC 3339, if the broker gave one.
pub fn timestamp(message: &OwnedMessage) -> Option<String> {
    let millis = message.timestamp().to_millis()?;
    let time = prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: i32::try_from(millis.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    };
    Some(time.to_string())
}

/// One message of a topic of `kind` as an operator reads it: where it is, its key (resident
/// ID numbers in it masked unless `unmasked`), time and headers, its decoded value (or,
/// when it does not decode, why and its size; the bytes themselves only when `unmasked`,
/// since they may hold identifiers), and for a dead letter what its headers say.
pub fn message_json(kind: TopicKind, message: &OwnedMessage, unmasked: bool) -> Json {
    let payload = message.payload().unwrap_or_default();
    let mut json = json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": message.key().map(|key| if unmasked { text(key) } else { masked_key(key) }),
        "timestamp": timestamp(message),
        "headers": headers(message),
    });
    let fields = json.as_object_mut().expect("an object");
    if kind == TopicKind::DeadLetters {
        fields.insert("dead_letter".into(), DeadLetter::of(message).to_json());
    }
    match decode_value(kind.message(), payload, unmasked) {
        Ok(value) => {
            fields.insert("value".into(), value);
        }
        Err(error) => {
            fields.insert("value".into(), Json::Null);
            fields.insert("error".into(), error.into());
            fields.insert("size".into(), payload.len().into());
            if unmasked {
                fields.insert("bytes_hex".into(), hex::encode(payload).into());
            }
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_reflect::Kind;

    use super::*;
    use crate::proto;

    #[test]
    fn the_catalog_is_every_topic_of_the_deployment() {
        let topics = Topics::new("t1.");
        let names: Vec<String> = catalog(&topics).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, topics.all());
    }

    #[test]
    fn topics_resolve_with_or_without_the_prefix() {
        let topics = Topics::new("t1.");
        let dlq = (topics.dlq(), TopicKind::DeadLetters);
        assert_eq!(resolve(&topics, "t1.", "govlink.dlq.v1").unwrap(), dlq);
        assert_eq!(resolve(&topics, "t1.", "t1.govlink.dlq.v1").unwrap(), dlq);
        assert_eq!(
            resolve(&topics, "t1.", "govlink.tasks.housing.v1").unwrap(),
            (
                topics.tasks(Agency::Housing),
                TopicKind::Tasks(Agency::Housing)
            )
        );
        let unknown = resolve(&topics, "t1.", "t2.govlink.dlq.v1").unwrap_err();
        let text = unknown.to_string();
        assert!(text.contains("\"t2.govlink.dlq.v1\""), "{text}");
        assert!(text.contains("t1.govlink.records.housing.v1"), "{text}");
        assert_eq!(unknown.known, topics.all());
    }

    #[test]
    fn every_topic_names_a_message_of_the_contract() {
        for (_, kind) in catalog(&Topics::default()) {
            descriptor(kind.message());
        }
    }

    /// A field that looks like an identifier but has no masking rule would be shown in
    /// clear: every string field of the contract whose name suggests one must have a rule.
    #[test]
    fn every_field_that_looks_like_an_identifier_is_masked() {
        let suspicious = ["person", "seller", "buyer", "borrower", "owner", "behalf"];
        let suspicious_suffixes = ["name", "address", "phone"];
        for message in pool().all_messages() {
            if !message.full_name().starts_with("govlink.") {
                continue;
            }
            for field in message.fields() {
                let name = field.name();
                let looks = suspicious.iter().any(|s| name.contains(s))
                    || suspicious_suffixes.iter().any(|s| name.ends_with(s));
                if looks && field.kind() == Kind::String {
                    assert!(
                        Identifier::of_field(name).is_some(),
                        "{}.{name} looks like an identifier and has no masking rule",
                        message.full_name()
                    );
                }
            }
        }
    }

    #[test]
    fn record_events_decode_with_identifiers_masked() {
        let event = proto::RecordEvent {
            record_id: "h-1".into(),
            version: 3,
            agency: Agency::PublicSecurity as i32,
            subjects: vec![
                proto::Subject {
                    kind: SubjectKind::Person as i32,
                    id: "11010519800312001X".into(),
                },
                proto::Subject {
                    kind: SubjectKind::PropertyUnit as i32,
                    id: "110105001002GB00017F00030201".into(),
                },
            ],
            payload: Some(proto::record_event::Payload::Identity(proto::Identity {
                person_id: "11010519800312001X".into(),
                name: "张三丰".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = event.encode_to_vec();
        let masked = decode_value("govlink.v1.RecordEvent", &bytes, false).unwrap();
        assert_eq!(masked["recordId"], "h-1");
        assert_eq!(
            masked["version"], "3",
            "64-bit integers are strings in JSON"
        );
        assert_eq!(masked["agency"], "AGENCY_PUBLIC_SECURITY");
        assert_eq!(masked["identity"]["personId"], "110105********001X");
        assert_eq!(masked["identity"]["name"], "张**");
        assert_eq!(masked["subjects"][0]["id"], "110105********001X");
        assert_eq!(
            masked["subjects"][1]["id"], "110105001002GB00017F00030201",
            "a unit number is not a person's identifier"
        );
        let unmasked = decode_value("govlink.v1.RecordEvent", &bytes, true).unwrap();
        assert_eq!(unmasked["identity"]["personId"], "11010519800312001X");
        assert_eq!(unmasked["identity"]["name"], "张三丰");
    }

    #[test]
    fn addresses_and_lists_of_ids_are_masked() {
        let event = proto::RecordEvent {
            payload: Some(proto::record_event::Payload::SaleContract(
                proto::SaleContract {
                    seller_ids: vec!["11010519800312001X".into()],
                    buyer_ids: vec!["310104199005210021".into()],
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        let json = decode_value("govlink.v1.RecordEvent", &event.encode_to_vec(), false).unwrap();
        assert_eq!(json["saleContract"]["sellerIds"][0], "110105********001X");
        assert_eq!(json["saleContract"]["buyerIds"][0], "310104********0021");

        let registration = proto::HouseholdRegistration {
            address: "北京市朝阳区建国路88号".into(),
            ..Default::default()
        };
        let json = decode_value(
            "govlink.v1.HouseholdRegistration",
            &registration.encode_to_vec(),
            false,
        )
        .unwrap();
        assert_eq!(json["address"], "北京市朝阳区");
    }

    #[test]
    fn audit_entries_show_their_body_decoded_and_masked() {
        let body = proto::AuditBody {
            at: None,
            kind: Some(proto::audit_body::Kind::Access(proto::DataAccess {
                person_ids: vec!["11010519800312001X".into()],
                method: "GetPersonProfile".into(),
                ..Default::default()
            })),
        };
        let entry = proto::AuditEntry {
            chain_id: "c-1".into(),
            sequence: 4,
            body: body.encode_to_vec(),
            ..Default::default()
        };
        let json = decode_value("govlink.v1.AuditEntry", &entry.encode_to_vec(), false).unwrap();
        assert_eq!(json["chainId"], "c-1");
        assert_eq!(json["body"]["access"]["method"], "GetPersonProfile");
        assert_eq!(json["body"]["access"]["personIds"][0], "110105********001X");
    }

    #[test]
    fn resident_ids_in_keys_and_record_ids_are_masked() {
        assert_eq!(
            masked_key(b"public-security/identity/11010519800312001X"),
            "public-security/identity/110105********001X"
        );
        // Not UTF-8: read as far as it is, the ID masked all the same.
        let mut key = b"\xff/".to_vec();
        key.extend_from_slice(b"11010519800312001X");
        assert_eq!(masked_key(&key), "\u{fffd}/110105********001X");
        // The record id in a value is masked the same way.
        let event = proto::RecordEvent {
            record_id: "id-11010519800312001X".into(),
            source_event_id: "id-11010519800312001X-v1".into(),
            ..Default::default()
        };
        let json = decode_value("govlink.v1.RecordEvent", &event.encode_to_vec(), false).unwrap();
        assert_eq!(json["recordId"], "id-110105********001X");
        assert_eq!(json["sourceEventId"], "id-110105********001X-v1");
    }

    #[test]
    fn bytes_that_are_not_the_message_say_so() {
        let err = decode_value("govlink.v1.RecordEvent", &[0xff, 0xff, 0xff], false).unwrap_err();
        assert!(err.starts_with("not a govlink.v1.RecordEvent"), "{err}");
    }
}
