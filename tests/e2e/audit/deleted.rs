//! Records deleted from the start of the audit topic, against a broker that deletes
//! them: `govlink audit verify` fails naming the partition and its low watermark.
//!
//! The broker is librdkafka's mock cluster, whose partitions keep at most 5 MiB and drop
//! their oldest batches beyond it: retention a test can trigger. `DeleteRecords` itself
//! cannot be tested here: Tansu 0.6.0 answers it with a panic (`todo!()`) in its memory
//! and SQLite storage (the connection drops; with SQLite the broker goes down), and the
//! mock cluster does not implement it (`UnsupportedFeature`).

use std::time::Duration;

use govlink::audit::verify::{self, Problem};
use govlink::config::Settings;
use govlink::kafka::{Brokers, Publisher, Topics};
use govlink::proto::{AccessDecision, DataAccess};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;

use super::{Writer, access, soon};
use crate::helpers::*;

/// What one mock partition keeps (librdkafka's `mpart->max_size`).
const KEPT_BYTES: usize = 5 * 1024 * 1024;
/// The purpose of the large accesses that push the first records out.
const LARGE: usize = 300_000;

async fn verify_on(settings: &Settings) -> (verify::Report, String) {
    let mut out = Vec::new();
    let report =
        govlink::tools::audit_verify::run(settings, None, &super::test_ca(), false, &mut out)
            .await
            .expect("the trail is read");
    (report, String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_deleted_from_the_start_of_a_partition_fail_verify_naming_it() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let settings = Settings {
        kafka: Some(cluster.bootstrap_servers()),
        ..test_settings()
    };
    let topics = Topics::new(settings.topic_prefix.clone());
    for topic in [topics.audit(), topics.audit_checkpoints()] {
        cluster.create_topic(&topic, 1, 1).expect("topic");
    }
    let publisher = || {
        Publisher::new(
            &Brokers::plaintext(cluster.bootstrap_servers()),
            Duration::from_secs(10),
            100,
        )
        .expect("producer")
    };

    // A short chain, closed: the trail verifies while whole.
    let first = Writer::start(publisher(), &topics).await;
    let first_chain = first.log.chain_id();
    for i in 0..3 {
        first
            .log
            .record(
                access(&format!("early-{i}"), &[alice()], AccessDecision::Allowed),
                soon(),
            )
            .await
            .expect("recorded");
    }
    first.close().await;
    let (report, out) = verify_on(&settings).await;
    assert!(report.is_clean(), "{out}");

    // A second chain writes more than the partition keeps: its oldest records go.
    let second = Writer::start(publisher(), &topics).await;
    let second_chain = second.log.chain_id();
    let large = KEPT_BYTES / LARGE + 4;
    for _ in 0..large {
        let big = DataAccess {
            purpose: "x".repeat(LARGE),
            ..access("large", &[alice()], AccessDecision::Allowed)
        };
        second.log.record(big, soon()).await.expect("recorded");
    }
    second.close().await;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(&topics.audit(), 0, Duration::from_secs(10))
        .expect("watermarks");
    // The first chain's four entries, and the start of the second, are gone.
    assert!(low > 5, "low watermark {low} (high {high})");

    let (report, out) = verify_on(&settings).await;
    println!("{out}");
    assert!(!report.is_clean(), "{out}");
    assert!(
        out.contains(&format!(
            "FAILED: partition 0 of the audit topic starts at offset {low} (its low watermark): the {low} records before it were deleted\n"
        )),
        "{out}"
    );
    let line = |chain: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("chain {chain} ")))
            .unwrap_or_else(|| panic!("no line for chain {chain}\n{out}"))
            .to_owned()
    };
    // The closed checkpoint names entries that are no longer there.
    assert!(
        line(&first_chain).ends_with(&format!(
            ": FAILED: deleted: no entry left, but a checkpoint says the chain reached seq 3; partition 0 starts at offset {low} (its low watermark), the records before it were deleted"
        )),
        "{out}"
    );
    // The second chain lost its beginning: the entries before the partition's start.
    let second_report = report
        .chains
        .iter()
        .find(|c| c.chain_id == second_chain)
        .expect("the second chain");
    let gone = u64::try_from(low).unwrap() - 4;
    assert_eq!(
        second_report.status,
        verify::ChainStatus::Failed(Problem::Deleted {
            seq: 0,
            left: Some(gone),
            vouched: None,
            partition: 0,
            low_watermark: low,
        }),
        "{out}"
    );
    assert!(line(&second_chain).contains(&format!(
        "FAILED: deleted entries from seq 0 to seq {}",
        gone - 1
    )));
}
