//! One connection type for one Redis server and for a Redis Cluster, so every store is
//! written once.
//!
//! On a cluster, redis-rs sends a pipeline to the node of its first key and refuses one
//! whose keys lie in several slots. The stores' pipelines do span slots (a lookup reads the
//! store's marker and a subject's keys; a batch writes many subjects), so [`RedisConn`]
//! splits a pipeline by slot, sends the parts concurrently (redis-rs follows `MOVED` and
//! `ASK` for each) and puts the replies back in the pipeline's order. A command without
//! a key (`SCRIPT LOAD`, `PING`, `WAIT`) goes through redis-rs's own routing, which sends
//! it to every master. Atomicity stays where it was designed to be: inside one script,
//! whose keys share a hash tag.

use std::collections::HashMap;

use futures::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// How long [`RedisConn::settle`] waits for a replica to confirm the writes, in ms.
pub const REPLICATION_WAIT_MS: u64 = 2_000;

/// A connection to the configured Redis: one server, or a cluster. Cheap to clone; clones
/// share the connection.
#[derive(Clone)]
pub enum RedisConn {
    /// One server, reconnecting on its own.
    Single(ConnectionManager),
    /// A Redis Cluster: a connection to each node, following the slot map.
    Cluster(ClusterConnection),
}

/// A master of a cluster (or the one server), for commands that act on one node's
/// keyspace: `SCAN`, `INFO`, `DBSIZE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Host as the cluster announces it.
    pub host: String,
    /// Port as the cluster announces it.
    pub port: u16,
}

impl RedisConn {
    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// The masters that hold keys: every master serving slots of a cluster, or the one
    /// server (as `None`: commands go to it directly).
    pub async fn masters(&self) -> RedisResult<Vec<Option<Node>>> {
        let RedisConn::Cluster(conn) = self else {
            return Ok(vec![None]);
        };
        let shards = shards(conn).await?;
        Ok(shards.into_iter().map(|s| Some(s.node)).collect())
    }

    /// Sends `cmd` to `node` (from [`RedisConn::masters`]).
    pub async fn on_node<T: redis::FromRedisValue>(
        &self,
        node: &Option<Node>,
        cmd: Cmd,
    ) -> RedisResult<T> {
        match (self, node) {
            (RedisConn::Cluster(conn), Some(node)) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: node.host.clone(),
                    port: node.port,
                });
                let value = conn.clone().route_command(cmd, routing).await?;
                Ok(redis::from_redis_value(value)?)
            }
            (conn, _) => cmd.query_async(&mut conn.clone()).await,
        }
    }

    /// One page of `SCAN MATCH pattern` on `node` from `cursor`: the next cursor (0 at the
    /// end) and the keys.
    pub async fn scan_page(
        &self,
        node: &Option<Node>,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> RedisResult<(u64, Vec<String>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        self.on_node(node, scan).await
    }

    /// Makes the writes sent so far survive the loss of the master that took them: on a
    /// cluster, waits (`WAIT` on each master's connection, which carried them) until they
    /// reached a replica of every master that has one up, which a failover would promote;
    /// fails, as a transient error its caller retries, when one does not confirm within
    /// [`REPLICATION_WAIT_MS`]. A master without a live replica (its replica was just
    /// promoted, its old master not back yet) has nothing to wait for: its writes are as
    /// durable as one server's until a replica joins. One server needs nothing: a
    /// restarted one comes back empty, which the store detects and rebuilds, whereas a
    /// promoted replica that missed writes would answer as if they never were.
    pub async fn settle(&self) -> RedisResult<()> {
        let RedisConn::Cluster(conn) = self else {
            return Ok(());
        };
        let shards = shards(conn).await?;
        let waits = shards.into_iter().filter(|s| s.replicas > 0).map(|shard| async move {
            let mut wait = redis::cmd("WAIT");
            wait.arg(1).arg(REPLICATION_WAIT_MS);
            let reached: i64 = self.on_node(&Some(shard.node.clone()), wait).await?;
            if reached < 1 {
                return Err(RedisError::from((
                    ErrorKind::Server(redis::ServerErrorKind::TryAgain),
                    "writes not replicated: no replica of a Redis Cluster master confirmed them",
                    format!(
                        "{}:{}: WAIT 1 {REPLICATION_WAIT_MS} reached {reached}",
                        shard.node.host, shard.node.port
                    ),
                )));
            }
            Ok(())
        });
        try_join_all(waits).await?;
        Ok(())
    }
}

/// The cluster's masters and their live replicas, as a node answers `CLUSTER NODES`.
async fn shards(conn: &ClusterConnection) -> RedisResult<Vec<Shard>> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn.clone())
        .await?;
    shards_of(&nodes)
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(conn) => {
                if pipeline.is_transaction() {
                    conn.req_packed_commands(pipeline, offset, count)
                } else {
                    Box::pin(by_slot(conn.clone(), pipeline))
                }
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Runs `pipeline` on a cluster as one pipeline per slot plus one call per keyless
/// command, concurrently; the replies in the pipeline's order.
async fn by_slot(conn: ClusterConnection, pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let keyless: Vec<usize> = (0..commands.len())
        .filter(|&i| key_of(commands[i]).is_none())
        .collect();
    let parts = group_by_slot((0..commands.len()).filter_map(|i| Some((i, key_of(commands[i])?))));
    let slot_parts = parts.into_iter().map(|indexes| {
        let mut part = redis::pipe();
        for &i in &indexes {
            part.add_command(commands[i].clone());
        }
        let mut conn = conn.clone();
        async move {
            let values = conn.req_packed_commands(&part, 0, indexes.len()).await?;
            Ok::<_, RedisError>(indexes.into_iter().zip(values).collect::<Vec<_>>())
        }
    });
    let single_parts = keyless.into_iter().map(|i| {
        let mut conn = conn.clone();
        let cmd = commands[i];
        async move { Ok::<_, RedisError>(vec![(i, conn.req_packed_command(cmd).await?)]) }
    });
    let (slotted, single) =
        futures::try_join!(try_join_all(slot_parts), try_join_all(single_parts))?;
    let mut replies = vec![Value::Nil; commands.len()];
    for (i, value) in slotted.into_iter().chain(single).flatten() {
        replies[i] = value;
    }
    Ok(replies)
}

/// The indexes of `keyed` (index, key) grouped by the keys' slot, each group in the
/// order given, the groups in the order of their first index.
pub fn group_by_slot<K: AsRef<[u8]>>(keyed: impl Iterator<Item = (usize, K)>) -> Vec<Vec<usize>> {
    let mut groups: HashMap<Slot, Vec<usize>> = HashMap::new();
    for (i, key) in keyed {
        groups.entry(Slot::for_key(key)).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort_by_key(|g| g[0]);
    groups
}

/// The key a command is routed by: the first key of a script call, the first argument
/// of a keyed command; `None` for a command without a key.
fn key_of(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()??.to_ascii_uppercase();
    match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let _script = args.next()?;
            let keys: usize = std::str::from_utf8(args.next()??).ok()?.parse().ok()?;
            if keys == 0 { None } else { args.next()? }
        }
        b"MEMORY" => {
            let sub = args.next()??;
            if sub.eq_ignore_ascii_case(b"USAGE") {
                args.next()?
            } else {
                None
            }
        }
        b"SCRIPT" | b"PING" | b"WAIT" | b"INFO" | b"DBSIZE" | b"CLUSTER" | b"SCAN"
        | b"FLUSHALL" | b"FLUSHDB" | b"CONFIG" | b"CLIENT" | b"ACL" | b"TIME" => None,
        _ => args.next()?,
    }
}

/// A master serving slots and how many of its replicas are up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shard {
    node: Node,
    replicas: usize,
}

/// The masters serving slots, from `CLUSTER NODES` (`<id> <ip:port@cport[,host]> <flags>
/// <master> <ping> <pong> <epoch> <link> <slot>…`), with their live replicas: failed
/// nodes and masters without slots are left out.
fn shards_of(nodes: &str) -> RedisResult<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut replicas: HashMap<&str, usize> = HashMap::new();
    for line in nodes.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let unreadable = || {
            RedisError::from((
                ErrorKind::Parse,
                "CLUSTER NODES line not understood",
                line.to_owned(),
            ))
        };
        let [id, address, flags, master, ..] = fields.as_slice() else {
            return Err(unreadable());
        };
        let flags: Vec<&str> = flags.split(',').collect();
        if flags.iter().any(|f| f.starts_with("fail")) {
            continue;
        }
        if flags.contains(&"slave") {
            *replicas.entry(master).or_default() += 1;
        }
        if !flags.contains(&"master") || fields.len() <= 8 {
            continue;
        }
        let address = address.split(['@', ',']).next().unwrap_or_default();
        let (host, port) = address.rsplit_once(':').ok_or_else(unreadable)?;
        let port = port.parse().map_err(|_| unreadable())?;
        let node = Node {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
        };
        shards.push((*id, node));
    }
    Ok(shards
        .into_iter()
        .map(|(id, node)| Shard {
            node,
            replicas: replicas.get(id).copied().unwrap_or(0),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_routed_by_its_first_key_and_a_script_by_its_first_script_key() {
        let mut get = redis::cmd("HGET");
        get.arg("govlink:sub:{p:1}:identity").arg("f");
        assert_eq!(key_of(&get), Some(b"govlink:sub:{p:1}:identity".as_slice()));
        let mut script = redis::cmd("EVALSHA");
        script.arg("abc").arg(2).arg("k1").arg("k2").arg("v");
        assert_eq!(key_of(&script), Some(b"k1".as_slice()));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0).arg("v");
        assert_eq!(key_of(&keyless), None);
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg("return 1");
        assert_eq!(key_of(&load), None);
        let mut usage = redis::cmd("MEMORY");
        usage.arg("USAGE").arg("k9").arg("SAMPLES").arg(0);
        assert_eq!(key_of(&usage), Some(b"k9".as_slice()));
    }

    #[test]
    fn shards_are_the_live_masters_serving_slots_with_their_live_replicas() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 0 3 connected
d4 127.0.0.1:7004@17004,redis-4 slave a1 0 0 1 connected
e5 127.0.0.1:7005@17005 master - 0 0 5 connected 10923-16383
f6 127.0.0.1:7006@17006 master - 0 0 6 connected
";
        let shards = shards_of(nodes).unwrap();
        let ports: Vec<(u16, usize)> = shards.iter().map(|s| (s.node.port, s.replicas)).collect();
        assert_eq!(ports, [(7001, 1), (7002, 0), (7005, 0)]);
        assert!(shards.iter().all(|s| s.node.host == "127.0.0.1"));
        assert!(shards_of("nonsense").is_err());
    }
}
