//! Read-your-writes on topics that grow: a position in a partition added since start-up is
//! waited for like any other; one in a partition the broker does not have is refused.
//! Against librdkafka's mock cluster, a real broker protocol in this process.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::kafka::EmbeddedBroker;
use crate::resolver::store::MemoryStore;

const TOPIC: &str = "govlink.records.housing.v1";

fn at(partition: i32) -> Position {
    Position {
        topic: TOPIC.into(),
        partition,
        offset: 0,
    }
}

/// The counts as found at start-up: two partitions (the broker has four now).
fn at_start_up() -> BTreeMap<String, i32> {
    BTreeMap::from([(TOPIC.to_owned(), 2)])
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// The violations' (field, description) pairs of an unmet wait that refused partitions.
fn refused(unmet: Result<(), Unmet>) -> Vec<(String, String)> {
    match unmet {
        Err(Unmet::Invalid(v)) => v
            .iter()
            .map(|f| (f.field.clone(), f.description.clone()))
            .collect(),
        other => panic!("expected refused partitions, got {other:?}"),
    }
}

#[tokio::test]
async fn a_partition_added_since_start_up_is_waited_for_and_one_the_broker_lacks_is_refused() {
    let broker = EmbeddedBroker::start(1, &[(TOPIC.to_owned(), 4)]).unwrap();
    let brokers = crate::kafka::Brokers::plaintext(broker.bootstrap());
    let positions = Positions::growing(Store::Memory(MemoryStore::new()), at_start_up(), brokers);

    // Partition 3 is beyond the count known at start-up, not beyond the topic's.
    let mut violations = Violations::default();
    positions.check(&[at(3)], FIELD, &mut violations);
    assert!(violations.is_empty(), "{violations:?}");
    positions.record("gen-1", &[at(3)]);
    assert_eq!(positions.wait_for(&[at(3)], soon()).await, Ok(()));

    // Partition 4 the broker does not have either: refused, naming its count.
    assert_eq!(
        refused(positions.wait_for(&[at(1), at(4)], soon()).await),
        [(
            "min_positions[1].partition".to_owned(),
            "does not exist: the topic has 4 partitions".to_owned()
        )]
    );
}

#[tokio::test]
async fn final_counts_refuse_a_partition_beyond_them_at_once() {
    let positions = Positions::new(Store::Memory(MemoryStore::new()), at_start_up());
    assert_eq!(
        refused(positions.wait_for(&[at(2)], soon()).await),
        [(
            "min_positions[0].partition".to_owned(),
            "does not exist: the topic has 2 partitions".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_broker_that_cannot_be_asked_refuses_nothing_and_the_wait_says_what_is_missing() {
    // Nothing listens on port 9 (discard) of the loopback.
    let brokers = crate::kafka::Brokers::plaintext("127.0.0.1:9");
    let positions = Positions::growing(Store::Memory(MemoryStore::new()), at_start_up(), brokers);
    let deadline = Instant::now() + Duration::from_secs(2);
    assert_eq!(
        positions.wait_for(&[at(3)], deadline).await,
        Err(Unmet::Late(at(3)))
    );
}
