//! Memory: what the materialized records cost. A `govlink resolver` child process
//! materializes the bench's record topics into a Redis prefix of its own; once its store
//! is ready and stays still, the Redis bytes per record (`MEMORY USAGE` of every record
//! entry, subject copy and contribution index, over the records) and the child's
//! resident memory (`VmRSS`) are read. Needs Redis.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::env::{Env, delete_prefix, scan_page};
use crate::resolver::store::{RedisStore, Store, StoreState};

/// Target: Redis bytes per record, subject copies included.
pub(super) const BYTES_PER_RECORD_TARGET: f64 = 500.0;
/// Target: the resolver's resident memory, MiB.
pub(super) const RSS_TARGET_MIB: f64 = 64.0;
/// How long the child may take to materialize everything.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the child's store is looked at.
const POLL: Duration = Duration::from_millis(250);

/// What the memory measurement found.
#[derive(Debug, Clone, Copy)]
pub(super) struct Memory {
    /// Records materialized (`rec:` entries).
    pub records: u64,
    /// Redis bytes of the record entries, subject copies and indexes, per record.
    pub bytes_per_record: f64,
    /// The resolver's resident memory, MiB.
    pub rss_mib: f64,
}

impl Memory {
    /// Whether both targets hold.
    pub(super) fn holds(&self) -> bool {
        self.bytes_per_record <= BYTES_PER_RECORD_TARGET && self.rss_mib <= RSS_TARGET_MIB
    }
}

/// A resolver child process, killed when dropped.
struct Resolver(Child);

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a resolver on the bench's topics into a fresh Redis prefix and measures it.
pub(super) async fn measure(env: &Env, exe: Option<&Path>) -> anyhow::Result<Memory> {
    let url = env
        .settings
        .redis
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("the memory report needs Redis"))?;
    // A sibling of the bench's prefix, not under it: clearing the bench's store for a
    // rebuild must not touch it.
    let prefix = format!("{}-mem:", env.settings.redis_prefix.trim_end_matches(':'));
    let mut child = Resolver(spawn_resolver(env, exe, url, &prefix)?);
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let store = Store::Redis(RedisStore::connect(url, &prefix).await?);
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = (0, 0.0);
    loop {
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!("the resolver exited early: {status}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the resolver did not materialize the topics within {READY_TIMEOUT:?}"
        );
        sleep(POLL).await;
        let ready = store
            .meta()
            .await?
            .is_some_and(|m| m.state == StoreState::Ready);
        if !ready {
            continue;
        }
        // Ready is judged against end offsets a broker may under-report (Tansu): wait
        // until the store also stops growing.
        let now = usage(&mut conn, &prefix).await?;
        if now.0 > 0 && now == last {
            break;
        }
        last = now;
        sleep(Duration::from_secs(1)).await;
    }
    let rss_mib = resident_mib(child.0.id())?;
    drop(child);
    delete_prefix(url, &prefix).await?;
    let (records, bytes) = last;
    Ok(Memory {
        records,
        bytes_per_record: bytes / records as f64,
        rss_mib,
    })
}

/// Starts `govlink resolver` on the bench's broker and topics, with the store under
/// `prefix` and a consumer group of its own.
fn spawn_resolver(env: &Env, exe: Option<&Path>, url: &str, prefix: &str) -> anyhow::Result<Child> {
    let s = &env.settings;
    let exe = match exe {
        Some(exe) => exe.to_owned(),
        None => std::env::current_exe()?,
    };
    let mut command = Command::new(exe);
    command
        .arg("resolver")
        .env("GOVLINK_KAFKA", &env.bootstrap)
        .env("GOVLINK_REDIS", url)
        .env("GOVLINK_TOPIC_PREFIX", &s.topic_prefix)
        .env("GOVLINK_REDIS_PREFIX", prefix)
        .env(
            "GOVLINK_CONSUMER_GROUP",
            format!("{}-mem", s.consumer_group),
        )
        .env("GOVLINK_PARTITIONS", s.partitions.to_string())
        .env("GOVLINK_GRPC_ADDR", "127.0.0.1:0")
        .env("GOVLINK_INSECURE_REQUESTER_HEADER", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(policy) = &s.policy {
        command.env("GOVLINK_POLICY", policy);
    }
    Ok(command.spawn()?)
}

/// Records materialized under `prefix` and the bytes of what stores them: record entries
/// (`rec:`), subject copies (`sub:`) and contribution indexes (`sum:`). The store's
/// `meta` and the access index (`acc:`, lookups' audit) are not per-record costs.
async fn usage(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> anyhow::Result<(u64, f64)> {
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut cursor: u64 = 0;
    loop {
        let (next, keys) = scan_page(conn, prefix, cursor).await?;
        let keys: Vec<&String> = keys
            .iter()
            .filter(|k| {
                ["rec:", "sub:", "sum:"]
                    .iter()
                    .any(|p| k[prefix.len()..].starts_with(p))
            })
            .collect();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(key.as_str())
                .arg("SAMPLES")
                .arg(0);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(conn).await?;
        bytes += sizes.into_iter().flatten().sum::<u64>();
        records += keys
            .iter()
            .filter(|k| k[prefix.len()..].starts_with("rec:"))
            .count() as u64;
        if next == 0 {
            return Ok((records, bytes as f64));
        }
        cursor = next;
    }
}

/// The resident memory of process `pid`, MiB, from `/proc/<pid>/status`.
fn resident_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}
