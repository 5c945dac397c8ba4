//! Memory: what the materialized records cost. A `govlink resolver` child process
//! materializes the bench's record topics into a Redis prefix of its own; once its store
//! is ready and stays still, the Redis bytes per record (`MEMORY USAGE` of every record
//! entry, subject copy and contribution index, over the records) and the child's
//! resident memory (`VmRSS`) are read. Needs Redis.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::env::{Env, delete_prefix, each_key_page, own_prefix};
use crate::config::Settings;
use crate::redis_link::{RedisConn, RedisLink};
use crate::resolver::store::{RedisStore, Store, StoreState};

/// Target: Redis bytes per record, subject copies included.
pub(super) const BYTES_PER_RECORD_TARGET: f64 = 500.0;
/// Target: the resolver's resident memory, MiB.
pub(super) const RSS_TARGET_MIB: f64 = 64.0;
/// How long the child may go without materializing anything before it is given up.
const STALL: Duration = Duration::from_secs(60);
/// How often the child's store is looked at; the store must stay still this long.
const POLL: Duration = Duration::from_secs(1);

/// What the memory measurement found.
#[derive(Debug, Clone, Copy)]
pub(super) struct Memory {
    /// Records materialized, and the Redis bytes of what keeps them.
    pub usage: Usage,
    /// The resolver's resident memory, MiB.
    pub rss_mib: f64,
}

impl Memory {
    /// Redis bytes per record: entries, subject copies and contribution indexes.
    pub(super) fn bytes_per_record(&self) -> f64 {
        let u = &self.usage;
        (u.entries + u.copies + u.indexes) as f64 / u.records.max(1) as f64
    }

    /// Whether both targets hold.
    pub(super) fn holds(&self) -> bool {
        self.bytes_per_record() <= BYTES_PER_RECORD_TARGET && self.rss_mib <= RSS_TARGET_MIB
    }
}

/// The records under a store prefix and the bytes (`MEMORY USAGE`, key names included) of
/// each kind of key that keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// Records (`rec:` entries).
    pub records: u64,
    /// Record entries (`rec:`).
    pub entries: u64,
    /// Subject copies (`sub:`).
    pub copies: u64,
    /// Contribution indexes (`sum:`).
    pub indexes: u64,
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
    let link = env
        .settings
        .redis_link()
        .ok_or_else(|| anyhow::anyhow!("the memory report needs Redis"))?;
    let prefix = own_prefix("gm");
    let mut child = Resolver(spawn_resolver(env, exe, &prefix)?);
    let measured = settle(&mut child, &link, &prefix).await;
    let rss_mib = resident_mib(child.0.id());
    drop(child);
    let conn = link.connect().await?;
    let usage = match measured {
        Ok(()) => usage(&conn, &prefix).await,
        Err(e) => Err(e),
    };
    delete_prefix(&link, &prefix).await?;
    Ok(Memory {
        usage: usage?,
        rss_mib: rss_mib?,
    })
}

/// Waits until the child's store is ready and its positions stay still (ready is judged
/// against end offsets a broker may under-report, Tansu's). Fails if the child exits, or
/// if its positions stop moving for [`STALL`] before that.
async fn settle(child: &mut Resolver, link: &RedisLink, prefix: &str) -> anyhow::Result<()> {
    let store = Store::Redis(RedisStore::connect(link, prefix).await?);
    let mut last: Option<(StoreState, i64)> = None;
    let mut moved = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!("the resolver exited early: {status}");
        }
        sleep(POLL).await;
        let now = store
            .meta()
            .await?
            .map(|m| (m.state, m.positions.values().sum::<i64>()));
        if now.is_some_and(|(state, _)| state == StoreState::Ready) && now == last {
            return Ok(());
        }
        if now != last {
            moved = Instant::now();
            last = now;
        }
        anyhow::ensure!(
            moved.elapsed() < STALL,
            "the resolver made no progress materializing the topics for {STALL:?}"
        );
    }
}

/// Starts `govlink resolver` on the bench's broker and topics, with the store under
/// `prefix` and a consumer group of its own.
fn spawn_resolver(env: &Env, exe: Option<&Path>, prefix: &str) -> anyhow::Result<Child> {
    let s = &env.settings;
    let exe = match exe {
        Some(exe) => exe.to_owned(),
        None => std::env::current_exe()?,
    };
    // A resolver serves mutual TLS only: a throwaway development CA (nothing calls it).
    let certs = std::env::temp_dir().join(format!("govlink-bench-certs-{}", uuid::Uuid::new_v4()));
    let certs = crate::tls::certs::CertsDir::new(certs);
    certs.init()?;
    let mut command = Command::new(exe);
    command
        .arg("resolver")
        .env("GOVLINK_TLS_CERT", certs.server().cert)
        .env("GOVLINK_TLS_KEY", certs.server().key)
        .env("GOVLINK_TLS_CLIENT_CA", certs.ca())
        .env("GOVLINK_KAFKA", env.brokers.bootstrap())
        .env(
            "GOVLINK_KAFKA_SECURITY_PROTOCOL",
            env.brokers.security().protocol().as_str(),
        )
        .envs(link_env(s))
        .env("GOVLINK_TOPIC_PREFIX", &s.topic_prefix)
        .env("GOVLINK_REDIS_PREFIX", prefix)
        .env(
            "GOVLINK_CONSUMER_GROUP",
            format!("{}-mem", s.consumer_group),
        )
        .env("GOVLINK_PARTITIONS", s.partitions.to_string())
        .env("GOVLINK_GRPC_ADDR", "127.0.0.1:0")
        .env("GOVLINK_ADMIN_ADDR", "")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(policy) = &s.policy {
        command.env("GOVLINK_POLICY", policy);
    }
    Ok(command.spawn()?)
}

/// The settings of the links to Kafka and Redis that are set, as the child reads them
/// from its environment (the bench's own may come from a file or flags).
fn link_env(s: &Settings) -> Vec<(&'static str, String)> {
    let secret = |p: &Option<crate::secret::Secret>| p.as_ref().map(|p| p.expose().to_owned());
    let kafka = s.kafka.is_some();
    [
        ("GOVLINK_REDIS", s.redis.clone()),
        ("GOVLINK_REDIS_CA", s.redis_ca.clone()),
        ("GOVLINK_REDIS_USERNAME", s.redis_username.clone()),
        ("GOVLINK_REDIS_PASSWORD", secret(&s.redis_password)),
        (
            "GOVLINK_KAFKA_SSL_CA",
            s.kafka_ssl_ca.clone().filter(|_| kafka),
        ),
        (
            "GOVLINK_KAFKA_SSL_CERT",
            s.kafka_ssl_cert.clone().filter(|_| kafka),
        ),
        (
            "GOVLINK_KAFKA_SSL_KEY",
            s.kafka_ssl_key.clone().filter(|_| kafka),
        ),
        (
            "GOVLINK_KAFKA_SASL_MECHANISM",
            s.kafka_sasl_mechanism.map(String::from).filter(|_| kafka),
        ),
        (
            "GOVLINK_KAFKA_SASL_USERNAME",
            s.kafka_sasl_username.clone().filter(|_| kafka),
        ),
        (
            "GOVLINK_KAFKA_SASL_PASSWORD",
            secret(&s.kafka_sasl_password).filter(|_| kafka),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value?)))
    .collect()
}

/// What is materialized under `prefix`. The store's `meta` and the access index (`acc:`,
/// lookups' audit) are not per-record costs.
async fn usage(conn: &RedisConn, prefix: &str) -> anyhow::Result<Usage> {
    let usage = std::sync::Mutex::new(Usage::default());
    each_key_page(conn, prefix, |keys| {
        let (mut conn, usage) = (conn.clone(), &usage);
        async move {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("MEMORY")
                    .arg("USAGE")
                    .arg(key.as_str())
                    .arg("SAMPLES")
                    .arg(0);
            }
            let sizes: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
            let mut usage = usage.lock().unwrap_or_else(|e| e.into_inner());
            for (key, size) in keys.iter().zip(sizes) {
                let size = size.unwrap_or(0);
                match key.get(prefix.len()..prefix.len() + 4) {
                    Some("rec:") => {
                        usage.records += 1;
                        usage.entries += size;
                    }
                    Some("sub:") => usage.copies += size,
                    Some("sum:") => usage.indexes += size,
                    _ => {}
                }
            }
            Ok(())
        }
    })
    .await?;
    Ok(usage.into_inner().unwrap_or_else(|e| e.into_inner()))
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
