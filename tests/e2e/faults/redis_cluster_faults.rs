//! A Redis Cluster master killed under load, on a cluster of the test's own (3 masters, 3
//! replicas): its replica is promoted and nothing acknowledged is lost from the store's
//! answers; meanwhile lookups answer `UNAVAILABLE` or the truth, never something wrong.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use govlink::app::Role;

use super::*;

/// A node of [`RedisCluster`].
struct ClusterNode {
    port: u16,
    child: Option<Child>,
}

/// A Redis Cluster of the test's own, on loopback, without persistence; a failed master's
/// replica takes over within about two node timeouts.
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

impl RedisCluster {
    /// `masters` masters with a replica each, joined by `redis-cli --cluster create`.
    pub async fn start(masters: usize) -> RedisCluster {
        let dir = std::env::temp_dir().join(unique("govlink-redis-cluster"));
        let mut nodes = Vec::new();
        for _ in 0..masters * 2 {
            let port = free_port();
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                // The bus on a free port of its own (by default port + 10000, which may be
                // taken or past 65535).
                .args(["--cluster-port", &free_port().to_string()])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            nodes.push(ClusterNode {
                port,
                child: Some(child),
            });
        }
        let cluster = RedisCluster { nodes, dir };
        for node in &cluster.nodes {
            wait_for(&format!("node {} answers", node.port), || async {
                single(node.port).await.is_some()
            })
            .await;
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = tokio::task::spawn_blocking(move || {
            Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addresses)
                .args(["--cluster-replicas", "1", "--cluster-yes"])
                .output()
                .expect("redis-cli runs")
        })
        .await
        .unwrap();
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        cluster.wait_ok().await;
        cluster
    }

    /// The cluster's `redis+cluster://` URL.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}/", nodes.join(","))
    }

    /// Waits until every live node says the cluster is ok (every slot served).
    pub async fn wait_ok(&self) {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let port = node.port;
            wait_for(
                &format!("node {port} says cluster_state:ok"),
                || async move {
                    let Some(mut conn) = single(port).await else {
                        return false;
                    };
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    info.contains("cluster_state:ok")
                },
            )
            .await;
        }
    }

    /// The port of the master that serves `key`.
    pub async fn master_of(&self, key: &str) -> u16 {
        let mut conn = single(self.nodes[0].port).await.expect("a node answers");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let shards: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .unwrap();
        for shard in shards {
            let bounds: (u16, u16) = (
                redis::from_redis_value(shard[0].clone()).unwrap(),
                redis::from_redis_value(shard[1].clone()).unwrap(),
            );
            if (bounds.0..=bounds.1).contains(&slot) {
                // The master: host, port, node id, hostnames.
                let master: Vec<redis::Value> = redis::from_redis_value(shard[2].clone()).unwrap();
                return redis::from_redis_value(master[1].clone()).unwrap();
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// SIGKILL of the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        if let Some(mut child) = node.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain connection to one node, if it answers.
async fn single(port: u16) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let pong: Option<String> = redis::cmd("PING").query_async(&mut conn).await.ok();
    pong.map(|_| conn)
}

/// Polls `done` until it holds, failing after a minute.
async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 60s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lookups of records whose every publish is acknowledged and over, while the fault
/// happens: each answer is `UNAVAILABLE`/`DEADLINE_EXCEEDED` or the acknowledged
/// version; anything else counts as wrong.
#[derive(Default)]
struct Watch {
    answered: AtomicUsize,
    unavailable: AtomicUsize,
    wrong: AtomicUsize,
}

async fn watch_lookups(
    channel: Channel,
    expected: Vec<(usize, Option<u64>)>,
    watch: Arc<Watch>,
    stop: tokio_util::sync::CancellationToken,
) {
    while !stop.is_cancelled() {
        for (record, version) in &expected {
            let mut request = tonic::Request::new(GetRecordRequest {
                record_key: record_key(*record),
                min_positions: vec![],
            });
            request.set_timeout(Duration::from_secs(5));
            let answer =
                crate::helpers::resolver_as(channel.clone(), "public-security/records", None)
                    .get_record(request)
                    .await;
            let found = match answer {
                Ok(r) => Some(r.into_inner().record.map(|r| r.version)),
                Err(s) if s.code() == Code::NotFound => Some(None),
                Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded) => None,
                Err(s) => panic!("a lookup during the failover failed with {s:?}"),
            };
            match found {
                None => watch.unavailable.fetch_add(1, Ordering::Relaxed),
                Some(found) if found == *version => watch.answered.fetch_add(1, Ordering::Relaxed),
                Some(found) => {
                    println!("record {record}: answered {found:?}, acknowledged {version:?}");
                    watch.wrong.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    }
}

#[tokio::test]
async fn a_master_killed_under_load_loses_nothing_acknowledged_and_answers_nothing_wrong() {
    let mut cluster = RedisCluster::start(3).await;
    let settings = govlink::config::Settings {
        redis: Some(cluster.url()),
        ..test_settings()
    };
    let prefix = settings.redis_prefix.clone();
    let app = spawn_app_with(settings, Role::Dev).await;
    let mut rng = Rng::seeded();
    // Records 0..40 are published before the kill only; 40..80 around it.
    let before: Vec<Op> = stream(&mut rng, 40, 400);
    let during: Vec<Op> = stream(&mut rng, 40, 600)
        .into_iter()
        .map(|op| Op {
            record: op.record + 40,
            ..op
        })
        .collect();
    let mut model = Model::default();
    publish_all(&app.channel, &before, 16, &mut model).await;
    let settled = check(&app.channel, &model, Duration::from_secs(60)).await;
    assert_eq!((settled.lost, settled.regressed), (0, 0));
    let expected: Vec<(usize, Option<u64>)> = (0..40)
        .filter_map(|r| {
            let (version, deleted) = model.acked_version(r)?;
            Some((r, (!deleted).then_some(version)))
        })
        .collect();

    // Every household record of the stream is Alice's: her copies' master is the one
    // whose loss costs the most.
    let victim = cluster
        .master_of(&format!(
            "{prefix}sub:{{{}}}:household_registration",
            alice()
        ))
        .await;
    let watch = Arc::new(Watch::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let watcher = tokio::spawn(watch_lookups(
        app.channel.clone(),
        expected,
        watch.clone(),
        stop.clone(),
    ));
    let publishing = publish_all(&app.channel, &during, 8, &mut model);
    let killing = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.kill(victim);
        println!("killed master 127.0.0.1:{victim}");
    };
    tokio::join!(publishing, killing);
    cluster.wait_ok().await;
    let report = check(&app.channel, &model, Duration::from_secs(90)).await;
    stop.cancel();
    watcher.await.unwrap();
    println!(
        "redis cluster failover: lookups during it answered {}, unavailable {}, wrong {}",
        watch.answered.load(Ordering::Relaxed),
        watch.unavailable.load(Ordering::Relaxed),
        watch.wrong.load(Ordering::Relaxed)
    );
    conclude("redis cluster master killed", &model, &report);
    assert_eq!(
        watch.wrong.load(Ordering::Relaxed),
        0,
        "wrong answers during the failover"
    );
    assert!(
        watch.answered.load(Ordering::Relaxed) > 0,
        "no lookup was answered while the master was killed"
    );
    app.stop().await;
}
