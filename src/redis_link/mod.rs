//! How govlink reaches Redis: the URL (`redis://`, or `rediss://` for TLS; a Redis Cluster
//! as `redis+cluster://host:port,host:port/` or `rediss+cluster://`), the CA bundle that
//! verifies a TLS server, and the ACL user and password. Every Redis client of govlink
//! (record store, case store, access index, admin checks, tools, bench) is opened here, as
//! a [`RedisConn`] that works the same on one server and on a cluster.

mod conn;

pub use conn::{Node, REPLICATION_WAIT_MS, RedisConn, group_by_slot};

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::{ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError, RedisResult};

use crate::reach::{DEFAULT_CONNECT_TIMEOUT, ReachError};
use crate::secret::{Secret, redact_url};

/// The longest one command may wait for its answer on a connection of
/// [`RedisLink::connect`]: a Redis that stopped answering fails the command, which its
/// caller retries or reports. Lookups wait no longer than their own deadline besides.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection attempts after the first when a connection of [`RedisLink::connect`] is
/// lost (on a cluster: retries of a command whose node is unreachable, moved or failing
/// over). Every command waits for them, so a few: a command fails soon while Redis is
/// down (its caller retries with its own backoff, a lookup answers `UNAVAILABLE`), and
/// the next command tries again.
const RECONNECT_RETRIES: usize = 1;

/// Retries of a cluster command (after a `MOVED`, a lost node, a failover in progress)
/// before it fails to its caller, who retries or reports it as every Redis failure.
const CLUSTER_RETRIES: u32 = 3;

/// The longest pause between those attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(200);

/// Where Redis is and how to log in. Its `Debug` and `Display` show the URL without its
/// password and never the password.
#[derive(Clone)]
pub struct RedisLink {
    url: String,
    /// PEM file of the CAs that verify a `rediss://` server; the system's roots without it.
    ca: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
    /// How long [`RedisLink::connect`] waits for Redis to answer (`connect_timeout_ms`).
    connect_timeout: Duration,
}

impl RedisLink {
    /// Redis at `url`, with whatever credentials the URL carries and the system's roots
    /// for `rediss://`.
    pub fn new(url: impl Into<String>) -> RedisLink {
        RedisLink {
            url: url.into(),
            ca: None,
            username: None,
            password: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The same link with `redis_ca`, `redis_username` and `redis_password` as given.
    pub fn with_login(
        mut self,
        ca: Option<String>,
        username: Option<String>,
        password: Option<Secret>,
    ) -> RedisLink {
        (self.ca, self.username, self.password) = (ca, username, password);
        self
    }

    /// The same link waiting `timeout` for Redis to answer a connection
    /// (`connect_timeout_ms`).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> RedisLink {
        self.connect_timeout = timeout;
        self
    }

    /// A connection to this Redis (or cluster) that reconnects on its own, connected and
    /// logged in within `connect_timeout_ms`. Every long-lived Redis client of govlink (the
    /// record store, the case store, the access index) is made here, so a Redis that
    /// cannot be reached stops each command the same way: one line naming it, at once.
    pub async fn connect(&self) -> Result<RedisConn, ReachError> {
        let connecting = async {
            if self.cluster_nodes().is_some() {
                let client = self.cluster_client()?;
                client.get_async_connection().await.map(RedisConn::Cluster)
            } else {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_max_delay(RECONNECT_MAX_DELAY);
                let manager = ConnectionManager::new_with_config(self.client()?, config).await;
                manager.map(RedisConn::Single)
            }
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.failed(&e)),
            Err(_) => Err(ReachError::redis_silent(
                &self.to_string(),
                self.connect_timeout,
                self.tls(),
            )),
        }
    }

    /// Whether the URL names what a connection needs: for a cluster, at least one node
    /// and database 0 only. The error speaks of the URL without its password.
    pub fn check(&self) -> Result<(), String> {
        match self.cluster_nodes() {
            Some(Err(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
    }

    /// Whether the link names a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster_nodes().is_some()
    }

    /// The seed nodes of a `redis+cluster://` or `rediss+cluster://` URL as one URL each
    /// (`redis://[login@]host:port/`), carrying the URL's login; `None` for one server.
    fn cluster_nodes(&self) -> Option<RedisResult<Vec<String>>> {
        let (scheme, rest) = match self.url.split_once("://")? {
            ("redis+cluster", rest) => ("redis", rest),
            ("rediss+cluster", rest) => ("rediss", rest),
            _ => return None,
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (login, hosts) = match authority.rsplit_once('@') {
            Some((login, hosts)) => (format!("{login}@"), hosts),
            None => (String::new(), authority),
        };
        let invalid = |why: &'static str| {
            RedisError::from((ErrorKind::InvalidClientConfig, why, redact_url(&self.url)))
        };
        if !matches!(path, "" | "0") {
            return Some(Err(invalid("a Redis Cluster has only database 0")));
        }
        let nodes: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|host| format!("{scheme}://{login}{host}/"))
            .collect();
        if nodes.is_empty() {
            return Some(Err(invalid("a redis+cluster:// URL names no node")));
        }
        Some(Ok(nodes))
    }

    /// A client for the cluster this link names, with its login, timeouts and CA.
    fn cluster_client(&self) -> RedisResult<ClusterClient> {
        let nodes = self.cluster_nodes().unwrap_or_else(|| Ok(Vec::new()))?;
        let mut infos = Vec::with_capacity(nodes.len());
        for node in &nodes {
            infos.push(self.login(node.as_str().into_connection_info()?)?);
        }
        let first = infos.first().cloned();
        let mut builder = ClusterClient::builder(infos)
            .connection_timeout(self.connect_timeout)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .max_retry_wait(RECONNECT_MAX_DELAY.as_millis() as u64);
        if let Some(info) = first {
            let settings = info.redis_settings();
            if let Some(username) = settings.username() {
                builder = builder.username(username);
            }
            if let Some(password) = settings.password() {
                builder = builder.password(password);
            }
        }
        if let Some(root_cert) = self.root_cert()? {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            });
        }
        builder.build()
    }

    /// `error`, met while connecting to this Redis, as the operator reads it.
    pub fn failed(&self, error: &RedisError) -> ReachError {
        ReachError::redis(&self.to_string(), error, self.tls())
    }

    /// Whether the link is TLS (`rediss://`).
    fn tls(&self) -> bool {
        self.url.starts_with("rediss://") || self.url.starts_with("rediss+cluster://")
    }

    /// A client for this link, one server (nothing is connected yet). Its errors never
    /// carry the password: the redis crate reports a URL that does not parse without the
    /// URL.
    pub fn client(&self) -> RedisResult<redis::Client> {
        if self.is_cluster() {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a single-server client was asked of a Redis Cluster link",
                redact_url(&self.url),
            )));
        }
        let info = self.login(self.url.as_str().into_connection_info()?)?;
        match self.root_cert()? {
            None => redis::Client::open(info),
            Some(root_cert) => {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(info, certificates)
            }
        }
    }

    /// `info` with the configured user and password, checked for what TLS needs.
    fn login(&self, info: redis::ConnectionInfo) -> RedisResult<redis::ConnectionInfo> {
        let mut login = info.redis_settings().clone();
        if let Some(username) = &self.username {
            login = login.set_username(username);
        }
        if let Some(password) = &self.password {
            login = login.set_password(password.expose());
        }
        if self.tls() && rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "rediss:// needs the process's TLS crypto provider",
                "tls::install_process_provider() was not called at start".to_owned(),
            )));
        }
        if !self.tls() && matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a TLS node in a plain redis URL",
            )));
        }
        Ok(info.set_redis_settings(login))
    }

    /// The PEM bundle of `redis_ca`, for a TLS link; `None` without one.
    fn root_cert(&self) -> RedisResult<Option<Vec<u8>>> {
        match (&self.ca, self.tls()) {
            (None, _) => Ok(None),
            (Some(ca), true) => std::fs::read(ca).map(Some).map_err(|e| {
                RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "redis_ca cannot be read",
                    format!("{ca}: {e}"),
                ))
            }),
            (Some(_), false) => Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "redis_ca is set but the redis URL is not rediss://",
            ))),
        }
    }
}

/// Whether a Redis error may go away if the same call is tried again later (Redis
/// unreachable, busy, loading, failing over) as opposed to a refusal that will repeat.
/// Shared by everything that writes to Redis and retries.
pub fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        )
}

/// The URL without its password, for logs.
impl fmt::Display for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

impl fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLink")
            .field("url", &redact_url(&self.url))
            .field("ca", &self.ca)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_password_overrides_the_urls_and_nothing_prints_either() {
        let link = RedisLink::new("redis://u:url-s3cret@127.0.0.1:6390/2").with_login(
            None,
            Some("acl-user".into()),
            Some(Secret::new("settings-s3cret")),
        );
        let client = link.client().unwrap();
        let login = client.get_connection_info().redis_settings();
        assert_eq!(login.username(), Some("acl-user"));
        assert_eq!(login.password(), Some("settings-s3cret"));
        assert_eq!(login.db(), 2);
        let printed = format!("{link:?} {link} {client:?}");
        for secret in ["url-s3cret", "settings-s3cret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn a_cluster_is_named_by_its_nodes_with_one_login_and_database_0() {
        let link = RedisLink::new("redis+cluster://u:s3cret@127.0.0.1:7001,127.0.0.1:7002/");
        assert!(link.is_cluster());
        assert_eq!(
            link.cluster_nodes().unwrap().unwrap(),
            [
                "redis://u:s3cret@127.0.0.1:7001/",
                "redis://u:s3cret@127.0.0.1:7002/"
            ]
        );
        assert!(
            link.client().is_err(),
            "no single-server client of a cluster"
        );
        for bad in [
            "redis+cluster:///",
            "redis+cluster://u:s3cret@127.0.0.1:7001/3",
        ] {
            let err = RedisLink::new(bad).check().unwrap_err();
            assert!(err.contains("node") || err.contains("database 0"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        assert!(!RedisLink::new("redis://127.0.0.1:6379/").is_cluster());
    }

    #[test]
    fn tls_urls_are_accepted_and_a_ca_needs_one() {
        crate::tls::install_process_provider();
        let link = RedisLink::new("rediss://127.0.0.1:6390/");
        let client = link.client().unwrap();
        assert!(matches!(
            client.get_connection_info().addr(),
            ConnectionAddr::TcpTls { .. }
        ));

        let missing = RedisLink::new("rediss://127.0.0.1:6390/").with_login(
            Some("/nonexistent/govlink/redis-ca.pem".into()),
            None,
            None,
        );
        let err = missing.client().unwrap_err().to_string();
        assert!(err.contains("redis_ca cannot be read"), "{err}");
        assert!(err.contains("/nonexistent/govlink/redis-ca.pem"), "{err}");

        let plain = RedisLink::new("redis://127.0.0.1:6390/").with_login(
            Some("/etc/hostname".into()),
            None,
            None,
        );
        let err = plain.client().unwrap_err().to_string();
        assert!(err.contains("not rediss://"), "{err}");
    }
}
