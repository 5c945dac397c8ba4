//! The topics govlink uses, in one table: their names (under a deployment's prefix) and
//! how govlink creates them.

use super::TopicSpec;
use crate::proto::Agency;
use crate::records::{AGENCIES, agency_from_slug, agency_slug};

/// How the topics govlink creates are sized (`partitions`, `replication_factor`,
/// `record_retention_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    /// Partitions of a topic (but the dead-letter topic's one).
    pub partitions: i32,
    /// Replicas per partition.
    pub replication: i32,
    /// How long record topics keep events (-1: forever).
    pub record_retention_ms: i64,
}

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

    /// Every topic govlink uses, as govlink creates it: record topics and the dead-letter
    /// topic keep `sizing.record_retention_ms` (a rebuild reads the record topics, so
    /// anything shorter loses what has expired); the audit trail (a trail that expires
    /// cannot be verified) and the case topics (commands, the events the case views are
    /// rebuilt from, each agency's tasks) are kept forever. The dead-letter topic has one
    /// partition: its letters are read in the order they were written.
    pub fn specs(&self, sizing: &Sizing) -> Vec<TopicSpec> {
        let Sizing {
            partitions,
            replication,
            record_retention_ms,
        } = *sizing;
        let forever = |name| TopicSpec::durable(name, partitions, replication, -1);
        let mut specs: Vec<TopicSpec> = self
            .all_records()
            .into_iter()
            .map(|name| TopicSpec::durable(name, partitions, replication, record_retention_ms))
            .collect();
        specs.push(TopicSpec::durable(
            self.dlq(),
            1,
            replication,
            record_retention_ms,
        ));
        specs.extend([self.audit(), self.audit_checkpoints()].map(forever));
        specs.extend([self.case_commands(), self.cases()].map(forever));
        specs.extend(AGENCIES.map(|a| forever(self.tasks(a))));
        specs
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

/// The consumer groups govlink's consumers join, all under the deployment's
/// `consumer_group`: what `topics lag` reads, in one place with the topics they read.
#[derive(Debug, Clone)]
pub struct Groups {
    prefix: String,
}

impl Groups {
    /// The groups under `consumer_group`.
    pub fn new(consumer_group: impl Into<String>) -> Groups {
        Groups {
            prefix: consumer_group.into(),
        }
    }

    /// `<consumer_group>.<generation>`: the materializers of one generation of the
    /// record store, reading the record topics.
    pub fn materializer(&self, generation: impl std::fmt::Display) -> String {
        format!("{}.{generation}", self.prefix)
    }

    /// `<consumer_group>.access.<generation>`: the access indexers of one generation of
    /// the store, reading the audit topic.
    pub fn access_indexer(&self, generation: impl std::fmt::Display) -> String {
        format!("{}.access.{generation}", self.prefix)
    }

    /// `<consumer_group>.cases`: the case engines, reading the case commands.
    pub fn case_engine(&self) -> String {
        format!("{}.cases", self.prefix)
    }

    /// `<consumer_group>.dlq-replay.<kind>`: how far replays of dead letters of `kind`
    /// got.
    pub fn dlq_replay(&self, kind: impl std::fmt::Display) -> String {
        format!("{}.dlq-replay.{kind}", self.prefix)
    }

    /// `<consumer_group>.dlq-replay-again.<kind>`: how far `dlq replay --again` got with
    /// the held letters of `kind`.
    pub fn dlq_replay_again(&self, kind: impl std::fmt::Display) -> String {
        format!("{}.dlq-replay-again.{kind}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_a_spec_and_the_trail_and_cases_are_kept_forever() {
        let topics = Topics::new("p.");
        let sizing = Sizing {
            partitions: 3,
            replication: 3,
            record_retention_ms: 86_400_000,
        };
        let specs = topics.specs(&sizing);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, topics.all());
        let config = |spec: &TopicSpec, name: &str| {
            spec.configs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        for spec in &specs {
            let retention = config(spec, "retention.ms");
            let kept_for = if topics.agency_of(&spec.name).is_some() || spec.name == topics.dlq() {
                "86400000"
            } else {
                "-1"
            };
            assert_eq!(retention.as_deref(), Some(kept_for), "{}", spec.name);
            assert_eq!(config(spec, "cleanup.policy").as_deref(), Some("delete"));
            assert_eq!(config(spec, "min.insync.replicas").as_deref(), Some("2"));
            let partitions = if spec.name == topics.dlq() { 1 } else { 3 };
            assert_eq!((spec.partitions, spec.replication), (partitions, 3));
        }
    }

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
