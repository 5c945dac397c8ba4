//! The per-person access index against the real broker and Redis: it follows the trail
//! (newest first, retention, limit, trimming, skipping what it cannot use) and the record
//! store's generation.

use std::time::{Duration, SystemTime};

use govlink::audit::{Hash, entry_hash};
use govlink::domain::ResidentId;
use govlink::kafka::Brokers;
use govlink::kafka::Topics;
use govlink::proto::audit_body::Kind;
use govlink::proto::{AccessDecision, AuditBody, AuditEntry, ChainStart, PersonAccess};
use govlink::redis_link::RedisLink;
use govlink::resolver::access::{AccessIndex, AccessIndexer, ChainTrust, IndexerConfig};
use govlink::resolver::store::{RedisStore, Store, StoreState};
use prost::Message as _;
use redis::AsyncCommands;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Writer, access, audit_topics, publisher, republish, soon};
use crate::helpers::*;

/// A store under `prefix` in generation `generation`, ready (nothing to rebuild).
pub(super) async fn ready_store(store: &Store, seen: Option<&str>, generation: &str) {
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
pub(super) async fn list_when(
    index: &AccessIndex,
    person: &str,
    count: usize,
) -> Vec<PersonAccess> {
    let person = ResidentId::parse(person).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = index
            .page(&person, None, 100, Duration::from_secs(7 * 86_400))
            .await
            .unwrap()
            .accesses;
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

/// An access member of the index's sorted set, at `at_ms`: the key (time, kind 0, chain
/// id by length, sequence) then the access.
fn stale_member(at_ms: u64) -> Vec<u8> {
    let mut member = at_ms.to_be_bytes().to_vec();
    member.extend_from_slice(&[0, 5]);
    member.extend_from_slice(b"stale");
    member.extend_from_slice(&1u64.to_be_bytes());
    member.extend_from_slice(&PersonAccess::default().encode_to_vec());
    member
}

pub(super) fn purposes(list: &[PersonAccess]) -> Vec<&str> {
    list.iter().map(|a| a.purpose.as_str()).collect()
}

/// A chain written by hand: its (unsigned) start, an access to `old` 10 days ago, then one
/// to `recent` 2 hours ago (same key: each is read after the one before).
async fn hand_written_chain(topics: &Topics, old: &str, recent: &str) {
    let mut previous: Hash = [0; 32];
    let mut messages = Vec::new();
    let accesses = [(old, 10 * 86_400), (recent, 2 * 3600)]
        .into_iter()
        .enumerate()
        .map(|(i, (person, age))| AuditBody {
            at: Some((SystemTime::now() - Duration::from_secs(age)).into()),
            kind: Some(Kind::Access(access(
                &format!("by-hand-{i}"),
                &[person.to_owned()],
                AccessDecision::Allowed,
            ))),
        });
    let start = AuditBody {
        at: Some((SystemTime::now() - Duration::from_secs(11 * 86_400)).into()),
        kind: Some(Kind::Start(ChainStart::default())),
    };
    for (sequence, body) in std::iter::once(start).chain(accesses).enumerate() {
        let body = body.encode_to_vec();
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
        .as_millis() as u64;
    let _: () = redis
        .zadd(&alice_key, stale_member(stale_ms), 0)
        .await
        .unwrap();

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
        IndexerConfig {
            brokers: Brokers::plaintext(kafka()),
            group_prefix: settings.consumer_group.clone(),
            retention: Duration::from_secs(7 * 86_400),
            trust: ChainTrust::Unsigned,
        },
        &topics,
        index.clone(),
        store.clone(),
        govlink::telemetry::Metrics::new(),
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
    let first = index.page(&alice_id, None, 2, week).await.unwrap();
    assert_eq!(purposes(&first.accesses), ["p4", "p2"]);
    let rest = index
        .page(&alice_id, first.next.as_ref(), 2, week)
        .await
        .unwrap();
    assert_eq!((purposes(&rest.accesses), rest.next), (vec!["p1"], None));
    let stale: Option<f64> = redis
        .zscore(&alice_key, stale_member(stale_ms))
        .await
        .unwrap();
    assert_eq!(stale, None, "trimmed when the set was written");
    let ttl: i64 = redis.pttl(&alice_key).await.unwrap();
    assert!(ttl > 6 * 86_400_000, "expires with its newest entry: {ttl}");

    // Eve's access, 2 hours old, came after Dan's 10-day-old one on the same partition.
    let eve_id = ResidentId::parse(&eve).unwrap();
    assert_eq!(list_when(&index, &eve, 1).await.len(), 1);
    assert!(
        index
            .page(&eve_id, None, 10, Duration::from_secs(3600))
            .await
            .unwrap()
            .accesses
            .is_empty()
    );
    let dan_id = ResidentId::parse(&dan).unwrap();
    assert!(
        index
            .page(&dan_id, None, 10, Duration::MAX)
            .await
            .unwrap()
            .accesses
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

/// A refusal of Alice's profile to housing/archive, for `reason`.
fn refused(reason: &str) -> govlink::proto::DataAccess {
    govlink::proto::DataAccess {
        requester_service: "archive".into(),
        sections: Vec::new(),
        reason: reason.into(),
        ..access("property-transfer", &[alice()], AccessDecision::Denied)
    }
}

/// What a list shows of each entry: the purpose of an access, the reason of a refusal,
/// and the count.
fn shown(list: &[PersonAccess]) -> Vec<(&str, u64)> {
    list.iter()
        .map(|a| {
            let what = if a.reason.is_empty() {
                &a.purpose
            } else {
                &a.reason
            };
            (what.as_str(), a.count)
        })
        .collect()
}

/// Two indexers (two consumer groups) index the same trail into the same Redis at once,
/// as replicas replaying after a rebalance would: refusals are collapsed and counted
/// exactly once, the person's part keeps to its bounds and says so, and the pages walk
/// it all once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_collapsed_counted_once_and_bounded_in_redis() {
    let settings = test_settings();
    let prefix = settings.redis_prefix.clone();
    let topics = audit_topics(&settings).await;
    let store = Store::Redis(
        RedisStore::connect(&RedisLink::new(redis_url()), &prefix)
            .await
            .unwrap(),
    );
    ready_store(&store, None, "g1").await;
    let bounds = govlink::resolver::access::IndexBounds {
        accesses: 5,
        refusal_groups: 2,
    };
    let index = AccessIndex::redis(&RedisLink::new(redis_url()), &prefix)
        .await
        .unwrap()
        .with_bounds(bounds);

    let writer = Writer::start(publisher(Duration::from_secs(30)), &topics).await;
    for i in 0..6 {
        let allowed = access(&format!("p{i}"), &[alice()], AccessDecision::Allowed);
        writer.log.record(allowed, soon()).await.unwrap();
    }
    writer.log.record(refused("r-old"), soon()).await.unwrap();
    const FLOOD: u64 = 300;
    for _ in 0..FLOOD {
        writer.log.record(refused("flood"), soon()).await.unwrap();
    }
    writer.log.record(refused("r-new"), soon()).await.unwrap();

    let indexer = |group: &str| {
        AccessIndexer::new(
            IndexerConfig {
                brokers: Brokers::plaintext(kafka()),
                group_prefix: format!("{}-{group}", settings.consumer_group),
                retention: Duration::from_secs(7 * 86_400),
                trust: ChainTrust::Unsigned,
            },
            &topics,
            index.clone(),
            store.clone(),
            govlink::telemetry::Metrics::new(),
        )
    };
    let stop = CancellationToken::new();
    let both = [indexer("one"), indexer("two")].map(|i| tokio::spawn(i.run(stop.clone())));
    let alice_id = ResidentId::parse(&alice()).unwrap();
    let week = Duration::from_secs(7 * 86_400);
    let listed_as = |expected: Vec<(&'static str, u64)>| {
        let (index, alice_id) = (index.clone(), alice_id.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let page = index.page(&alice_id, None, 100, week).await.unwrap();
                if shown(&page.accesses) == expected {
                    return page;
                }
                assert!(
                    Instant::now() < deadline,
                    "after 60 s: {:?}",
                    shown(&page.accesses)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let page = listed_as(vec![
        ("r-new", 1),
        ("flood", FLOOD),
        ("p5", 1),
        ("p4", 1),
        ("p3", 1),
        ("p2", 1),
        ("p1", 1),
    ])
    .await;
    stop.cancel();
    for task in both {
        task.await.unwrap().expect("the indexer stops cleanly");
    }

    // However far the second got, once it alone has indexed an access written after
    // everything, it went through the whole trail: still nothing counted twice.
    writer
        .log
        .record(access("p6", &[alice()], AccessDecision::Allowed), soon())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let second = tokio::spawn(indexer("two").run(stop.clone()));
    listed_as(vec![
        ("p6", 1),
        ("r-new", 1),
        ("flood", FLOOD),
        ("p5", 1),
        ("p4", 1),
        ("p3", 1),
        ("p2", 1),
    ])
    .await;
    stop.cancel();
    second.await.unwrap().expect("the indexer stops cleanly");

    // p0 and the oldest kind of refusal were dropped by the bounds (then p1): the list
    // said so, and from when it was complete (the newest dropped: r-old, after p0).
    assert_eq!(page.next, None);
    assert!(page.dropped);
    let flood = &page.accesses[1];
    assert!(flood.at.unwrap().seconds <= flood.last_at.unwrap().seconds);
    let complete = prost_types::Timestamp::from(page.complete_since);
    assert!(complete.seconds <= flood.at.unwrap().seconds);
    assert!(complete.seconds >= page.accesses[2].at.unwrap().seconds);

    let now = index.page(&alice_id, None, 100, week).await.unwrap();
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = index
            .page(&alice_id, after.as_ref(), 2, week)
            .await
            .unwrap();
        walked.extend(page.accesses);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        walked, now.accesses,
        "the pages hold the list once, in order"
    );

    let mut redis = redis().await;
    let groups_key = format!("{prefix}acd:{{p:{}}}", alice());
    let groups: usize = redis
        .zcard(format!("{prefix}acg:{{p:{}}}", alice()))
        .await
        .unwrap();
    assert_eq!(groups, 2, "a flood costs one group");
    let fields: usize = redis.hlen(&groups_key).await.unwrap();
    assert_eq!(fields, 2 * 7, "a group is 7 fields, whatever its count");
    let ttl: i64 = redis.pttl(&groups_key).await.unwrap();
    assert!(ttl > 6 * 86_400_000, "expires with its newest entry: {ttl}");
    writer.close().await;
}

/// Replicas of the resolver index into the same Redis at once, each chain in order but
/// overlapping (two indexers per chain, as after a rebalance): every refusal of the same
/// kind lands in one group, and each is counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexers_counting_into_one_group_at_once_count_each_refusal_once() {
    const CHAINS: u64 = 8;
    const PER_CHAIN: u64 = 100;
    let prefix = format!("govlink-test:{}:", unique("groups"));
    let index = AccessIndex::redis(&RedisLink::new(redis_url()), &prefix)
        .await
        .unwrap();
    let now = SystemTime::now();
    let chain = |c: u64| -> Vec<(AuditEntry, AuditBody)> {
        (1..=PER_CHAIN)
            .map(|sequence| {
                let body = AuditBody {
                    at: Some((now - Duration::from_millis(c * PER_CHAIN + sequence)).into()),
                    kind: Some(Kind::Access(refused("flood"))),
                };
                let entry = AuditEntry {
                    chain_id: format!("chain-{c}"),
                    sequence,
                    body: body.encode_to_vec(),
                    ..AuditEntry::default()
                };
                (entry, body)
            })
            .collect()
    };
    let week = Duration::from_secs(7 * 86_400);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CHAINS {
        for _ in 0..2 {
            let (index, entries) = (index.clone(), chain(c));
            tasks.spawn(async move {
                for batch in entries.chunks(4) {
                    index.index_entries(batch, week).await.unwrap();
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let alice_id = ResidentId::parse(&alice()).unwrap();
    let page = index.page(&alice_id, None, 100, week).await.unwrap();
    assert_eq!(shown(&page.accesses), [("flood", CHAINS * PER_CHAIN)]);
    let flood = &page.accesses[0];
    assert_eq!(
        (flood.chain_id.as_str(), flood.sequence),
        ("chain-7", PER_CHAIN),
        "the first refusal"
    );
}

/// An audit entry of `chain` at `sequence`, `age` ago (its hash is not checked here).
fn entry_of(
    chain: &str,
    sequence: u64,
    age: Duration,
    access: govlink::proto::DataAccess,
) -> (AuditEntry, AuditBody) {
    let body = AuditBody {
        at: Some((SystemTime::now() - age).into()),
        kind: Some(Kind::Access(access)),
    };
    let entry = AuditEntry {
        chain_id: chain.into(),
        sequence,
        body: body.encode_to_vec(),
        ..AuditEntry::default()
    };
    (entry, body)
}

/// The same list in memory and in Redis: accesses of one millisecond and groups between
/// them walk in pages once each, whatever the page size; a group stays while its latest
/// refusal is within the retention, at its first refusal's place.
#[tokio::test]
async fn both_indexes_page_and_keep_groups_alike() {
    let prefix = format!("govlink-test:{}:", unique("pages"));
    let redis_index = AccessIndex::redis(&RedisLink::new(redis_url()), &prefix)
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    let day = 24 * hour;
    let mut entries = Vec::new();
    let same = Duration::from_secs(600);
    for sequence in 1..=5 {
        let allowed = access(
            &format!("same-{sequence}"),
            &[alice()],
            AccessDecision::Allowed,
        );
        entries.push(entry_of("c1", sequence, same, allowed));
    }
    for (sequence, reason) in (6..).zip(["a", "b", "c", "a", "b", "c"]) {
        let age = Duration::from_secs(100 * sequence);
        entries.push(entry_of("c1", sequence, age, refused(reason)));
    }
    entries.push(entry_of("c2", 1, 10 * day, refused("old and recent")));
    entries.push(entry_of("c2", 2, hour, refused("old and recent")));
    entries.push(entry_of("c2", 3, 8 * day, refused("old only")));
    let alice_id = ResidentId::parse(&alice()).unwrap();
    let week = 7 * day;
    let mut lists = Vec::new();
    for index in [AccessIndex::memory(), redis_index] {
        index.index_entries(&entries, 30 * day).await.unwrap();
        let whole = index.page(&alice_id, None, 100, week).await.unwrap();
        assert_eq!(whole.next, None);
        for limit in 1..=4 {
            let (mut walked, mut after) = (Vec::new(), None);
            loop {
                let page = index
                    .page(&alice_id, after.as_ref(), limit, week)
                    .await
                    .unwrap();
                walked.extend(page.accesses);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(walked, whole.accesses, "limit {limit}");
        }
        lists.push(whole.accesses);
    }
    assert_eq!(lists[0], lists[1], "memory and Redis agree");
    let shown = shown(&lists[1]);
    assert_eq!(shown.len(), 5 + 3 + 1, "{shown:?}");
    assert_eq!(
        shown.last(),
        Some(&("old and recent", 2)),
        "at its first refusal"
    );
    assert!(!shown.iter().any(|(what, _)| *what == "old only"));
    assert_eq!(shown.iter().filter(|(what, _)| *what == "a").count(), 1);
}
