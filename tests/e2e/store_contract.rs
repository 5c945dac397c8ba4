//! The store contract, run against Redis and against the in-memory store of `dev`: both
//! must behave the same.

use std::collections::BTreeMap;

use govlink::proto::{self, Position, RecordEvent, record_event::Payload};
use govlink::records::{RecordKey, RecordType, SubjectKey};
use govlink::redis_link::RedisLink;
use govlink::resolver::checks::ContributionSummary;
use govlink::resolver::store::{
    ApplyOutcome, Change, LAYOUT, MemoryStore, NotReady, RecordWrite, RedisStore, Store,
    StoreError, StoreState, StoredRecord, SubjectEntry, SubjectRead, position_field,
};

use crate::helpers::*;

mod reads;

use reads::{
    a_lookup_reads_only_the_asked_types_of_live_records,
    the_contribution_summary_follows_every_correction,
};

/// An empty store under a fresh prefix, with no generation (as Redis is at first).
async fn bare_redis_store() -> Store {
    let prefix = format!("govlink-test:{}:", unique("store"));
    Store::Redis(
        RedisStore::connect(&RedisLink::new(redis_url()), &prefix)
            .await
            .expect("redis store"),
    )
}

async fn bare_memory_store() -> Store {
    Store::Memory(MemoryStore::new())
}

/// A store in a ready generation, as the materializer leaves it after an empty rebuild.
async fn ready(store: Store) -> Store {
    assert!(store.replace_generation(None, "g1", "test").await.unwrap());
    assert!(store.start_rebuild("g1", &[]).await.unwrap());
    store
}

async fn redis_store() -> Store {
    ready(bare_redis_store().await).await
}

async fn memory_store() -> Store {
    ready(bare_memory_store().await).await
}

fn key(id: &str) -> RecordKey {
    RecordKey::new(RecordType::PropertyTitle, id)
}

fn subject(name: &str) -> SubjectKey {
    SubjectKey::from_stored(name)
}

/// The encoded events the tests write, borrowed like a message payload. Leaked: a few
/// bytes per write, for the life of one test process.
fn event_text(id: &str, version: u64) -> &'static [u8] {
    Box::leak(format!("{id}@{version}").into_bytes().into_boxed_slice())
}

fn write(id: &str, version: u64, subjects: &[&str]) -> RecordWrite<'static> {
    RecordWrite {
        key: key(id),
        version,
        change: Change::Upsert {
            subjects: subjects.iter().map(|s| subject(s)).collect(),
            event: event_text(id, version).into(),
        },
    }
}

fn delete(id: &str, version: u64) -> RecordWrite<'static> {
    RecordWrite {
        key: key(id),
        version,
        change: Change::Delete,
    }
}

async fn listed(store: &Store, name: &str) -> Vec<String> {
    store
        .subject_records(&subject(name))
        .await
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.event).unwrap())
        .collect()
}

async fn current(store: &Store, id: &str) -> Option<String> {
    store
        .get(&key(id))
        .await
        .unwrap()
        .map(|r| String::from_utf8(r.event).unwrap())
}

async fn highest_version_wins_in_every_order(new: impl AsyncFn() -> Store) {
    let store = new().await;
    let orders = [
        [1, 2, 3],
        [1, 3, 2],
        [2, 1, 3],
        [2, 3, 1],
        [3, 1, 2],
        [3, 2, 1],
    ];
    for (n, order) in orders.iter().enumerate() {
        let id = format!("r{n}");
        // One write per batch, and then all in one batch with duplicates.
        for v in order {
            store.apply(&[write(&id, *v, &["u:1"])]).await.unwrap();
        }
        assert_eq!(
            current(&store, &id).await,
            Some(format!("{id}@3")),
            "{order:?}"
        );
        let batch: Vec<RecordWrite> = order
            .iter()
            .chain(order)
            .map(|v| write(&id, *v, &["u:1"]))
            .collect();
        let outcome = store.apply(&batch).await.unwrap();
        assert_eq!(outcome.applied + outcome.stale, 6);
        assert_eq!(current(&store, &id).await, Some(format!("{id}@3")));
    }
    assert_eq!(listed(&store, "u:1").await.len(), orders.len());
    // Versions beyond 2^53 keep their order (no float rounding anywhere).
    let big = 1u64 << 60;
    store
        .apply(&[write("big", big + 1, &["u:2"]), write("big", big, &["u:2"])])
        .await
        .unwrap();
    assert_eq!(
        current(&store, "big").await,
        Some(format!("big@{}", big + 1))
    );
}

async fn stale_writes_are_counted_and_change_nothing(new: impl AsyncFn() -> Store) {
    let store = new().await;
    let outcome = store
        .apply(&[write("a", 5, &["p:x"]), write("a", 4, &["p:y"])])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ApplyOutcome {
            applied: 1,
            stale: 1
        }
    );
    assert_eq!(listed(&store, "p:x").await, ["a@5"]);
    assert!(listed(&store, "p:y").await.is_empty());
}

async fn subjects_follow_the_latest_version(new: impl AsyncFn() -> Store) {
    let store = new().await;
    store
        .apply(&[write("t", 1, &["u:1", "p:seller"])])
        .await
        .unwrap();
    store
        .apply(&[write("t", 2, &["u:1", "p:buyer"])])
        .await
        .unwrap();
    assert!(listed(&store, "p:seller").await.is_empty());
    assert_eq!(listed(&store, "p:buyer").await, ["t@2"]);
    assert_eq!(listed(&store, "u:1").await, ["t@2"]);
    // Version 3 back to the seller crashes between the two steps: the entry is written,
    // no subject copy is. The replay of version 3 redoes them.
    let batch = [write("t", 3, &["u:1", "p:seller"])];
    store.write_entries(&batch).await.unwrap();
    assert_eq!(
        listed(&store, "p:buyer").await,
        ["t@2"],
        "step two did not run"
    );
    assert!(
        listed(&store, "p:seller").await.is_empty(),
        "step two did not run"
    );
    store.apply(&batch).await.unwrap();
    assert_eq!(listed(&store, "p:seller").await, ["t@3"]);
    assert!(listed(&store, "p:buyer").await.is_empty());
    assert_eq!(listed(&store, "u:1").await, ["t@3"]);
    // Replaying version 2 (a duplicate) changes nothing.
    store
        .apply(&[write("t", 2, &["u:1", "p:buyer"])])
        .await
        .unwrap();
    assert!(listed(&store, "p:buyer").await.is_empty());
    assert_eq!(listed(&store, "p:seller").await, ["t@3"]);
    // Version 4 to the buyer again.
    store
        .apply(&[write("t", 4, &["u:1", "p:buyer"])])
        .await
        .unwrap();
    assert!(listed(&store, "p:seller").await.is_empty());
    assert_eq!(listed(&store, "p:buyer").await, ["t@4"]);
}

async fn deletions_are_tombstones_with_a_version(new: impl AsyncFn() -> Store) {
    let store = new().await;
    store.apply(&[write("d", 1, &["p:x"])]).await.unwrap();
    store.apply(&[delete("d", 2)]).await.unwrap();
    assert_eq!(current(&store, "d").await, None);
    assert!(listed(&store, "p:x").await.is_empty());
    let outcome = store.apply(&[write("d", 1, &["p:x"])]).await.unwrap();
    assert_eq!(outcome.stale, 1);
    assert_eq!(current(&store, "d").await, None);
    assert!(listed(&store, "p:x").await.is_empty());
    store.apply(&[write("d", 3, &["p:x"])]).await.unwrap();
    assert_eq!(current(&store, "d").await, Some("d@3".into()));
    assert_eq!(listed(&store, "p:x").await, ["d@3"]);
    // A deletion of a record never seen still blocks its older versions.
    store
        .apply(&[delete("ghost", 4), write("ghost", 3, &["p:x"])])
        .await
        .unwrap();
    assert_eq!(current(&store, "ghost").await, None);
}

async fn listings_are_ordered_by_record_key(new: impl AsyncFn() -> Store) {
    let store = new().await;
    store
        .apply(&[
            write("b", 1, &["p:o"]),
            write("c", 1, &["p:o"]),
            write("a", 1, &["p:o"]),
        ])
        .await
        .unwrap();
    assert_eq!(listed(&store, "p:o").await, ["a@1", "b@1", "c@1"]);
}

async fn positions_only_move_forward(new: impl AsyncFn() -> Store) {
    let store = new().await;
    let at = |offset: i64| Position {
        topic: "t".into(),
        partition: 2,
        offset,
    };
    assert_eq!(position(&store, "t", 2).await, None);
    store.advance_positions("g1", &[at(10)]).await.unwrap();
    store.advance_positions("g1", &[at(4)]).await.unwrap();
    assert_eq!(position(&store, "t", 2).await, Some(10));
    store
        .advance_positions(
            "g1",
            &[
                at(11),
                Position {
                    topic: "t".into(),
                    partition: 3,
                    offset: 0,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(position(&store, "t", 2).await, Some(11));
    assert_eq!(position(&store, "t", 3).await, Some(0));
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::redis_store).await;
                }
            )*
            pub(super) mod bare {
                #[tokio::test]
                async fn a_store_moves_through_its_generations() {
                    super::super::a_store_moves_through_its_generations(super::super::bare_redis_store).await;
                }
            }
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::memory_store).await;
                }
            )*
            pub(super) mod bare {
                #[tokio::test]
                async fn a_store_moves_through_its_generations() {
                    super::super::a_store_moves_through_its_generations(super::super::bare_memory_store).await;
                }
            }
        }
    };
}

contract!(
    highest_version_wins_in_every_order,
    a_retry_after_step_one_converges_to_an_uninterrupted_write,
    tombstones_carry_the_version_that_dropped_the_subject,
    stale_writes_are_counted_and_change_nothing,
    subjects_follow_the_latest_version,
    deletions_are_tombstones_with_a_version,
    listings_are_ordered_by_record_key,
    positions_only_move_forward,
    a_lookup_reads_only_the_asked_types_of_live_records,
    the_contribution_summary_follows_every_correction,
);

/// The highest offset the store's generation materialized in partition `p` of `topic`.
async fn position(store: &Store, topic: &str, p: i32) -> Option<i64> {
    let meta = store.meta().await.unwrap()?;
    meta.positions.get(&position_field(topic, p)).copied()
}

/// Every entry under the subjects a test touches, tombstones included, as (subject,
/// record key, version, live).
async fn entries(store: &Store, subjects: &[&str]) -> Vec<(String, String, u64, bool)> {
    let mut all = Vec::new();
    for name in subjects {
        for SubjectEntry {
            key,
            version,
            event,
        } in store.subject_entries(&subject(name)).await.unwrap()
        {
            all.push((
                (*name).to_owned(),
                key.to_string(),
                version,
                event.is_some(),
            ));
        }
    }
    all
}

/// A batch carrying two versions of one record whose step two never ran (a Redis
/// timeout, a crash) is retried: the result is exactly what one uninterrupted write
/// leaves, including the tombstone under the subject of the version before the batch.
async fn a_retry_after_step_one_converges_to_an_uninterrupted_write(new: impl AsyncFn() -> Store) {
    let interrupted = new().await;
    let uninterrupted = new().await;
    let batch = [
        write("t", 2, &["u:1", "p:a"]),
        write("t", 3, &["u:1", "p:b"]),
    ];
    for store in [&interrupted, &uninterrupted] {
        store
            .apply(&[write("t", 1, &["u:1", "p:x"])])
            .await
            .unwrap();
    }
    interrupted.write_entries(&batch).await.unwrap();
    let outcome = interrupted.apply(&batch).await.unwrap();
    assert_eq!(
        outcome,
        ApplyOutcome {
            applied: 1,
            stale: 1
        },
        "v2 is stale on the retry"
    );
    uninterrupted.apply(&batch).await.unwrap();

    let subjects = ["u:1", "p:x", "p:a", "p:b"];
    let expected: Vec<(String, String, u64, bool)> = [
        ("u:1", 3, true),
        ("p:x", 3, false),
        ("p:a", 3, false),
        ("p:b", 3, true),
    ]
    .into_iter()
    .map(|(s, v, live)| (s.to_owned(), key("t").to_string(), v, live))
    .collect();
    assert_eq!(entries(&uninterrupted, &subjects).await, expected);
    assert_eq!(entries(&interrupted, &subjects).await, expected);
    assert!(
        listed(&interrupted, "p:x").await.is_empty(),
        "the sold flat left its seller"
    );
    assert_eq!(current(&interrupted, "t").await, Some("t@3".into()));
}

/// Tombstones carry the version that dropped the subject, so a late copy of an older
/// version (another replica's delayed step two) cannot bring a listing back.
async fn tombstones_carry_the_version_that_dropped_the_subject(new: impl AsyncFn() -> Store) {
    let store = new().await;
    store.apply(&[write("t", 1, &["p:a"])]).await.unwrap();
    let v2 = [write("t", 2, &["p:b"])];
    let v3 = [write("t", 3, &["p:c"])];
    // A replica writes the entry of v2 and stalls before step two; v3 lands meanwhile.
    let stalled = store.write_entries(&v2).await.unwrap();
    store.apply(&v3).await.unwrap();
    store.write_subject_copies(&v2, &stalled).await.unwrap();
    assert_eq!(
        entries(&store, &["p:a", "p:b", "p:c"]).await,
        [
            ("p:a".to_owned(), key("t").to_string(), 3, false),
            ("p:b".to_owned(), key("t").to_string(), 3, false),
            ("p:c".to_owned(), key("t").to_string(), 3, true),
        ]
    );
}

/// A store starts with no generation and answers no lookup; a generation is cleared,
/// rebuilt up to its targets, then ready; positions belong to one generation.
async fn a_store_moves_through_its_generations(new: impl AsyncFn() -> Store) {
    let store = new().await;
    let not_ready = |r: Result<Option<StoredRecord>, StoreError>| match r {
        Err(StoreError::NotReady(why)) => why,
        other => panic!("expected not ready, got {other:?}"),
    };
    assert!(store.meta().await.unwrap().is_none());
    assert_eq!(not_ready(store.get(&key("a")).await), NotReady::Lost);

    assert!(store.replace_generation(None, "g1", "src").await.unwrap());
    assert!(
        !store.replace_generation(None, "g2", "src").await.unwrap(),
        "only one wins"
    );
    let meta = store.meta().await.unwrap().unwrap();
    assert_eq!(
        (meta.generation.as_str(), meta.state),
        ("g1", StoreState::Clearing)
    );
    assert_eq!(meta.layout, LAYOUT, "a generation names its key layout");
    assert_eq!(not_ready(store.get(&key("a")).await), NotReady::Rebuilding);

    // Something written before (a replica of the old generation) is cleared.
    store.apply(&[write("old", 1, &["p:o"])]).await.unwrap();
    assert!(store.clear("g1").await.unwrap() >= 2);
    let at = |partition: i32, offset: i64| Position {
        topic: "t".into(),
        partition,
        offset,
    };
    assert!(
        store
            .start_rebuild("g1", &[at(0, 5), at(1, 0)])
            .await
            .unwrap()
    );
    assert!(
        !store.start_rebuild("g1", &[]).await.unwrap(),
        "no longer clearing"
    );
    assert_eq!(
        store.meta().await.unwrap().unwrap().state,
        StoreState::Rebuilding
    );
    assert_eq!(store.clear("g1").await.unwrap(), 0, "clearing is over");

    store.apply(&[write("a", 1, &["p:o"])]).await.unwrap();
    store
        .advance_positions("g1", &[at(0, 3), at(1, 0)])
        .await
        .unwrap();
    let meta = store.meta().await.unwrap().unwrap();
    assert_eq!(meta.state, StoreState::Rebuilding);
    assert_eq!(meta.progress(), (7, 5));
    store.advance_positions("g1", &[at(0, 5)]).await.unwrap();
    assert_eq!(
        store.meta().await.unwrap().unwrap().state,
        StoreState::Ready
    );
    assert_eq!(current(&store, "a").await, Some("a@1".into()));
    assert!(current(&store, "old").await.is_none());

    // Another generation starts (an operator's rebuild): the old one's writer is told.
    assert!(
        store
            .replace_generation(Some("g1"), "g2", "src")
            .await
            .unwrap()
    );
    assert!(matches!(
        store.advance_positions("g1", &[at(0, 6)]).await,
        Err(StoreError::GenerationChanged)
    ));
    let meta = store.meta().await.unwrap().unwrap();
    assert!(
        meta.positions.is_empty(),
        "positions belong to their generation"
    );
    assert_eq!(position(&store, "t", 0).await, None);
}
