//! Everything that speaks Kafka: topic names, the link to the brokers, the shared
//! idempotent producer, the batch consume loop, topic administration, and the embedded
//! broker used by `dev` and `demo`.

mod admin;
pub mod consume;
mod embedded;
mod link;
mod producer;

pub use admin::{
    AdminError, ConfigMismatch, TopicSpec, TopicsReport, check_topic_configs, ensure_topics,
};
pub use embedded::EmbeddedBroker;
pub use link::{Brokers, LinkSecurity, Sasl, SaslMechanism, SecurityProtocol};
pub use producer::{Enqueued, Header, PublishError, Publisher};

use rdkafka::ClientConfig;

use crate::proto::Agency;
use crate::records::{AGENCIES, agency_from_slug, agency_slug};

/// Topic names, with an optional prefix so several deployments (or tests) share a broker.
#[derive(Debug, Clone, Default)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topic names under `prefix` (empty in production).
    pub fn new(prefix: impl Into<String>) -> Topics {
        Topics {
            prefix: prefix.into(),
        }
    }

    /// `govlink.records.<agency>.v1`: the record topic of one agency (every version kept).
    pub fn records(&self, agency: Agency) -> String {
        format!("{}govlink.records.{}.v1", self.prefix, agency_slug(agency))
    }

    /// Every record topic.
    pub fn all_records(&self) -> Vec<String> {
        AGENCIES.into_iter().map(|a| self.records(a)).collect()
    }

    /// `govlink.dlq.v1`: events the materializer could not use, with the reason in headers.
    pub fn dlq(&self) -> String {
        format!("{}govlink.dlq.v1", self.prefix)
    }

    /// `govlink.audit.v1`: every lookup and check, as entries of their writers' hash chains.
    pub fn audit(&self) -> String {
        format!("{}govlink.audit.v1", self.prefix)
    }

    /// `govlink.audit-checkpoints.v1`: the acknowledged heads of the audit chains.
    pub fn audit_checkpoints(&self) -> String {
        format!("{}govlink.audit-checkpoints.v1", self.prefix)
    }

    /// `govlink.case-commands.v1`: every change asked of a case, keyed by case id.
    pub fn case_commands(&self) -> String {
        format!("{}govlink.case-commands.v1", self.prefix)
    }

    /// `govlink.cases.v1`: what happened to each case, keyed by case id (kept forever: the
    /// case views are rebuilt from it).
    pub fn cases(&self) -> String {
        format!("{}govlink.cases.v1", self.prefix)
    }

    /// `govlink.tasks.<agency>.v1`: the steps an agency has to carry out.
    pub fn tasks(&self, agency: Agency) -> String {
        format!("{}govlink.tasks.{}.v1", self.prefix, agency_slug(agency))
    }

    /// Every topic govlink uses: what a broker that creates no topics (librdkafka's mock
    /// cluster) must be given before a govlink process starts.
    pub fn all(&self) -> Vec<String> {
        let mut all = self.all_records();
        all.extend([self.dlq(), self.audit(), self.audit_checkpoints()]);
        all.extend([self.case_commands(), self.cases()]);
        all.extend(AGENCIES.map(|a| self.tasks(a)));
        all
    }

    /// The agency whose record topic this is, if it is one of ours.
    pub fn agency_of(&self, topic: &str) -> Option<Agency> {
        let slug = topic
            .strip_prefix(&self.prefix)?
            .strip_prefix("govlink.records.")?
            .strip_suffix(".v1")?;
        agency_from_slug(slug)
    }
}

/// The client settings every govlink Kafka client shares: where the brokers are and how
/// the link is secured. Never log the result: its `Debug` prints every property, the SASL
/// password included.
pub fn client_config(brokers: &Brokers, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    brokers.apply(&mut config);
    config
        .set("client.id", client_id)
        // librdkafka logs through its own callback; keep only what an operator must see.
        .set("log_level", "4");
    config
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_topics_map_back_to_their_agency() {
        let topics = Topics::new("t1.");
        for agency in AGENCIES {
            assert_eq!(topics.agency_of(&topics.records(agency)), Some(agency));
        }
        assert_eq!(topics.agency_of(&topics.dlq()), None);
        assert_eq!(topics.agency_of(&topics.audit()), None);
        assert_eq!(
            Topics::new("").agency_of("t1.govlink.records.housing.v1"),
            None
        );
    }

    #[test]
    fn audit_topics_are_prefixed_and_versioned() {
        let topics = Topics::new("t1.");
        assert_eq!(topics.audit(), "t1.govlink.audit.v1");
        assert_eq!(
            topics.audit_checkpoints(),
            "t1.govlink.audit-checkpoints.v1"
        );
        assert_eq!(Topics::default().audit(), "govlink.audit.v1");
    }
}
