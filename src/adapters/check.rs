//! What an adapter checks before it publishes: the items of a request, field by field,
//! into the events it would publish. Pure (no broker), so the checks can be exercised
//! alone with any input.

use std::time::SystemTime;

use crate::proto::{Agency, Op, PublishMeta, RecordEvent, record_event::Payload};
use crate::records::{
    Horizon, RecordKey, RecordType, Violations, subjects_of, validate_meta, validate_payload,
};

/// A batch item's oneof as an adapter splits it: a record (`Ok`) or a deleted record type
/// (`Err`), with the oneof field's name; `None` when the oneof is unset.
pub type BatchOneof = Option<(Result<Payload, String>, &'static str)>;

/// What one request item asks to publish, before validation.
pub struct Item {
    meta: Option<PublishMeta>,
    body: Body,
    /// Where the meta and the record sit in the request, for field violations.
    meta_path: String,
    body_path: String,
}

enum Body {
    Upsert(Option<Payload>),
    Delete(String),
}

impl Item {
    /// A new version of a record, as in a single publish RPC (`meta`, `record`).
    pub fn upsert(meta: Option<PublishMeta>, payload: Option<Payload>) -> Item {
        Item {
            meta,
            body: Body::Upsert(payload),
            meta_path: "meta".into(),
            body_path: "record".into(),
        }
    }

    /// The deletion of a record, as in `DeleteRecord` (`record_type`, `meta`).
    pub fn delete(meta: Option<PublishMeta>, record_type: String) -> Item {
        Item {
            meta,
            body: Body::Delete(record_type),
            meta_path: "meta".into(),
            body_path: "record_type".into(),
        }
    }

    /// Item `index` of a batch, from its meta and its oneof as an adapter splits it.
    pub fn batch(index: usize, meta: Option<PublishMeta>, oneof: BatchOneof) -> Item {
        match oneof {
            Some((Ok(payload), field)) => Item::upsert(meta, Some(payload)).in_batch(index, field),
            Some((Err(record_type), field)) => {
                Item::delete(meta, record_type).in_batch(index, field)
            }
            None => Item::upsert(meta, None).in_batch(index, "record"),
        }
    }

    /// Item `index` of a batch whose record sits in the oneof field `field`.
    fn in_batch(mut self, index: usize, field: &str) -> Item {
        self.meta_path = format!("items[{index}].meta");
        self.body_path = format!("items[{index}].{field}");
        self
    }
}

/// An item that passed validation: the event and where it goes.
pub struct Prepared {
    pub(super) agency: Agency,
    pub(super) key: RecordKey,
    pub(super) event: RecordEvent,
}

impl Prepared {
    /// The event to publish.
    pub fn event(&self) -> &RecordEvent {
        &self.event
    }
}

/// Checks the number of items of a batch: at least one, at most `max_batch`.
pub fn check_batch_size(items: usize, max_batch: usize) -> Violations {
    let mut violations = Violations::default();
    if items == 0 {
        violations.add("items", "must not be empty");
    } else if items > max_batch {
        violations.add(
            "items",
            format!("must have at most {max_batch} items, not {items}"),
        );
    }
    violations
}

/// Checks one item of `agency` as a publish does (dates not beyond `horizon`): the
/// event to publish, or every broken rule by field.
pub fn check_item(agency: Agency, item: Item, horizon: &Horizon) -> Result<Prepared, Violations> {
    let mut violations = Violations::default();
    match prepare(agency, item, horizon, &mut violations) {
        Some(prepared) if violations.is_empty() => Ok(prepared),
        _ => Err(violations),
    }
}

/// Checks every item of a batch of `agency`: the events to publish, in item order, or
/// every broken rule by field (nothing passes when one item fails). Stops once
/// [`Violations`] is full: later items would only add to a count.
pub fn check_items(
    agency: Agency,
    items: Vec<Item>,
    horizon: &Horizon,
) -> Result<Vec<Prepared>, Violations> {
    let mut violations = Violations::default();
    let prepared: Vec<Option<Prepared>> = items
        .into_iter()
        .map_while(|item| {
            (!violations.is_full()).then(|| prepare(agency, item, horizon, &mut violations))
        })
        .collect();
    match prepared.into_iter().collect::<Option<Vec<Prepared>>>() {
        Some(prepared) if violations.is_empty() => Ok(prepared),
        _ => Err(violations),
    }
}

/// Validates an item into the event to publish; `None` (with violations) when invalid.
fn prepare(
    agency: Agency,
    item: Item,
    horizon: &Horizon,
    violations: &mut Violations,
) -> Option<Prepared> {
    let before = violations.len();
    validate_meta(item.meta.as_ref(), &item.meta_path, horizon, violations);
    let (record_type, op, payload) = match item.body {
        Body::Upsert(None) => {
            violations.add(item.body_path, "is required");
            return None;
        }
        Body::Upsert(Some(mut payload)) => {
            validate_payload(&mut payload, &item.body_path, horizon, violations);
            (RecordType::of_payload(&payload), Op::Upsert, Some(payload))
        }
        Body::Delete(name) => match RecordType::parse(agency, &name) {
            Some(record_type) => (record_type, Op::Delete, None),
            None => {
                let known: Vec<&str> = RecordType::ALL
                    .into_iter()
                    .filter(|t| t.agency() == agency)
                    .map(RecordType::as_str)
                    .collect();
                violations.add(
                    item.body_path,
                    format!(
                        "must be one of this agency's record types: {}",
                        known.join(", ")
                    ),
                );
                return None;
            }
        },
    };
    if violations.len() > before {
        return None;
    }
    let meta = item.meta?;
    let subjects = payload
        .as_ref()
        .map(|p| subjects_of(p).iter().map(|s| s.to_proto()).collect())
        .unwrap_or_default();
    let event = RecordEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        agency: agency as i32,
        record_type: record_type.as_str().to_owned(),
        record_id: meta.record_id,
        subjects,
        version: meta.version,
        source_event_id: meta.source_event_id,
        op: op as i32,
        occurred_at: meta.occurred_at,
        published_at: Some(SystemTime::now().into()),
        payload,
    };
    Some(Prepared {
        agency,
        key: RecordKey::new(record_type, &event.record_id),
        event,
    })
}
