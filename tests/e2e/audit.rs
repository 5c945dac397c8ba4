//! The audit trail against the real broker and Redis: a chain written concurrently
//! verifies clean with `govlink audit verify`, copies of it tampered with four ways do
//! not, a failed delivery is declared rather than hidden, and the per-person access index
//! follows the trail and the store's generation.

use std::time::{Duration, SystemTime};

use govlink::audit::{AccessIndex, AccessIndexer, AuditLog, Hash, entry_hash, topic_specs};
use govlink::config::Settings;
use govlink::domain::ResidentId;
use govlink::kafka::{Publisher, Topics, ensure_topics};
use govlink::proto::audit_body::Kind;
use govlink::proto::{
    AccessDecision, Agency, AuditBody, AuditCheckpoint, AuditEntry, DataAccess, PersonAccess,
};
use govlink::resolver::store::{RedisStore, Store, StoreState};
use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use redis::AsyncCommands;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// Partitions of the audit topics in these tests.
const PARTITIONS: i32 = 3;

async fn audit_topics(settings: &Settings) -> Topics {
    let topics = Topics::new(settings.topic_prefix.clone());
    ensure_topics(
        &kafka(),
        &topic_specs(&topics, PARTITIONS, 1),
        Duration::from_secs(30),
    )
    .await
    .expect("audit topics are created");
    topics
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn access(purpose: &str, people: &[String], decision: AccessDecision) -> DataAccess {
    DataAccess {
        requester_agency: Agency::Housing as i32,
        requester_service: "transfer-window".into(),
        purpose: purpose.into(),
        method: "GetPersonProfile".into(),
        person_ids: people.to_vec(),
        sections: vec![format!("{purpose}-section")],
        decision: decision as i32,
        ..DataAccess::default()
    }
}

/// A writer of its own: its log, and its checkpoint task (every 100 ms).
struct Writer {
    log: AuditLog,
    stop: CancellationToken,
    checkpoints: tokio::task::JoinHandle<Result<(), String>>,
}

impl Writer {
    async fn start(publisher: Publisher, topics: &Topics) -> Writer {
        let log = AuditLog::start(publisher, topics, "resolver")
            .await
            .expect("the chain starts");
        let stop = CancellationToken::new();
        let checkpoints = tokio::spawn(
            log.clone()
                .run_checkpoints(Duration::from_millis(100), stop.clone()),
        );
        Writer {
            log,
            stop,
            checkpoints,
        }
    }

    /// Stops the checkpoint task, which writes the closed checkpoint.
    async fn close(self) {
        self.stop.cancel();
        self.checkpoints
            .await
            .unwrap()
            .expect("the closed checkpoint is written");
    }
}

fn publisher(message_timeout: Duration) -> Publisher {
    Publisher::new(&kafka(), message_timeout, 10_000).expect("producer")
}

/// `govlink audit verify ARGS` on `settings`' topics: whether it succeeded, and its
/// output (stdout, then stderr).
fn verify(settings: &Settings, args: &[&str]) -> (bool, String) {
    let output = govlink_command(settings, "audit")
        .arg("verify")
        .args(args)
        .output()
        .expect("govlink audit verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every message of `topic` (all partitions, from the beginning) until `done` says so.
async fn read_until(topic: &str, done: impl Fn(&[OwnedMessage]) -> bool) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", unique("audit-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&messages) {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => messages.push(m.detach()),
            Ok(Err(e)) => panic!("consume error: {e}"),
            Err(_) => panic!("{topic}: only {} messages after 60 s", messages.len()),
        }
    }
    messages
}

/// Publishes `(key, payload)`s in order with a plain idempotent producer (all handed
/// over at once: records of one key keep their order).
async fn republish(topic: &str, messages: &[(Vec<u8>, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let deliveries: Vec<_> = messages
        .iter()
        .map(|(key, payload)| {
            producer
                .send_result(FutureRecord::to(topic).key(key).payload(payload))
                .map_err(|(e, _)| e)
                .expect("queued")
        })
        .collect();
    for delivery in deliveries {
        delivery.await.unwrap().expect("republished");
    }
}

fn key_payload(m: &OwnedMessage) -> (Vec<u8>, Vec<u8>) {
    (
        m.key().unwrap_or_default().to_vec(),
        m.payload().unwrap_or_default().to_vec(),
    )
}

/// A copy of a trail (entries, checkpoints) under a fresh prefix: its settings.
async fn copy_trail(
    entries: &[(Vec<u8>, Vec<u8>)],
    checkpoints: &[(Vec<u8>, Vec<u8>)],
) -> Settings {
    let settings = test_settings();
    let topics = audit_topics(&settings).await;
    republish(&topics.audit_checkpoints(), checkpoints).await;
    republish(&topics.audit(), entries).await;
    settings
}

#[tokio::test]
async fn a_chain_written_concurrently_verifies_clean_and_every_tampering_is_found() {
    const TASKS: usize = 16;
    const PER_TASK: usize = 25;
    let settings = test_settings();
    let topics = audit_topics(&settings).await;
    let writer = Writer::start(publisher(Duration::from_secs(30)), &topics).await;
    let chain = writer.log.chain_id();
    let mut tasks = JoinSet::new();
    for t in 0..TASKS {
        let log = writer.log.clone();
        tasks.spawn(async move {
            for i in 0..PER_TASK {
                let purpose = format!("t{t}-{i}");
                log.record(
                    access(&purpose, &[alice()], AccessDecision::Allowed),
                    soon(),
                )
                .await
                .expect("the access is recorded");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    writer.close().await;
    let last = (TASKS * PER_TASK) as u64;

    let (ok, out) = verify(&settings, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "chain {chain} writer=resolver entries={} last_seq={last}",
            last + 1
        )),
        "{out}"
    );
    assert!(out.contains("closed, verified"), "{out}");
    let (ok, json) = verify(&settings, &["--json"]);
    assert!(ok && json.contains("\"clean\": true"), "{json}");

    let entries = read_until(&topics.audit(), |m| m.len() > last as usize).await;
    let entries: Vec<(Vec<u8>, Vec<u8>)> = entries.iter().map(key_payload).collect();
    let checkpoints = read_until(&topics.audit_checkpoints(), |m| {
        m.iter().any(|m| {
            AuditCheckpoint::decode(m.payload().unwrap_or_default()).is_ok_and(|c| c.closed)
        })
    })
    .await;
    let checkpoints: Vec<(Vec<u8>, Vec<u8>)> = checkpoints.iter().map(key_payload).collect();

    // An untouched copy verifies clean.
    let copy = copy_trail(&entries, &checkpoints).await;
    let (ok, out) = verify(&copy, &[]);
    assert!(ok, "{out}");

    let k = (last / 2) as usize;
    let tampered = |kind: &str| -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut copy = entries.clone();
        match kind {
            "changed" => {
                let mut entry = AuditEntry::decode(copy[k].1.as_slice()).unwrap();
                let mut body = AuditBody::decode(entry.body.as_slice()).unwrap();
                if let Some(Kind::Access(a)) = &mut body.kind {
                    a.purpose = "nothing to see".into();
                }
                entry.body = body.encode_to_vec();
                copy[k].1 = entry.encode_to_vec();
            }
            "missing" => {
                copy.remove(k);
            }
            "reordered" => copy.swap(k, k + 1),
            "cut off" => copy.truncate(copy.len() - 5),
            _ => unreachable!(),
        }
        copy
    };
    let expectations = [
        ("changed", format!("changed entry at seq {k}")),
        ("missing", format!("missing entry at seq {k}")),
        ("reordered", format!("reordered entry at seq {k}")),
        ("cut off", format!("cut off after seq {}", last - 5)),
    ];
    for (kind, expected) in expectations {
        let copy = copy_trail(&tampered(kind), &checkpoints).await;
        let (ok, out) = verify(&copy, &[]);
        assert!(!ok, "{kind}: verify must fail\n{out}");
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("chain {chain} ")))
            .unwrap_or_else(|| panic!("{kind}: no line for the chain\n{out}"));
        assert!(
            line.contains(&format!("FAILED: {expected}")),
            "{kind}: {line}"
        );
        assert!(out.contains("1 failed"), "{kind}: {out}");
    }
}

#[tokio::test]
async fn a_failed_delivery_starts_a_new_chain_that_declares_the_old_one() {
    let settings = test_settings();
    // The topics do not exist yet: nothing the writer sends can be delivered.
    let topics = Topics::new(settings.topic_prefix.clone());
    let writer = Writer::start(publisher(Duration::from_secs(2)), &topics).await;
    let first = writer.log.chain_id();
    let refused = writer
        .log
        .record(access("lost", &[alice()], AccessDecision::Allowed), soon())
        .await;
    assert!(
        refused.is_err(),
        "an undelivered access is never acknowledged"
    );

    audit_topics(&settings).await;
    writer
        .log
        .record(access("kept", &[alice()], AccessDecision::Allowed), soon())
        .await
        .expect("recorded in a new chain");
    let second = writer.log.chain_id();
    assert_ne!(second, first);
    writer.close().await;

    let (ok, out) = verify(&settings, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "chain {first} writer=? entries=0 last_seq=- head=-: abandoned by its writer before any entry was acknowledged (continued in chain {second})"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "chain {second} writer=resolver entries=2 last_seq=1"
        )),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_abandoned_mid_way_is_declared_at_its_acknowledged_head() {
    // librdkafka's mock cluster: a broker that can be taken down and brought back.
    let cluster = MockCluster::new(1).expect("mock cluster");
    let settings = Settings {
        kafka: Some(cluster.bootstrap_servers()),
        ..test_settings()
    };
    let topics = Topics::new(settings.topic_prefix.clone());
    for topic in [topics.audit(), topics.audit_checkpoints()] {
        cluster.create_topic(&topic, 1, 1).expect("topic");
    }
    let publisher = Publisher::new(&cluster.bootstrap_servers(), Duration::from_secs(2), 100)
        .expect("producer");
    let writer = Writer::start(publisher, &topics).await;
    let first = writer.log.chain_id();
    for i in 0..3 {
        writer
            .log
            .record(
                access(&format!("before-{i}"), &[alice()], AccessDecision::Allowed),
                soon(),
            )
            .await
            .expect("recorded while the broker is up");
    }
    cluster.broker_down(1).expect("broker down");
    let refused = writer
        .log
        .record(
            access("during", &[alice()], AccessDecision::Allowed),
            soon(),
        )
        .await;
    assert!(
        refused.is_err(),
        "not acknowledged while the broker is down"
    );
    cluster.broker_up(1).expect("broker up");
    // librdkafka reconnects with a backoff: the first tries may time out too, each
    // abandoning the chain it started.
    let mut tries = 0;
    while let Err(e) = writer
        .log
        .record(access("after", &[alice()], AccessDecision::Allowed), soon())
        .await
    {
        tries += 1;
        assert!(
            tries < 20,
            "still not recorded after the broker came back: {e}"
        );
    }
    let last = writer.log.chain_id();
    assert_ne!(last, first);
    writer.close().await;

    let mut out = Vec::new();
    let report = govlink::audit::verify::run(&settings, None, false, &mut out)
        .await
        .expect("the trail is read");
    let out = String::from_utf8(out).unwrap();
    println!("{out}");
    assert!(report.is_clean(), "{out}");
    // Entries 0..=3 (the start and three accesses) were acknowledged; the fourth may
    // or may not have landed, so the chain is held to seq 3.
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("chain {first} writer=resolver ")))
        .unwrap_or_else(|| panic!("no line for the first chain\n{out}"));
    assert!(
        line.contains("abandoned by its writer after seq 3 (continued in chain "),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "chain {last} writer=resolver entries=2 last_seq=1"
        )) && l.ends_with("closed, verified")),
        "{out}"
    );
}

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
    let store = Store::Redis(RedisStore::connect(&redis_url(), &prefix).await.unwrap());
    ready_store(&store, None, "g1").await;
    let index = AccessIndex::redis(&redis_url(), &prefix).await.unwrap();
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
        &kafka(),
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
