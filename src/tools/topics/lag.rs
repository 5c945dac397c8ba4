//! `govlink topics lag`: how far consumer groups are behind on govlink's topics, govlink's
//! own groups found from the settings and the store's generation.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use serde_json::json;

use super::{brokers, write_table};
use crate::config::Settings;
use crate::kafka::{Brokers, Topics};
use crate::resolver::dead_letter::DeadLetterKind;
use crate::resolver::store::{RedisStore, Store};
use crate::tools::read::{self, Watermarks};

/// One consumer group's position on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset the group committed (`None`: no commit; it would start at the beginning).
    pub committed: Option<i64>,
    /// The partition's high watermark.
    pub end: i64,
    /// Messages between the commit (or the beginning) and the end.
    pub lag: i64,
}

/// Whose consumer group it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRole {
    /// The materializer of the store's current generation.
    Materializer,
    /// The access indexer of the store's current generation.
    AccessIndexer,
    /// The case engine.
    CaseEngine,
    /// How far `dlq replay` got with dead letters of one reason.
    DlqReplay(DeadLetterKind),
    /// How far `dlq replay --again` got with held letters of one reason.
    DlqReplayAgain(DeadLetterKind),
    /// A group named with `--group`.
    Given,
}

impl std::fmt::Display for GroupRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupRole::Materializer => f.write_str("materializer"),
            GroupRole::AccessIndexer => f.write_str("access indexer"),
            GroupRole::CaseEngine => f.write_str("case engine"),
            GroupRole::DlqReplay(kind) => write!(f, "dlq replay of {kind}"),
            GroupRole::DlqReplayAgain(kind) => write!(f, "dlq replay --again of {kind}"),
            GroupRole::Given => f.write_str("given"),
        }
    }
}

/// One consumer group's lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    /// The group.
    pub group: String,
    /// Whose group it is.
    pub role: GroupRole,
    /// Per topic-partition.
    pub partitions: Vec<PartitionLag>,
}

impl GroupLag {
    /// The sum of the partitions' lags.
    pub fn total(&self) -> i64 {
        self.partitions.iter().map(|p| p.lag).sum()
    }

    /// Whether the group committed anything.
    pub fn has_commits(&self) -> bool {
        self.partitions.iter().any(|p| p.committed.is_some())
    }
}

/// Lag of `groups`, or with none given of govlink's own groups: the materializer group of
/// the store's current generation and the access indexer's (the generation is read from
/// Redis), the case engine's, and the dead-letter replay positions that exist. A given
/// group is looked up on every govlink topic and shown where it committed.
pub async fn lag(
    settings: &Settings,
    groups: &[String],
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Vec<GroupLag>> {
    let brokers = brokers(settings).await?;
    let topics = Topics::new(settings.topic_prefix.clone());
    let all_topics = topics.all();
    let marks: BTreeMap<String, Watermarks> = read::watermarks(&brokers, all_topics.clone())
        .await?
        .into_iter()
        .filter_map(|(topic, marks)| Some((topic, marks?)))
        .collect();
    let (asked, notes) = if groups.is_empty() {
        own_groups(settings, &topics).await?
    } else {
        let given = groups
            .iter()
            .map(|group| AskedGroup {
                group: group.clone(),
                role: GroupRole::Given,
                topics: all_topics.clone(),
            })
            .collect();
        (given, Vec::new())
    };
    let mut report = Vec::new();
    for asked in asked {
        let mut lag = group_lag(&brokers, &marks, asked).await?;
        match lag.role {
            // A given group may read any topic: show where it committed.
            GroupRole::Given => lag.partitions.retain(|p| p.committed.is_some()),
            // No replay of that reason ever ran: nothing to say.
            GroupRole::DlqReplay(_) | GroupRole::DlqReplayAgain(_) if !lag.has_commits() => {
                continue;
            }
            _ => {}
        }
        report.push(lag);
    }
    print_lag(&report, &notes, json, out)?;
    Ok(report)
}

/// A consumer group `topics lag` looks up, and the topics it looks it up on.
struct AskedGroup {
    /// The group.
    group: String,
    /// Whose group it is.
    role: GroupRole,
    /// The topics it reads.
    topics: Vec<String>,
}

/// govlink's own groups, each on the topics it reads, and notes on those that cannot be
/// known (without a store generation, the materializer's and the access indexer's).
async fn own_groups(
    settings: &Settings,
    topics: &Topics,
) -> anyhow::Result<(Vec<AskedGroup>, Vec<&'static str>)> {
    let asked = |group: String, role, on: Vec<String>| AskedGroup {
        group,
        role,
        topics: on,
    };
    let mut own = Vec::new();
    let mut notes = Vec::new();
    let groups = crate::kafka::Groups::new(settings.consumer_group.clone());
    match generation(settings).await? {
        Some(generation) => {
            own.push(asked(
                groups.materializer(&generation),
                GroupRole::Materializer,
                topics.all_records(),
            ));
            own.push(asked(
                groups.access_indexer(&generation),
                GroupRole::AccessIndexer,
                vec![topics.audit()],
            ));
        }
        None => notes.push(
            "the record store has no generation (no Redis configured, or no resolver \
             ran yet): the materializer and access indexer groups are not known",
        ),
    }
    own.push(asked(
        groups.case_engine(),
        GroupRole::CaseEngine,
        vec![topics.case_commands()],
    ));
    for kind in DeadLetterKind::ALL {
        own.push(asked(
            groups.dlq_replay(kind),
            GroupRole::DlqReplay(kind),
            vec![topics.dlq()],
        ));
        own.push(asked(
            groups.dlq_replay_again(kind),
            GroupRole::DlqReplayAgain(kind),
            vec![topics.dlq()],
        ));
    }
    Ok((own, notes))
}

/// The lag of `asked` on every partition of its topics that exist (that have `marks`):
/// from its committed offset, or from the beginning without one, to the end.
async fn group_lag(
    brokers: &Brokers,
    marks: &BTreeMap<String, Watermarks>,
    asked: AskedGroup,
) -> anyhow::Result<GroupLag> {
    let AskedGroup {
        group,
        role,
        topics,
    } = asked;
    let mut partitions = Vec::new();
    for topic in topics {
        let Some(topic_marks) = marks.get(&topic) else {
            continue;
        };
        let committed = read::committed(
            brokers,
            &group,
            &topic,
            topic_marks.keys().copied().collect(),
        )
        .await?;
        for (&partition, &(low, end)) in topic_marks {
            let committed = committed.get(&partition).copied().flatten();
            let from = committed.unwrap_or(low);
            partitions.push(PartitionLag {
                topic: topic.clone(),
                partition,
                committed,
                end,
                lag: (end - from).max(0),
            });
        }
    }
    Ok(GroupLag {
        group,
        role,
        partitions,
    })
}

/// The store's current generation, when Redis is configured and the store has one.
async fn generation(settings: &Settings) -> anyhow::Result<Option<String>> {
    let Some(link) = settings.redis_link() else {
        return Ok(None);
    };
    let store = Store::Redis(
        RedisStore::connect(&link, &settings.redis_prefix)
            .await
            .context("reading the store's generation from Redis")?,
    );
    Ok(store.meta().await?.map(|meta| meta.generation))
}

/// Prints `report` as JSON lines when `json`, else as a table of the partitions that say
/// something, each group's total lag, and `notes`.
fn print_lag(
    report: &[GroupLag],
    notes: &[&str],
    json: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if json {
        for group in report {
            let partitions: Vec<serde_json::Value> = group
                .partitions
                .iter()
                .map(|p| {
                    json!({
                        "topic": p.topic,
                        "partition": p.partition,
                        "committed": p.committed,
                        "end": p.end,
                        "lag": p.lag,
                    })
                })
                .collect();
            let line = json!({
                "group": group.group,
                "role": group.role.to_string(),
                "committed": group.has_commits(),
                "lag": group.total(),
                "partitions": partitions,
            });
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let mut rows = vec![
        ["GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]
            .map(String::from)
            .to_vec(),
    ];
    for group in report {
        // An empty partition the group never committed on says nothing (JSON keeps it).
        let telling = group
            .partitions
            .iter()
            .filter(|p| p.committed.is_some() || p.lag > 0);
        for p in telling {
            rows.push(vec![
                group.group.clone(),
                p.topic.clone(),
                p.partition.to_string(),
                p.committed.map_or_else(|| "-".into(), |c| c.to_string()),
                p.end.to_string(),
                p.lag.to_string(),
            ]);
        }
    }
    if rows.len() > 1 {
        write_table(out, &rows)?;
    }
    for group in report {
        let commits = match (group.has_commits(), group.role) {
            (true, _) => "",
            (false, GroupRole::Given) => " (no committed offsets on govlink's topics)",
            (false, _) => " (no committed offsets: it would start from the beginning)",
        };
        writeln!(
            out,
            "{} ({}): total lag {}{commits}",
            group.group,
            group.role,
            group.total()
        )?;
    }
    for note in notes {
        writeln!(out, "{note}")?;
    }
    Ok(())
}
