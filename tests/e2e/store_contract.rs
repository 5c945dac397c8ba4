//! The store contract, run against Redis and against the in-memory store of `dev`: both
//! must behave the same.

use govlink::proto::Position;
use govlink::records::{RecordKey, RecordType, SubjectKey};
use govlink::resolver::store::{ApplyOutcome, Change, MemoryStore, RecordWrite, RedisStore, Store};

use crate::helpers::*;

async fn redis_store() -> Store {
    let prefix = format!("govlink-test:{}:", unique("store"));
    Store::Redis(
        RedisStore::connect(&redis_url(), &prefix)
            .await
            .expect("redis store"),
    )
}

fn memory_store() -> Store {
    Store::Memory(MemoryStore::new())
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
            event: event_text(id, version),
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
        .map(|e| String::from_utf8(e).unwrap())
        .collect()
}

async fn current(store: &Store, id: &str) -> Option<String> {
    store
        .get(&key(id))
        .await
        .unwrap()
        .map(|e| String::from_utf8(e).unwrap())
}

async fn highest_version_wins_in_every_order(store: Store) {
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

async fn stale_writes_are_counted_and_change_nothing(store: Store) {
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

async fn subjects_follow_the_latest_version(store: Store) {
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
    // Replaying version 2 (a crash between the two steps) redoes the subject copies.
    store
        .apply(&[write("t", 2, &["u:1", "p:buyer"])])
        .await
        .unwrap();
    assert!(listed(&store, "p:seller").await.is_empty());
    assert_eq!(listed(&store, "p:buyer").await, ["t@2"]);
    // Back to the first owner at version 3.
    store
        .apply(&[write("t", 3, &["u:1", "p:seller"])])
        .await
        .unwrap();
    assert_eq!(listed(&store, "p:seller").await, ["t@3"]);
    assert!(listed(&store, "p:buyer").await.is_empty());
}

async fn deletions_are_tombstones_with_a_version(store: Store) {
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

async fn listings_are_ordered_by_record_key(store: Store) {
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

async fn positions_only_move_forward(store: Store) {
    let at = |offset: i64| Position {
        topic: "t".into(),
        partition: 2,
        offset,
    };
    assert_eq!(store.position("t", 2).await.unwrap(), None);
    store.advance_positions(&[at(10)]).await.unwrap();
    store.advance_positions(&[at(4)]).await.unwrap();
    assert_eq!(store.position("t", 2).await.unwrap(), Some(10));
    store
        .advance_positions(&[
            at(11),
            Position {
                topic: "t".into(),
                partition: 3,
                offset: 0,
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.position("t", 2).await.unwrap(), Some(11));
    assert_eq!(store.position("t", 3).await.unwrap(), Some(0));
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::redis_store().await).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::memory_store()).await;
                }
            )*
        }
    };
}

contract!(
    highest_version_wins_in_every_order,
    stale_writes_are_counted_and_change_nothing,
    subjects_follow_the_latest_version,
    deletions_are_tombstones_with_a_version,
    listings_are_ordered_by_record_key,
    positions_only_move_forward,
);
