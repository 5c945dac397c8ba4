//! Records under an open objection (数据异议): what the profile and the checks consult so
//! that a disputed record is said to be disputed wherever it is used. The objections are
//! cases, kept by the case engine, which indexes each open objection by its record key
//! and version (see `cases::store`) in the shared Redis, so every resolver replica sees
//! the same disputes, and they survive restarts. The resolver reads them through this
//! trait, which the case store implements.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::proto::RecordEvent;
use crate::resolver::checks::key_of;

/// An open objection against one version of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    /// agency/record_type/record_id.
    pub record_key: String,
    /// The version disputed; a later version is not.
    pub version: u64,
    /// The objection (its case id).
    pub objection_id: String,
}

/// Where the open objections are found.
pub trait OpenDisputes: Send + Sync {
    /// The open objections against any version of each of `record_keys`.
    fn of_records<'a>(
        &'a self,
        record_keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Dispute>, String>>;
}

/// The record keys and versions of `records`.
pub fn versions_of(records: &[RecordEvent]) -> BTreeMap<String, u64> {
    records
        .iter()
        .filter_map(|r| Some((key_of(r)?.as_str().to_owned(), r.version)))
        .collect()
}

/// The disputes that hold for records as read (`read`: record key → version read): an
/// objection against the version read. One per record (the first objection by id when
/// several are open).
pub async fn disputed(
    source: Option<&Arc<dyn OpenDisputes>>,
    read: &BTreeMap<String, u64>,
) -> Result<BTreeMap<String, Dispute>, String> {
    let Some(source) = source else {
        return Ok(BTreeMap::new());
    };
    if read.is_empty() {
        return Ok(BTreeMap::new());
    }
    let keys: Vec<String> = read.keys().cloned().collect();
    let mut found = source.of_records(&keys).await?;
    found.sort_by(|a, b| a.objection_id.cmp(&b.objection_id));
    let mut held = BTreeMap::new();
    for d in found {
        if read.get(&d.record_key) == Some(&d.version) {
            held.entry(d.record_key.clone()).or_insert(d);
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Open objections as the case store would list them.
    struct Open(Vec<Dispute>);

    impl OpenDisputes for Open {
        fn of_records<'a>(
            &'a self,
            record_keys: &'a [String],
        ) -> BoxFuture<'a, Result<Vec<Dispute>, String>> {
            let found = self
                .0
                .iter()
                .filter(|d| record_keys.contains(&d.record_key))
                .cloned()
                .collect();
            Box::pin(async move { Ok(found) })
        }
    }

    fn dispute(key: &str, version: u64, id: &str) -> Dispute {
        Dispute {
            record_key: key.into(),
            version,
            objection_id: id.into(),
        }
    }

    #[tokio::test]
    async fn a_dispute_holds_only_for_the_version_read_and_the_first_objection_names_it() {
        let source: Arc<dyn OpenDisputes> = Arc::new(Open(vec![
            dispute("public-security/household_registration/h-1", 1, "case-b"),
            dispute("public-security/household_registration/h-1", 1, "case-a"),
            dispute("housing/property_title/t-1", 3, "case-c"),
        ]));
        let read = BTreeMap::from([
            ("public-security/household_registration/h-1".to_owned(), 1),
            // Corrected since: version 4 is not the one disputed.
            ("housing/property_title/t-1".to_owned(), 4),
        ]);
        let held = disputed(Some(&source), &read).await.unwrap();
        assert_eq!(held.len(), 1);
        let d = &held["public-security/household_registration/h-1"];
        assert_eq!((d.version, d.objection_id.as_str()), (1, "case-a"));
        // Without a case store there are no objections.
        assert!(disputed(None, &read).await.unwrap().is_empty());
    }
}
