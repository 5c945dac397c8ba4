//! The per-person access index against the real broker and Redis: it follows the trail
//! (newest first, retention, limit, trimming, skipping what it cannot use) and the record
//! store's generation.

use std::time::{Duration, SystemTime};

use govlink::audit::{AccessIndex, AccessIndexer, Hash, entry_hash};
use govlink::domain::ResidentId;
use govlink::kafka::Brokers;
use govlink::kafka::Topics;
use govlink::proto::audit_body::Kind;
use govlink::proto::{AccessDecision, AuditBody, AuditEntry, PersonAccess};
use govlink::redis_link::RedisLink;
use govlink::resolver::store::{RedisStore, Store, StoreState};
use prost::Message as _;
use redis::AsyncCommands;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Writer, access, audit_topics, publisher, republish, soon};
use crate::helpers::*;

/// A store under `prefix` in generation `generation`, ready (nothing to rebuild).
async fn ready_store(store: &Store, seen: Option<&str>, generation: &str) {
    assert!(
        store
            .replace_generation(seen, generation, "audit-test")
            .await
            .unwrap()
    );
    store.clear(generation).await.unwrap();
    assert!(store.start_rebuild(generation, &[]).await.unwrap());
    assert_eq!(
        store.meta().await.unwrap().unwrap().state,
        StoreState::Ready
    );
}

/// Lists `person`'s accesses until there are `count` (the indexer runs on its own).
async fn list_when(index: &AccessIndex, person: &str, count: usize) -> Vec<PersonAccess> {
    let person = ResidentId::parse(person).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = index
            .list(&person, 100, Duration::from_secs(7 * 86_400))
            .await
            .unwrap();
        if list.len() >= count {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} accesses indexed after 60 s",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn purposes(list: &[PersonAccess]) -> Vec<&str> {
    list.iter().map(|a| a.purpose.as_str()).collect()
}

/// A two-entry chain written by hand: an access to `old` 10 days ago, then one to `recent`
/// 2 hours ago (same key: the second is read after the first).
async fn hand_written_chain(topics: &Topics, old: &str, recent: &str) {
    let mut previous: Hash = [0; 32];
    let mut messages = Vec::new();
    for (sequence, (person, age)) in [(old, 10 * 86_400), (recent, 2 * 3600)]
        .into_iter()
        .enumerate()
    {
        let body = AuditBody {
            at: Some((SystemTime::now() - Duration::from_secs(age)).into()),
            kind: Some(Kind::Access(access(
                &format!("by-hand-{sequence}"),
                &[person.to_owned()],
                AccessDecision::Allowed,
            ))),
        }
        .encode_to_vec();
        let hash = entry_hash("by-hand", sequence as u64, &previous, &body);
        let entry = AuditEntry {
            chain_id: "by-hand".into(),
            sequence: sequence as u64,
            previous_hash: previous.to_vec(),
            hash: hash.to_vec(),
            body,
        };
        previous = hash;
        messages.push((b"by-hand".to_vec(), entry.encode_to_vec()));
    }
    republish(&topics.audit(), &messages).await;
}

#[tokio::test]
async fn the_access_index_follows_the_trail_and_the_store_generation() {
    let settings = test_settings();
    let prefix = settings.redis_prefix.clone();
    let topics = audit_topics(&settings).await;
    let store = Store::Redis(
        RedisStore::connect(&RedisLink::new(redis_url()), &prefix)
            .await
            .unwrap(),
    );
    ready_store(&store, None, "g1").await;
    let index = AccessIndex::redis(&RedisLink::new(redis_url()), &prefix)
        .await
        .unwrap();
    let (dan, eve) = (chen(), person("44030519750101011"));

    // Out of retention already: trimmed when Alice's set is next written.
    let alice_key = format!("{prefix}acc:{{p:{}}}", alice());
    let mut redis = redis().await;
    let stale_ms = (SystemTime::now() - Duration::from_secs(8 * 86_400))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let _: () = redis.zadd(&alice_key, "stale", stale_ms).await.unwrap();

    let publisher = publisher(Duration::from_secs(30));
    let writer = Writer::start(publisher.clone(), &topics).await;
    // Not an audit entry, right in the chain's partition: skipped, counted, and nothing
    // after it is held up.
    publisher
        .publish(
            &topics.audit(),
            writer.log.chain_id().as_bytes(),
            b"\xff\xffjunk",
            &[],
            soon(),
        )
        .await
        .unwrap();
    let recorded = [
        access("p1", &[alice()], AccessDecision::Allowed),
        access("p2", &[alice(), bea()], AccessDecision::Allowed),
        access("p3", &[bea()], AccessDecision::Denied),
        access("p4", &[alice()], AccessDecision::Denied),
    ];
    for a in recorded {
        writer.log.record(a, soon()).await.unwrap();
    }
    hand_written_chain(&topics, &dan, &eve).await;

    let stop = CancellationToken::new();
    let indexer = AccessIndexer::new(
        &Brokers::plaintext(kafka()),
        &settings.consumer_group,
        &topics,
        index.clone(),
        store.clone(),
        Duration::from_secs(7 * 86_400),
    );
    let indexing = tokio::spawn(indexer.run(stop.clone()));

    let alice_list = list_when(&index, &alice(), 3).await;
    assert_eq!(purposes(&alice_list), ["p4", "p2", "p1"], "newest first");
    assert_eq!(alice_list[0].decision, AccessDecision::Denied as i32);
    assert_eq!(alice_list[1].sections, ["p2-section"]);
    assert_eq!(alice_list[1].chain_id, writer.log.chain_id());
    assert_eq!(alice_list[1].sequence, 2, "the start is 0, p1 is 1");
    assert_eq!(purposes(&list_when(&index, &bea(), 2).await), ["p3", "p2"]);
    let alice_id = ResidentId::parse(&alice()).unwrap();
    let week = Duration::from_secs(7 * 86_400);
    assert_eq!(
        purposes(&index.list(&alice_id, 2, week).await.unwrap()),
        ["p4", "p2"]
    );
    let stale: Option<f64> = redis.zscore(&alice_key, "stale").await.unwrap();
    assert_eq!(stale, None, "trimmed when the set was written");
    let ttl: i64 = redis.pttl(&alice_key).await.unwrap();
    assert!(ttl > 6 * 86_400_000, "expires with its newest entry: {ttl}");

    // Eve's access, 2 hours old, came after Dan's 10-day-old one on the same partition.
    let eve_id = ResidentId::parse(&eve).unwrap();
    assert_eq!(list_when(&index, &eve, 1).await.len(), 1);
    assert!(
        index
            .list(&eve_id, 10, Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    let dan_id = ResidentId::parse(&dan).unwrap();
    assert!(
        index
            .list(&dan_id, 10, Duration::MAX)
            .await
            .unwrap()
            .is_empty(),
        "never indexed"
    );

    // A flush and rebuild of the store takes the index with it; the indexer notices the
    // new generation and indexes the trail again, then keeps up.
    assert!(
        store
            .replace_generation(Some("g1"), "g2", "audit-test")
            .await
            .unwrap()
    );
    store.clear("g2").await.unwrap();
    let exists: bool = redis.exists(&alice_key).await.unwrap();
    assert!(!exists, "the clear deleted the index");
    assert!(store.start_rebuild("g2", &[]).await.unwrap());
    assert_eq!(
        purposes(&list_when(&index, &alice(), 3).await),
        ["p4", "p2", "p1"]
    );
    writer
        .log
        .record(access("p5", &[alice()], AccessDecision::Allowed), soon())
        .await
        .unwrap();
    assert_eq!(
        purposes(&list_when(&index, &alice(), 4).await),
        ["p5", "p4", "p2", "p1"]
    );

    stop.cancel();
    indexing.await.unwrap().expect("the indexer stops cleanly");
    writer.close().await;
}
