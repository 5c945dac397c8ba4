//! The access indexer's verified heads survive it: a chain indexed up to some entry is
//! indexed on from there by the next indexer of the consumer group (offsets committed,
//! heads saved in Redis next to the index), instead of its later entries being left out
//! as belonging to a chain whose start was never seen.

use std::time::Duration;

use govlink::audit::TrustedCas;
use govlink::kafka::Brokers;
use govlink::proto::AccessDecision;
use govlink::redis_link::RedisLink;
use govlink::resolver::access::{AccessIndex, AccessIndexer, ChainTrust, IndexerConfig};
use govlink::resolver::store::{RedisStore, Store};
use govlink::tls::certs::CertsDir;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::index::{list_when, purposes, ready_store};
use super::{Writer, access, audit_topics, publisher, soon};
use crate::helpers::*;

#[tokio::test]
async fn an_indexer_restarted_mid_chain_goes_on_from_the_saved_head() {
    let settings = test_settings();
    let prefix = settings.redis_prefix.clone();
    let topics = audit_topics(&settings).await;
    let link = RedisLink::new(redis_url());
    let store = Store::Redis(RedisStore::connect(&link, &prefix).await.unwrap());
    ready_store(&store, None, "g1").await;
    let index = AccessIndex::redis(&link, &prefix).await.unwrap();
    // As a resolver with TLS runs it: only chains signed under the test CA.
    let ca = CertsDir::new(test_certs()).ca();
    let indexer = || {
        AccessIndexer::new(
            IndexerConfig {
                brokers: Brokers::plaintext(kafka()),
                group_prefix: settings.consumer_group.clone(),
                retention: Duration::from_secs(7 * 86_400),
                trust: ChainTrust::Signed(TrustedCas::load(&ca).unwrap()),
            },
            &topics,
            index.clone(),
            store.clone(),
            govlink::telemetry::Metrics::new(),
        )
    };

    let writer = Writer::start(publisher(Duration::from_secs(30)), &topics).await;
    for purpose in ["p1", "p2"] {
        let seen = access(purpose, &[alice()], AccessDecision::Allowed);
        writer.log.record(seen, soon()).await.unwrap();
    }
    let stop = CancellationToken::new();
    let first = tokio::spawn(indexer().run(stop.clone()));
    assert_eq!(
        purposes(&list_when(&index, &alice(), 2).await),
        ["p2", "p1"]
    );
    stop.cancel();
    first.await.unwrap().expect("the indexer stops cleanly");
    // The chain's verified head is saved next to the index: its start is 0, p2 is 2.
    let head: Option<String> = redis()
        .await
        .hget(format!("{prefix}ach"), writer.log.chain_id())
        .await
        .unwrap();
    let head = head.expect("the chain's head is saved");
    assert!(head.starts_with("2:"), "{head}");

    // The next indexer resumes after p2: it never reads the chain's start again.
    let seen = access("p3", &[alice()], AccessDecision::Allowed);
    writer.log.record(seen, soon()).await.unwrap();
    let stop = CancellationToken::new();
    let second = tokio::spawn(indexer().run(stop.clone()));
    assert_eq!(
        purposes(&list_when(&index, &alice(), 3).await),
        ["p3", "p2", "p1"]
    );
    stop.cancel();
    second.await.unwrap().expect("the indexer stops cleanly");
    writer.close().await;
}
