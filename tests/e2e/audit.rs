//! The audit trail against the real broker: a chain written concurrently verifies clean
//! with `govlink audit verify`, copies of it tampered with four ways do not, and a failed
//! delivery is declared rather than hidden. `index` tests the per-person access index.

use std::time::Duration;

use govlink::audit::{AuditLog, Signer};
use govlink::config::Settings;
use govlink::kafka::Brokers;
use govlink::kafka::{Publisher, Topics, ensure_topics};
use govlink::proto::audit_body::Kind;
use govlink::proto::{AccessDecision, Agency, AuditBody, AuditCheckpoint, AuditEntry, DataAccess};
use prost::Message as _;
use rdkafka::message::OwnedMessage;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

mod deleted;
mod forged;
mod heads;
mod index;

/// Partitions of the audit topics in these tests.
const PARTITIONS: i32 = 3;

async fn audit_topics(settings: &Settings) -> Topics {
    let topics = Topics::new(settings.topic_prefix.clone());
    ensure_topics(
        &Brokers::plaintext(kafka()),
        &specs_of(
            &topics,
            &[topics.audit(), topics.audit_checkpoints()],
            PARTITIONS,
        ),
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
        // Signed as a resolver with TLS signs: `verify` checks against the test CA.
        let certs = govlink::tls::certs::CertsDir::new(test_certs());
        let signer = Signer::load(&certs.server().cert, &certs.server().key).expect("a signer");
        let writer = govlink::audit::Writer {
            role: "resolver",
            host: "test-host".into(),
            signer: Some(signer.into()),
        };
        let log = AuditLog::start(
            publisher,
            topics,
            writer,
            govlink::telemetry::Metrics::new(),
        )
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
    Publisher::new(&Brokers::plaintext(kafka()), message_timeout, 10_000).expect("producer")
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
    let consumer = from_beginning(topic, PARTITIONS);
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

/// The offset of the only message of `partition` of `topic`, which carries `payload`.
async fn offset_of(topic: &str, partition: i32, payload: &[u8]) -> i64 {
    let messages = read_partition(topic, partition, 0, 1, Duration::from_secs(60)).await;
    let message = messages
        .first()
        .unwrap_or_else(|| panic!("nothing in partition {partition}"));
    assert_eq!(message.payload(), Some(payload));
    message.offset()
}

/// `govlink audit verify` in this process (the binary under the shared target directory
/// may be another checkout's): whether the trail is clean, and the report.
async fn verify_here(settings: &Settings, json: bool) -> (bool, String) {
    let mut out = Vec::new();
    let report = govlink::tools::audit_verify::run(settings, None, &test_ca(), json, &mut out)
        .await
        .expect("the trail is read");
    (report.is_clean(), String::from_utf8(out).unwrap())
}

/// Chains checked against the CA of the test certificates, which sign the writers' chains.
fn test_ca() -> govlink::tools::audit_verify::SignatureCheck {
    govlink::tools::audit_verify::SignatureCheck {
        ca: Some(govlink::tls::certs::CertsDir::new(test_certs()).ca()),
        allow_unsigned: false,
    }
}

/// The line of `chain` in verify's output.
fn chain_line<'a>(out: &'a str, chain: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("chain {chain} ")))
        .unwrap_or_else(|| panic!("no line for chain {chain}\n{out}"))
}

/// A closed log leaves no task behind: its acker settles the last entries and is
/// joined by the checkpoint task that closes it.
#[tokio::test]
async fn closing_a_log_joins_its_acker() {
    let settings = test_settings();
    let topics = audit_topics(&settings).await;
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let publisher = publisher(Duration::from_secs(30));
    // A first log, so whatever the producer starts on its first delivery is running.
    let first = Writer::start(publisher.clone(), &topics).await;
    let people = [alice()];
    first
        .log
        .record(access("p1", &people, AccessDecision::Allowed), soon())
        .await
        .unwrap();
    let before = alive();
    let second = Writer::start(publisher, &topics).await;
    second
        .log
        .record(access("p2", &people, AccessDecision::Allowed), soon())
        .await
        .unwrap();
    let log = second.log.clone();
    second.close().await;
    assert_eq!(alive(), before, "a task of the closed log is still alive");
    drop(log);
    first.close().await;
}

#[tokio::test]
async fn a_copy_of_an_entry_on_another_partition_is_named_where_it_sits() {
    let settings = test_settings();
    let topics = audit_topics(&settings).await;
    let writer = Writer::start(publisher(Duration::from_secs(30)), &topics).await;
    let chain = writer.log.chain_id();
    for i in 0..5 {
        writer
            .log
            .record(
                access(&format!("a{i}"), &[alice()], AccessDecision::Allowed),
                soon(),
            )
            .await
            .expect("the access is recorded");
    }
    writer.close().await;
    let entries = read_until(&topics.audit(), |m| m.len() >= 6).await;
    let home = entries[0].partition();
    let payload_of = |seq: u64| -> Vec<u8> {
        entries
            .iter()
            .map(|m| m.payload().unwrap_or_default().to_vec())
            .find(|p| AuditEntry::decode(p.as_slice()).unwrap().sequence == seq)
            .unwrap_or_else(|| panic!("no entry {seq}"))
    };

    // Entry 3's exact bytes, under its key, on another partition.
    let elsewhere = (home + 1) % PARTITIONS;
    let copy = payload_of(3);
    send_raw(&topics.audit(), &chain, &copy, Some(elsewhere)).await;
    let offset = offset_of(&topics.audit(), elsewhere, &copy).await;
    let (ok, out) = verify_here(&settings, false).await;
    println!("{out}");
    assert!(!ok, "{out}");
    let line = chain_line(&out, &chain);
    // The chain in its own partition is whole; the copy is named where it sits.
    assert!(line.contains(" entries=6 last_seq=5 "), "{out}");
    assert!(
        line.ends_with(&format!(
            "FAILED: duplicate entry at seq 3 in partition {elsewhere} offset {offset}: the chain lives in partition {home}"
        )),
        "{out}"
    );
    assert!(!out.contains("missing"), "{out}");

    // Entry 2 with another purpose, its hash left as it was, on the third partition.
    let third = (home + 2) % PARTITIONS;
    let mut entry = AuditEntry::decode(payload_of(2).as_slice()).unwrap();
    let mut body = AuditBody::decode(entry.body.as_slice()).unwrap();
    if let Some(Kind::Access(a)) = &mut body.kind {
        a.purpose = "nothing to see".into();
    }
    entry.body = body.encode_to_vec();
    let changed = entry.encode_to_vec();
    send_raw(&topics.audit(), &chain, &changed, Some(third)).await;
    let offset = offset_of(&topics.audit(), third, &changed).await;
    let (ok, out) = verify_here(&settings, true).await;
    assert!(!ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    let report = json["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chain_id"] == chain.as_str())
        .unwrap_or_else(|| panic!("no chain {chain}\n{out}"));
    println!("{}", report["detail"]);
    assert_eq!(
        (
            &report["partition"],
            &report["entries"],
            &report["last_sequence"]
        ),
        (&home.into(), &6.into(), &5.into()),
        "{out}"
    );
    let problem = &report["problem"];
    assert_eq!(
        problem["kind"], "changed copy in another partition",
        "{out}"
    );
    assert_eq!(problem["sequence"], 2, "{out}");
    assert_eq!(
        (&problem["at"]["partition"], &problem["at"]["offset"]),
        (&third.into(), &offset.into()),
        "{out}"
    );
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
    let publisher = Publisher::new(
        &Brokers::plaintext(cluster.bootstrap_servers()),
        Duration::from_secs(2),
        100,
    )
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
    let report = govlink::tools::audit_verify::run(&settings, None, &test_ca(), false, &mut out)
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
