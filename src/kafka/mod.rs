//! Everything that speaks Kafka: the topics (names, how they are created and the
//! consumer groups, in one table), the link to the brokers, the shared idempotent
//! producer, the batch consume loop, topic administration, and the embedded broker used
//! by `dev` and `demo`.

mod admin;
pub mod consume;
mod embedded;
mod link;
mod producer;
mod topics;

pub use admin::{
    AdminError, ConfigMismatch, TopicSpec, TopicsReport, check_topic_configs, ensure_topics,
    partition_counts,
};
pub use embedded::EmbeddedBroker;
pub use link::{Brokers, LinkSecurity, Sasl, SaslMechanism, SecurityProtocol};
pub use producer::{Enqueued, Header, PublishError, Publisher};
pub use topics::{Groups, Sizing, Topics};

use rdkafka::ClientConfig;

/// The client settings every govlink Kafka client shares: where the brokers are and how
/// the link is secured. Never log the result: its `Debug` prints every property, the SASL
/// password included.
pub fn client_config(brokers: &Brokers, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    brokers.apply(&mut config);
    config
        .set("client.id", client_id)
        .set("topic.metadata.refresh.interval.ms", METADATA_REFRESH_MS)
        // librdkafka logs through its own callback; keep only what an operator must see.
        .set("log_level", "4");
    config
}

/// How often a client asks the brokers for its topics' metadata. Partitions added to a
/// topic (to scale out) are seen within this time: producers spread keys over them and
/// consumer groups rebalance to read them, where librdkafka's default (5 minutes) would
/// leave records published to a new partition unread, and lookups waiting for them,
/// for that long. One small request per client every few seconds.
pub const METADATA_REFRESH_MS: &str = "5000";

/// A consumer-group member that commits only what it stored: librdkafka commits the
/// offsets the member stored, and it stores an offset only after its own write (to the
/// store, the index) was acknowledged. At-least-once; nothing is skipped.
pub fn at_least_once_consumer(brokers: &Brokers, client_id: &str, group: &str) -> ClientConfig {
    let mut config = client_config(brokers, client_id);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.partition.eof", "false")
        // A member that dies hands its partitions over within this time...
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // ...and a rebalance waits at most this long for members that do not rejoin
        // (some coordinators wait for it, not for the session, when a member died). A
        // member stuck longer (its store down for that long) leaves the group and its
        // partitions go to the others.
        .set("max.poll.interval.ms", "20000")
        // What librdkafka fetches ahead of the member: enough for many batches, and a
        // bound on memory while catching up (the default, 64 MiB, is most of a
        // resolver's resident memory during a rebuild).
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.wait.max.ms", FETCH_WAIT_MS);
    config
}

/// The longest a consumer's fetch waits at the broker for new data. Apache Kafka
/// answers a waiting fetch as soon as data arrives, so there it only paces idle polls
/// (ten a second per member); brokers that answer only when the wait is over (Tansu,
/// the embedded mock cluster) add up to this much to every hop a record takes, where
/// librdkafka's default would add 500 ms.
pub const FETCH_WAIT_MS: &str = "100";
