//! The fault suite: each scenario drives a stream of publishes with random versions,
//! duplicates, reordering and deletions, injects its fault, then compares every lookup
//! with a model of the highest acknowledged version per record. Each prints a report
//! line (sent, acknowledged, found, lost, regressed); lost and regressed must be 0.

mod case_engine_faults;
mod redis_cluster_faults;
mod redis_faults;
mod resolver_faults;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use govlink::config::Settings;
use govlink::identity::Requester;
use govlink::proto::{self, GetRecordRequest, Position};
use govlink::tls::client::ClientTls;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::*;

/// Longer than a consumer-group member's session timeout (10 s): how long a supervisor
/// backs off before starting a killed member again. Tansu 0.6.0 drops a dead member only
/// when another joins after the dead one's session expired (Apache Kafka drops it on its
/// own), so a member that joins sooner waits for the dead one with the rest.
pub const SESSION_EXPIRY: Duration = Duration::from_secs(12);

/// A small deterministic generator (xorshift), seeded per run and printed, so a failing
/// run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("fault suite seed {seed}");
        Rng(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One publish of the stream: a record id, a version, and whether it deletes.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub record: usize,
    pub version: u64,
    pub delete: bool,
}

/// A stream of `count` publishes over `records` records: versions 1..=8 in random order,
/// with duplicates; one in ten is a deletion.
pub fn stream(rng: &mut Rng, records: usize, count: usize) -> Vec<Op> {
    (0..count)
        .map(|_| Op {
            record: rng.below(records as u64) as usize,
            version: 1 + rng.below(8),
            delete: rng.below(10) == 0,
        })
        .collect()
}

pub fn record_id(record: usize) -> String {
    format!("f-{record}")
}

pub fn record_key(record: usize) -> String {
    format!(
        "public-security/household_registration/{}",
        record_id(record)
    )
}

/// What was sent and what was acknowledged.
#[derive(Default)]
pub struct Model {
    /// Every version sent per record (acknowledged or not: an unacknowledged publish may
    /// still land), with whether it deletes.
    sent: HashMap<usize, Vec<(u64, bool)>>,
    /// The highest acknowledged version per record.
    acked: HashMap<usize, (u64, bool)>,
    /// The highest acknowledged offset per partition: lookups wait for these.
    positions: BTreeMap<(String, i32), i64>,
    pub sent_count: usize,
    pub acked_count: usize,
    /// Publishes that failed, by status code.
    pub failed: BTreeMap<String, usize>,
}

impl Model {
    fn sent(&mut self, op: Op) {
        self.sent_count += 1;
        self.sent
            .entry(op.record)
            .or_default()
            .push((op.version, op.delete));
    }

    fn acked(&mut self, op: Op, at: &Position) {
        self.acked_count += 1;
        let entry = self.acked.entry(op.record).or_insert((0, false));
        if op.version > entry.0 {
            *entry = (op.version, op.delete);
        }
        let offset = self
            .positions
            .entry((at.topic.clone(), at.partition))
            .or_insert(-1);
        *offset = (*offset).max(at.offset);
    }

    /// The highest acknowledged version of `record`, and whether it deletes.
    pub fn acked_version(&self, record: usize) -> Option<(u64, bool)> {
        self.acked.get(&record).copied()
    }

    /// The positions of every acknowledged publish, one per partition.
    pub fn positions(&self) -> Vec<Position> {
        positions_of(&self.positions)
    }
}

/// Publishes `ops` through the adapter at `channel`, `concurrency` at a time, recording
/// them in `model`. Every failure must be `UNAVAILABLE` or `DEADLINE_EXCEEDED`.
pub async fn publish_all(channel: &Channel, ops: &[Op], concurrency: usize, model: &mut Model) {
    for op in ops {
        model.sent(*op);
    }
    let results: Vec<(Op, Result<Position, tonic::Status>)> =
        futures::stream::iter(ops.iter().copied())
            .map(|op| {
                let mut client =
                    proto::public_security_adapter_client::PublicSecurityAdapterClient::new(
                        channel.clone(),
                    );
                async move {
                    let result = if op.delete {
                        client
                            .delete_record(proto::DeleteRecordRequest {
                                record_type: "household_registration".into(),
                                meta: meta(&record_id(op.record), op.version),
                            })
                            .await
                    } else {
                        let status = if op.version % 2 == 0 {
                            proto::HouseholdStatus::MovedOut
                        } else {
                            proto::HouseholdStatus::Registered
                        };
                        client
                            .publish_household_registration(
                                proto::PublishHouseholdRegistrationRequest {
                                    meta: meta(&record_id(op.record), op.version),
                                    record: Some(household(&alice(), status)),
                                },
                            )
                            .await
                    };
                    (op, result.map(|r| position(&r.into_inner())))
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    for (op, result) in results {
        match result {
            Ok(at) => model.acked(op, &at),
            Err(status) => {
                assert!(
                    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
                    "a publish failed with {status:?}"
                );
                *model
                    .failed
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
            }
        }
    }
}

/// The outcome of comparing lookups with the model.
#[derive(Debug, Default)]
pub struct Report {
    /// Records compared with the model.
    pub records: usize,
    /// Of those, found live (the others are deleted, as the model allows).
    pub found: usize,
    pub lost: usize,
    pub regressed: usize,
}

/// Looks up every record the model knows through the resolver at `channel` (after the
/// acknowledged positions) and compares with the model, retrying while the resolver
/// answers `UNAVAILABLE` (a rebuild) for up to `patience`.
pub async fn check(channel: &Channel, model: &Model, patience: Duration) -> Report {
    let after = model.positions();
    let mut report = Report::default();
    let mut records: Vec<usize> = model.sent.keys().copied().collect();
    records.sort_unstable();
    let give_up = tokio::time::Instant::now() + patience;
    report.records = records.len();
    for record in records {
        let found = loop {
            let mut request = tonic::Request::new(GetRecordRequest {
                record_key: record_key(record),
                min_positions: after.clone(),
            });
            request.set_timeout(Duration::from_secs(30));
            let answer =
                crate::helpers::resolver_as(channel.clone(), "public-security/records", None)
                    .get_record(request)
                    .await;
            match answer {
                Ok(r) => break Some(r.into_inner().record.unwrap().version),
                Err(s) if s.code() == Code::NotFound => break None,
                Err(s)
                    if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded)
                        && tokio::time::Instant::now() < give_up =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => panic!("lookup of record {record} failed: {s:?}"),
            }
        };
        let acked = model.acked.get(&record).copied();
        let sent = &model.sent[&record];
        // Any version sent at least as high as the highest acknowledged one may be the
        // stored one (an unacknowledged publish may have landed).
        let floor = acked.map_or(0, |(v, _)| v);
        let possible = |version: u64, delete: bool| {
            sent.iter()
                .any(|(v, d)| *v == version && *d == delete && *v >= floor)
        };
        match found {
            Some(version) => {
                report.found += 1;
                if version < floor {
                    report.regressed += 1;
                    println!("record {record}: found v{version}, acknowledged v{floor}");
                }
            }
            None => {
                let explained = acked.is_none_or(|(_, deleted)| deleted)
                    || sent.iter().any(|(v, d)| *d && possible(*v, true));
                if !explained {
                    report.lost += 1;
                    println!("record {record}: not found, acknowledged v{floor}");
                }
            }
        }
    }
    report
}

/// Prints the scenario's report line and asserts nothing was lost or regressed.
pub fn conclude(scenario: &str, model: &Model, report: &Report) {
    println!(
        "{scenario}: sent {}, acknowledged {}, failed {:?}, records {}, found live {}, lost {}, \
         regressed {}",
        model.sent_count,
        model.acked_count,
        model.failed,
        report.records,
        report.found,
        report.lost,
        report.regressed
    );
    assert!(
        model.acked_count > 0,
        "{scenario}: nothing was acknowledged"
    );
    assert_eq!(report.lost, 0, "{scenario}: acknowledged records lost");
    assert_eq!(
        report.regressed, 0,
        "{scenario}: records went back to older versions"
    );
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `govlink <subcommand>` child process (`resolver`, `cases`) serving mutual TLS with
/// [`test_certs`]; killed (SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
    /// `host:port`.
    pub addr: String,
}

impl Process {
    /// Starts `govlink <subcommand>` with `settings` and waits until it serves gRPC.
    pub async fn start(settings: &Settings, subcommand: &str) -> Process {
        let port = free_port();
        let child = govlink_command(settings, subcommand)
            .env("GOVLINK_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "RUST_LOG",
                std::env::var("GOVLINK_TEST_CHILD_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("govlink {subcommand} starts: {e}"));
        let addr = format!("127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let anyone = Requester::parse("housing/transfer-window").unwrap();
        loop {
            if let Ok(channel) = ClientTls::new(test_certs()).connect(&addr, &anyone).await {
                drop(channel);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "govlink {subcommand} did not serve within 60s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Process { child, addr }
    }

    /// A channel calling as `requester` (`agency/service`) with its test certificate.
    pub async fn channel_as(&self, requester: &str) -> Channel {
        tls_channel(&self.addr, test_certs(), requester).await
    }

    /// SIGKILL: no shutdown, no final commit.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the process");
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How far the store under `prefix` at `url` has materialized: the sum over partitions
/// of the offsets reached (read from Redis directly).
pub async fn materialized(url: &str, prefix: &str) -> i64 {
    use redis::AsyncCommands;
    let Ok(mut conn) = govlink::redis_link::RedisLink::new(url).connect().await else {
        return 0;
    };
    let meta: HashMap<String, String> = conn
        .hgetall(format!("{prefix}meta"))
        .await
        .unwrap_or_default();
    meta.iter()
        .filter(|(k, _)| k.starts_with("p:"))
        .map(|(_, v)| v.parse::<i64>().unwrap() + 1)
        .sum()
}

/// A redis-server of the test's own (so it can be flushed, stopped and restarted without
/// touching other tests), persisting every write to its append-only file.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let dir = std::env::temp_dir().join(unique("govlink-redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port and data directory.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let client = redis::Client::open(self.url()).unwrap();
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the server is gone until `restart`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub async fn flushall(&self) {
        let mut conn = redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("FLUSHALL")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until the store under `prefix` at `url` has materialized at least `events`.
pub async fn wait_materialized(url: &str, prefix: &str, events: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while materialized(url, prefix).await < events {
        assert!(
            tokio::time::Instant::now() < deadline,
            "materialization did not reach {events} events within 60s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
