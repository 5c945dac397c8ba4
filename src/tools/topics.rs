//! `govlink topics list|tail|lag`: the deployment's topics as an operator looks at them.
//!
//! Topic names on the command line may be given with or without the configured topic
//! prefix; output always shows full names.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, OwnedResourceSpecifier, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::Message;
use serde_json::json;

use super::decode::{self, TopicKind};
use super::dlq::{replay_again_group, replay_group};
use super::read::{self, Reader, Until, Watermarks};
use crate::config::Settings;
use crate::kafka::{Brokers, Topics};
use crate::resolver::dead_letter::DeadLetterKind;
use crate::resolver::store::{RedisStore, Store};

/// The topic configs `topics list` shows: what govlink's guarantees rest on.
pub const SHOWN_CONFIGS: [&str; 3] = ["cleanup.policy", "retention.ms", "min.insync.replicas"];

/// How long describing topic configs may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The brokers a tool talks to and how, once one of them answered (within
/// `connect_timeout_ms`), or a precise error.
pub(super) async fn brokers(settings: &Settings) -> anyhow::Result<Brokers> {
    let brokers = settings
        .brokers()
        .map_err(anyhow::Error::msg)?
        .context("no Kafka broker configured: set --kafka or GOVLINK_KAFKA")?;
    brokers.reachable(settings.connect_timeout()).await?;
    Ok(brokers)
}

/// One topic as `topics list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Full name.
    pub name: String,
    /// What it holds.
    pub kind: TopicKind,
    /// Partition count; `None` when the broker does not have the topic.
    pub partitions: Option<usize>,
    /// Sum of the partitions' high watermarks.
    pub end_offsets: i64,
    /// [`SHOWN_CONFIGS`] as the broker describes them (`None`: not set or not described).
    pub configs: BTreeMap<&'static str, Option<String>>,
}

/// Every topic of the deployment, with partitions, end offsets and configs; printed as a
/// table, or as JSON lines when `json`.
pub async fn list(
    settings: &Settings,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Vec<TopicInfo>> {
    let brokers = brokers(settings).await?;
    let infos = topic_infos(&brokers, &Topics::new(settings.topic_prefix.clone())).await?;
    if json {
        print_topics_json(&infos, out)?;
    } else {
        print_topics_table(&infos, out)?;
    }
    Ok(infos)
}

/// Every topic of `topics`' catalog as the brokers have it: partitions, end offsets and
/// configs (configs only of the topics that exist).
async fn topic_infos(brokers: &Brokers, topics: &Topics) -> anyhow::Result<Vec<TopicInfo>> {
    let catalog = decode::catalog(topics);
    let names: Vec<String> = catalog.iter().map(|(name, _)| name.clone()).collect();
    let marks = read::watermarks(brokers, names.clone()).await?;
    let existing: Vec<String> = names
        .iter()
        .filter(|n| marks.get(*n).is_some_and(Option::is_some))
        .cloned()
        .collect();
    let mut configs = describe(brokers, &existing).await;
    Ok(catalog
        .into_iter()
        .map(|(name, kind)| {
            let topic_marks = marks.get(&name).cloned().flatten();
            TopicInfo {
                partitions: topic_marks.as_ref().map(BTreeMap::len),
                end_offsets: topic_marks.iter().flatten().map(|(_, (_, h))| h).sum(),
                configs: configs.remove(&name).unwrap_or_default(),
                name,
                kind,
            }
        })
        .collect())
}

/// `topics list --json`: one JSON object per topic and line.
fn print_topics_json(infos: &[TopicInfo], out: &mut impl Write) -> std::io::Result<()> {
    for info in infos {
        let line = json!({
            "topic": info.name,
            "message": info.kind.message(),
            "exists": info.partitions.is_some(),
            "partitions": info.partitions,
            "end_offsets": info.end_offsets,
            "configs": info.configs,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `topics list`: a table of the topics, then how many are missing, if any.
fn print_topics_table(infos: &[TopicInfo], out: &mut impl Write) -> std::io::Result<()> {
    let mut rows = vec![
        [
            "TOPIC",
            "PARTITIONS",
            "END OFFSETS",
            "CLEANUP",
            "RETENTION.MS",
            "MIN.ISR",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for info in infos {
        let config = |name: &str| {
            info.configs
                .get(name)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "?".into())
        };
        rows.push(match info.partitions {
            Some(partitions) => vec![
                info.name.clone(),
                partitions.to_string(),
                info.end_offsets.to_string(),
                config("cleanup.policy"),
                config("retention.ms"),
                config("min.insync.replicas"),
            ],
            None => vec![info.name.clone(), "missing".into()],
        });
    }
    write_table(out, &rows)?;
    let missing = infos.iter().filter(|i| i.partitions.is_none()).count();
    if missing > 0 {
        writeln!(
            out,
            "{missing} topic(s) missing: a govlink server creates them when it starts"
        )?;
    }
    Ok(())
}

/// [`SHOWN_CONFIGS`] of each of `topics`; a broker that cannot describe configs leaves
/// them unknown (logged once).
async fn describe(
    brokers: &Brokers,
    topics: &[String],
) -> BTreeMap<String, BTreeMap<&'static str, Option<String>>> {
    let mut all = BTreeMap::new();
    if topics.is_empty() {
        return all;
    }
    let admin: AdminClient<DefaultClientContext> =
        match crate::kafka::client_config(brokers, "govlink-ops").create() {
            Ok(admin) => admin,
            Err(e) => {
                tracing::warn!(error = %e, "cannot describe topic configs");
                return all;
            }
        };
    let resources: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(DESCRIBE_TIMEOUT));
    let described = match admin.describe_configs(&resources, &options).await {
        Ok(described) => described,
        Err(e) => {
            tracing::warn!(error = %e, "the broker does not describe topic configs");
            return all;
        }
    };
    for resource in described.into_iter().flatten() {
        let OwnedResourceSpecifier::Topic(topic) = &resource.specifier else {
            continue;
        };
        let configs = SHOWN_CONFIGS
            .map(|name| (name, resource.get(name).and_then(|e| e.value.clone())))
            .into_iter()
            .collect();
        all.insert(topic.clone(), configs);
    }
    all
}

/// What `topics tail` reads and how it prints it (the command's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct TailOptions {
    /// A govlink topic, with or without the configured topic prefix.
    pub topic: String,
    /// Every message, from the beginning of each partition.
    #[arg(long)]
    pub from_beginning: bool,
    /// Otherwise start this many messages before the end of each partition.
    #[arg(long, default_value_t = 10)]
    pub last: i64,
    /// Only messages with this key (searches the whole topic).
    #[arg(long)]
    pub key: Option<String>,
    /// Keep printing new messages until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// One compact JSON object per line instead of indented JSON.
    #[arg(long)]
    pub json: bool,
    /// Show resident ID numbers, names and addresses in clear.
    #[arg(long)]
    pub unmasked: bool,
}

/// Prints the messages of a topic decoded to JSON; returns how many it printed.
pub async fn tail(
    settings: &Settings,
    options: &TailOptions,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let brokers = brokers(settings).await?;
    let topics = Topics::new(settings.topic_prefix.clone());
    let (topic, kind) = decode::resolve(&topics, &settings.topic_prefix, &options.topic)?;
    let marks = topic_marks(&brokers, &topic).await?;
    // A key's history can be anywhere in its partition: search it all.
    let whole = options.from_beginning || options.key.is_some();
    let last = options.last.max(0);
    let start = |_, low, high: i64| if whole { low } else { high - last };
    let until = if options.follow {
        Until::Follow
    } else {
        Until::End
    };
    let mut reader = Reader::open(&brokers, &topic, &marks, start, until)?;
    let mut printed = 0;
    while let Some(message) = reader.next().await? {
        if let Some(key) = &options.key
            && message.key() != Some(key.as_bytes())
        {
            continue;
        }
        let value = decode::message_json(kind, &message, options.unmasked);
        let written = if options.json {
            writeln!(out, "{value}")
        } else {
            writeln!(out, "{value:#}")
        };
        match written.and_then(|()| out.flush()) {
            Ok(()) => printed += 1,
            // The reader went away (`| head`): done, not failed.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(printed)
}

/// The watermarks of one topic, or an error saying it is missing.
pub(super) async fn topic_marks(brokers: &Brokers, topic: &str) -> anyhow::Result<Watermarks> {
    read::watermarks(brokers, vec![topic.to_owned()])
        .await?
        .remove(topic)
        .flatten()
        .with_context(|| {
            format!("topic {topic} does not exist on the broker (a govlink server creates it when it starts)")
        })
}

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
    let group = &settings.consumer_group;
    match generation(settings).await? {
        Some(generation) => {
            own.push(asked(
                format!("{group}.{generation}"),
                GroupRole::Materializer,
                topics.all_records(),
            ));
            own.push(asked(
                format!("{group}.access.{generation}"),
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
        format!("{group}.cases"),
        GroupRole::CaseEngine,
        vec![topics.case_commands()],
    ));
    for kind in DeadLetterKind::ALL {
        own.push(asked(
            replay_group(group, kind),
            GroupRole::DlqReplay(kind),
            vec![topics.dlq()],
        ));
        own.push(asked(
            replay_again_group(group, kind),
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

/// Writes `rows` as left-aligned columns, two spaces apart.
pub(super) fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    // A row's last cell is not padded, so it does not widen its column.
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter(|r| c + 1 < r.len())
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec!["A".to_owned(), "BB".to_owned(), "C".to_owned()],
            vec!["long".to_owned(), "x".to_owned(), "y".to_owned()],
            vec!["m".to_owned(), "missing".to_owned()],
        ];
        let mut out = Vec::new();
        write_table(&mut out, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A     BB  C\nlong  x   y\nm     missing\n"
        );
    }
}
