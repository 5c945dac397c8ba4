//! Faults on the publish path: a producer that failed for good, a broker killed and
//! restarted mid-publish. No acknowledged publish is lost; every other one fails with a
//! status that says what the caller may do, within its deadline.

use std::time::Duration;

use govlink::kafka::{PublishError, Publisher};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio::time::{Instant, timeout};

use crate::helpers::*;

#[tokio::test]
async fn a_fatal_idempotence_error_stops_the_publisher_for_good() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topic = unique("fatal");
    cluster.create_topic(&topic, 1, 1).expect("topic");
    let publisher =
        Publisher::new(&cluster.bootstrap_servers(), Duration::from_secs(10), 100).unwrap();
    let deadline = || Instant::now() + Duration::from_secs(10);
    // A first ack gives the producer its id and sequence, which the broker then disowns.
    publisher
        .publish(&topic, b"k", b"v1", &[], deadline())
        .await
        .expect("healthy mock broker acks");
    // The head-of-line request failing with OUT_OF_ORDER_SEQUENCE_NUMBER means the producer
    // and the broker disagree on what was written: librdkafka raises a fatal error.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let failed = publisher
        .publish(&topic, b"k", b"v2", &[], deadline())
        .await;
    assert!(matches!(failed, Err(PublishError::Fatal(_))), "{failed:?}");

    let reason = timeout(Duration::from_secs(10), publisher.fatal())
        .await
        .expect("the fatal future resolves once the producer failed");
    assert!(reason.to_lowercase().contains("sequence"), "{reason}");
    // Cheap to ask again, and it still answers.
    let again = timeout(Duration::from_secs(1), publisher.fatal()).await;
    assert_eq!(again.as_deref(), Ok(reason.as_str()));

    // The mock broker is healthy again, but this producer never publishes again, and says
    // so at once instead of promising a retry would work.
    let started = Instant::now();
    let later = publisher
        .publish(&topic, b"k", b"v3", &[], deadline())
        .await;
    assert!(matches!(later, Err(PublishError::Fatal(_))), "{later:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );
}
