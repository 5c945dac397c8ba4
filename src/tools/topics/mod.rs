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
use super::read::{self, Reader, Until, Watermarks};
use crate::config::Settings;
use crate::kafka::{Brokers, Topics};

mod lag;

pub use lag::{GroupLag, GroupRole, PartitionLag, lag};

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
