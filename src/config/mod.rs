//! Configuration: one typed `Settings`, read from an optional TOML file, then `GOVLINK_*`
//! environment variables, then command-line flags (each overriding the one before). The
//! environment is passed in, so tests never touch the process environment.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cases::plan::WorkingDays;
use crate::kafka::{SaslMechanism, SecurityProtocol};
use crate::reach::DEFAULT_CONNECT_TIMEOUT;
use crate::resolver::checks::{LoanRule, PurchaseRule};
use crate::secret::{Secret, redact_url};
use crate::tls::{IdentityMapping, TlsFiles};

mod links;
mod sources;

pub use sources::OTHER_VARIABLES;

/// Every setting of govlink. Defaults work for `dev` and `demo`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Kafka bootstrap servers (`host:port,…`). Unset: `dev`/`demo` start an embedded broker;
    /// other commands refuse to start.
    pub kafka: Option<String>,
    /// How the Kafka clients reach the brokers: `plaintext`, `ssl` (TLS), `sasl_plaintext`
    /// or `sasl_ssl` (SASL over TLS). The embedded broker of `dev`/`demo` without `kafka`
    /// is plaintext and ignores this and the `kafka_ssl_*`/`kafka_sasl_*` settings.
    pub kafka_security_protocol: SecurityProtocol,
    /// PEM file of the CA certificates that verify the brokers (`ssl`, `sasl_ssl`);
    /// unset: the system's CA certificates.
    pub kafka_ssl_ca: Option<String>,
    /// PEM file of govlink's client certificate, for brokers that authenticate clients by
    /// certificate (mutual TLS); goes with `kafka_ssl_key`.
    pub kafka_ssl_cert: Option<String>,
    /// PEM file of the private key of `kafka_ssl_cert`.
    pub kafka_ssl_key: Option<String>,
    /// SASL mechanism (`sasl_plaintext`, `sasl_ssl`): `PLAIN`, `SCRAM-SHA-256` or
    /// `SCRAM-SHA-512`.
    pub kafka_sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    pub kafka_sasl_username: Option<String>,
    /// SASL password; never printed.
    pub kafka_sasl_password: Option<Secret>,
    /// Redis URL (`redis://host:port/db`, `rediss://` for TLS; may carry a user and a
    /// password), or a Redis Cluster by some of its nodes:
    /// `redis+cluster://host:port,host:port/` (`rediss+cluster://` for TLS). Unset:
    /// `dev`/`demo` keep records in memory; the resolver refuses to start.
    pub redis: Option<String>,
    /// PEM file of the CA certificates that verify Redis's TLS certificate (`rediss://`);
    /// unset: the system's roots.
    pub redis_ca: Option<String>,
    /// Redis ACL user (with `redis_password`); overrides a user in the URL.
    pub redis_username: Option<String>,
    /// Redis password (of `redis_username`, or of the default user); overrides a password
    /// in the URL; never printed.
    pub redis_password: Option<Secret>,
    /// Address the gRPC server listens on.
    pub grpc_addr: SocketAddr,
    /// Address the admin HTTP server listens on (`/metrics`, `/healthz`, `/readyz`, the
    /// status page at `/`); empty turns it off.
    pub admin_addr: String,
    /// `/readyz` says not ready while the record store is more than this many events
    /// behind the record topics.
    pub ready_max_lag_events: u64,
    /// Prepended to every topic name, to share a broker between deployments.
    pub topic_prefix: String,
    /// Prepended to every Redis key, to share a Redis between deployments.
    pub redis_prefix: String,
    /// Partitions of a record topic when govlink creates it.
    pub partitions: i32,
    /// Replicas per partition when govlink creates a topic (3 in production).
    pub replication_factor: i32,
    /// How long record topics keep events when govlink creates them (-1: forever). A
    /// rebuild of the store reads them, so anything shorter loses what has expired.
    pub record_retention_ms: i64,
    /// Consumer group of the resolvers' materializers (each generation of the store is
    /// materialized by the group `<consumer_group>.<generation>`).
    pub consumer_group: String,
    /// The longest a publish waits for the broker's ack, and a lookup for a position,
    /// when the caller sets no shorter gRPC deadline.
    pub request_timeout_ms: u64,
    /// Records awaiting a broker ack, across all adapters of a process; beyond it a
    /// publish waits (back-pressure) until its deadline.
    pub max_in_flight: usize,
    /// The most records one batch publish may carry.
    pub max_batch: usize,
    /// Records per second one agency may publish through this process (each record of a
    /// batch counts); beyond it a publish is refused whole with `RESOURCE_EXHAUSTED` and
    /// a `RetryInfo`. 0: no limit. Per process: N adapter replicas admit N times this.
    pub publish_rate_per_agency: u32,
    /// Records an agency may publish at once after a quiet spell (its bucket's size); at
    /// least `max_batch` while the rate is limited, so a full batch can pass.
    pub publish_burst: u32,
    /// Lookups and checks per second one requester (`agency/service`) may make to this
    /// resolver; beyond it a call is refused with `RESOURCE_EXHAUSTED` and a `RetryInfo`,
    /// before it is audited. 0: no limit.
    pub lookup_rate_per_requester: u32,
    /// Lookups and checks a requester may make at once after a quiet spell.
    pub lookup_burst: u32,
    /// Calls one client connection may have open at once (HTTP/2
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`); a client waits for a free stream beyond it.
    /// 0: no limit.
    pub max_concurrent_streams: u32,
    /// The most events the materializer writes to the store in one round trip.
    pub materializer_batch: usize,
    /// How long the materializer waits for a batch to fill.
    pub materializer_linger_ms: u64,
    /// How long start-up waits for topics to be created and visible.
    pub startup_timeout_ms: u64,
    /// How long a command waits for the broker or Redis to answer when it first connects;
    /// past it, it stops with one line naming what it could not reach, where, and what to
    /// check.
    pub connect_timeout_ms: u64,
    /// How long shutdown waits for in-flight calls and the producer to finish.
    pub shutdown_grace_ms: u64,
    /// How far an agency's clock may run ahead of ours: `occurred_at` and dates of past
    /// events (signed, issued, born, ...) up to this far beyond now are accepted.
    pub max_clock_skew_ms: u64,
    /// Log as JSON lines instead of text.
    pub log_json: bool,
    /// The access policy file (TOML, see `deploy/policy.toml`): its grants and its
    /// integrations. The adapters (with TLS), the resolver and the case engine refuse to
    /// start without one; `dev` and `demo` use that example when it is unset.
    pub policy: Option<String>,
    /// The working-day calendar file (TOML, see `deploy/calendar.toml`: public holidays
    /// and make-up working days per year); the built-in one when unset.
    pub calendar: Option<String>,
    /// Not a setting: the host this process runs on, as its audit chains name it — the
    /// `HOSTNAME` of the environment the settings were loaded with, else the kernel's
    /// host name.
    #[serde(skip)]
    pub host: String,
    /// Take each lookup's requester from the `x-govlink-requester` metadata, unchecked.
    /// Anyone who can reach the port can then claim to be any agency: for `dev`, `demo`
    /// and tests only (they turn it on). Off: lookups need an identity from the transport.
    pub insecure_requester_header: bool,
    /// The gRPC servers' certificate chain (PEM, leaf first). With `tls_key` and
    /// `tls_client_ca` set, every gRPC endpoint serves TLS 1.3 only and identifies each
    /// caller by its client certificate (see docs/security.md); `govlink certs init`
    /// writes a development set.
    pub tls_cert: Option<String>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<String>,
    /// The CAs client certificates must be issued by (PEM bundle).
    pub tls_client_ca: Option<String>,
    /// Revoked client certificates: a CRL file (PEM, or one DER) of the CAs of
    /// `tls_client_ca`. The TLS files are read again on SIGHUP and when they change.
    pub tls_crl: Option<String>,
    /// How a client certificate names its requester: `uri` (a URI SAN
    /// `spiffe://<tls_trust_domain>/agency/<agency>/svc/<service>`) or `subject`
    /// (O = agency, CN = service).
    pub tls_identity: String,
    /// The trust domain of the `uri` identities.
    pub tls_trust_domain: String,
    /// Local purchase rules `CheckPropertyTransfer` applies to buyers (e.g. 24 months of
    /// social-security contributions in the region within the last 36).
    pub purchase_rules: Vec<PurchaseRule>,
    /// The provident fund's loan rule `CheckProvidentFundLoan` applies: months of
    /// unbroken deposits required, the balance multiple and cap of the largest loan, and
    /// local rules for applicants from elsewhere. In the environment, the numbers only:
    /// `GOVLINK_PROVIDENT_FUND_LOAN="deposit_months_required=12,cap_fen=100000000"`.
    pub provident_fund_loan: LoanRule,
    /// How long `ListDataAccesses` shows an access after it happened, in days.
    pub access_retention_days: u32,
    /// How often each audit writer records its chain's head on the checkpoint topic.
    pub audit_checkpoint_interval_ms: u64,
    /// How often the case engine asks every open case whether a step is overdue.
    pub case_deadline_check_ms: u64,
    /// Working days a case step may take once open, by step name (e.g. `loan_settled =
    /// 10`), for the steps that should not have their plan's number. In the environment:
    /// `GOVLINK_STEP_WORKING_DAYS="loan_settled=10,title_registered=3"`.
    pub step_working_days: BTreeMap<String, u32>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            kafka: None,
            kafka_security_protocol: SecurityProtocol::Plaintext,
            kafka_ssl_ca: None,
            kafka_ssl_cert: None,
            kafka_ssl_key: None,
            kafka_sasl_mechanism: None,
            kafka_sasl_username: None,
            kafka_sasl_password: None,
            redis: None,
            redis_ca: None,
            redis_username: None,
            redis_password: None,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_addr: DEFAULT_ADMIN_ADDR.into(),
            ready_max_lag_events: 10_000,
            topic_prefix: String::new(),
            redis_prefix: "govlink:".into(),
            partitions: 6,
            replication_factor: 1,
            record_retention_ms: -1,
            consumer_group: "govlink-resolver".into(),
            request_timeout_ms: 10_000,
            max_in_flight: 10_000,
            max_batch: 500,
            publish_rate_per_agency: 100_000,
            publish_burst: 100_000,
            lookup_rate_per_requester: 50_000,
            lookup_burst: 50_000,
            max_concurrent_streams: 256,
            materializer_batch: 500,
            materializer_linger_ms: 5,
            startup_timeout_ms: 30_000,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT.as_millis() as u64,
            shutdown_grace_ms: 10_000,
            max_clock_skew_ms: 3_600_000,
            log_json: false,
            policy: None,
            calendar: None,
            host: String::new(),
            insecure_requester_header: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_crl: None,
            tls_identity: "uri".into(),
            tls_trust_domain: crate::tls::certs::DEV_TRUST_DOMAIN.into(),
            purchase_rules: Vec::new(),
            provident_fund_loan: LoanRule::default(),
            access_retention_days: 3 * 365,
            audit_checkpoint_interval_ms: 5_000,
            case_deadline_check_ms: 3_600_000,
            step_working_days: BTreeMap::new(),
        }
    }
}

/// Where the admin HTTP server listens unless configured otherwise.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9464";

/// The largest `max_clock_skew_ms` accepted: one day.
const MAX_CLOCK_SKEW_MS: u64 = 86_400_000;

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An environment variable, or the settings taken together, do not fit.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The configuration file does not fit the settings, at a line.
    #[error("{file}: line {line}: {message}")]
    File {
        /// The file, as the operator named it.
        file: String,
        /// 1-based.
        line: usize,
        /// What is wrong there, naming the key.
        message: String,
    },
}

impl Settings {
    /// Settings from an optional TOML file's text, overridden by `GOVLINK_<FIELD>`
    /// variables of `env` (e.g. `GOVLINK_KAFKA`, `GOVLINK_REQUEST_TIMEOUT_MS`). A problem
    /// in the file is reported as in "config file"; see [`Settings::load_file`].
    pub fn load(
        file: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        match file {
            Some(text) => Settings::load_file("config file", text, env),
            None => Settings::from_table(toml::Table::new(), env),
        }
    }

    /// Settings from the TOML file `name` (its path as the operator gave it, for errors:
    /// `config.toml: line 3: partitions: expected an integer, found a string "six"`) whose
    /// text is `text`, overridden by the `GOVLINK_<FIELD>` variables of `env`.
    pub fn load_file(
        name: &str,
        text: &str,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        Settings::from_table(sources::file(name, text)?, env)
    }

    /// The settings of `file`'s table with the environment's over it, checked.
    fn from_table(
        mut table: toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        table.extend(sources::environment(env)?);
        // Each source fitted the settings alone; together they still may not (the
        // checks below say why), but not by type.
        let settings: Settings = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        settings.check()?;
        Ok(Settings {
            host: host_name(env),
            ..settings
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("partitions", self.partitions > 0),
            ("replication_factor", self.replication_factor > 0),
            ("max_in_flight", self.max_in_flight > 0),
            ("max_batch", self.max_batch > 0),
            ("materializer_batch", self.materializer_batch > 0),
            ("request_timeout_ms", self.request_timeout_ms > 0),
            ("access_retention_days", self.access_retention_days > 0),
            (
                "audit_checkpoint_interval_ms",
                self.audit_checkpoint_interval_ms > 0,
            ),
            ("case_deadline_check_ms", self.case_deadline_check_ms > 0),
        ];
        for (name, ok) in positive {
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be more than zero"
                )));
            }
        }
        if self.publish_rate_per_agency > 0 && (self.publish_burst as usize) < self.max_batch {
            return Err(ConfigError::Invalid(format!(
                "publish_burst ({}) must be at least max_batch ({}) while \
                 publish_rate_per_agency is set: a full batch could never pass",
                self.publish_burst, self.max_batch
            )));
        }
        if self.lookup_rate_per_requester > 0 && self.lookup_burst == 0 {
            return Err(ConfigError::Invalid(
                "lookup_burst must be more than zero while lookup_rate_per_requester is set".into(),
            ));
        }
        // Beyond a day, "not in the future" would no longer refuse tomorrow's date.
        if self.max_clock_skew_ms > MAX_CLOCK_SKEW_MS {
            return Err(ConfigError::Invalid(format!(
                "max_clock_skew_ms must be at most {MAX_CLOCK_SKEW_MS} (one day)"
            )));
        }
        self.working_days()?;
        self.admin_addr()?;
        self.tls()?;
        self.kafka_link().map_err(ConfigError::Invalid)?;
        self.check_redis().map_err(ConfigError::Invalid)?;
        for (i, rule) in self.purchase_rules.iter().enumerate() {
            rule.validate()
                .map_err(|e| ConfigError::Invalid(format!("purchase_rules[{i}]: {e}")))?;
        }
        self.provident_fund_loan
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("provident_fund_loan.{e}")))?;
        Ok(())
    }

    /// The admin HTTP server's address; `None` when it is off (`admin_addr` empty).
    pub fn admin_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.admin_addr.trim().is_empty() {
            return Ok(None);
        }
        self.admin_addr.trim().parse().map(Some).map_err(|_| {
            ConfigError::Invalid(format!(
                "admin_addr must be host:port (e.g. {DEFAULT_ADMIN_ADDR}) or empty, not {:?}",
                self.admin_addr
            ))
        })
    }

    /// The TLS files and identity mapping of the gRPC servers; `None` when TLS is off
    /// (none of `tls_cert`, `tls_key`, `tls_client_ca` set).
    pub fn tls(&self) -> Result<Option<(TlsFiles, IdentityMapping)>, ConfigError> {
        let mapping = match self.tls_identity.as_str() {
            "uri" => {
                let domain = &self.tls_trust_domain;
                if domain.is_empty() || domain.contains(['/', ':']) {
                    return Err(ConfigError::Invalid(format!(
                        "tls_trust_domain must be a domain name such as gov.example, not {domain:?}"
                    )));
                }
                IdentityMapping::Uri {
                    trust_domain: domain.clone(),
                }
            }
            "subject" => IdentityMapping::Subject,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "tls_identity must be uri or subject, not {other:?}"
                )));
            }
        };
        let files = (&self.tls_cert, &self.tls_key, &self.tls_client_ca);
        match files {
            (None, None, None) if self.tls_crl.is_none() => Ok(None),
            (Some(cert), Some(key), Some(client_ca)) => Ok(Some((
                TlsFiles {
                    cert: cert.into(),
                    key: key.into(),
                    client_ca: client_ca.into(),
                    crl: self.tls_crl.as_ref().map(Into::into),
                },
                mapping,
            ))),
            _ => Err(ConfigError::Invalid(
                "TLS needs all of tls_cert, tls_key and tls_client_ca (tls_crl is optional); \
                 some are set, some are not"
                    .into(),
            )),
        }
    }

    /// These settings with TLS from a directory written by `govlink certs init`.
    pub fn with_certs_dir(mut self, dir: &std::path::Path) -> Settings {
        let dir = crate::tls::certs::CertsDir::new(dir);
        let text = |p: std::path::PathBuf| Some(p.display().to_string());
        self.tls_cert = text(dir.server().cert);
        self.tls_key = text(dir.server().key);
        self.tls_client_ca = text(dir.ca());
        self.tls_crl = text(dir.crl());
        self
    }

    /// Working days per step kind: the plans', with `step_working_days` applied.
    pub fn working_days(&self) -> Result<WorkingDays, ConfigError> {
        WorkingDays::configured(&self.step_working_days).map_err(ConfigError::Invalid)
    }

    /// `access_retention_days` as a duration.
    pub fn access_retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.access_retention_days) * 86_400)
    }

    /// `case_deadline_check_ms` as a duration.
    pub fn case_deadline_check(&self) -> Duration {
        Duration::from_millis(self.case_deadline_check_ms)
    }

    /// `audit_checkpoint_interval_ms` as a duration.
    pub fn audit_checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.audit_checkpoint_interval_ms)
    }

    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// `startup_timeout_ms` as a duration.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }

    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// `max_clock_skew_ms` as a duration.
    pub fn max_clock_skew(&self) -> Duration {
        Duration::from_millis(self.max_clock_skew_ms)
    }

    /// `shutdown_grace_ms` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("kafka", &self.kafka)
            .field("kafka_security_protocol", &self.kafka_security_protocol)
            .field("kafka_ssl_ca", &self.kafka_ssl_ca)
            .field("kafka_ssl_cert", &self.kafka_ssl_cert)
            .field("kafka_ssl_key", &self.kafka_ssl_key)
            .field("kafka_sasl_mechanism", &self.kafka_sasl_mechanism)
            .field("kafka_sasl_username", &self.kafka_sasl_username)
            .field("kafka_sasl_password", &self.kafka_sasl_password)
            .field("redis", &self.redis.as_deref().map(redact_url))
            .field("redis_ca", &self.redis_ca)
            .field("redis_username", &self.redis_username)
            .field("redis_password", &self.redis_password)
            .field("grpc_addr", &self.grpc_addr)
            .field("topic_prefix", &self.topic_prefix)
            .field("redis_prefix", &self.redis_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("consumer_group", &self.consumer_group)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_batch", &self.max_batch)
            .field("publish_rate_per_agency", &self.publish_rate_per_agency)
            .field("publish_burst", &self.publish_burst)
            .field("lookup_rate_per_requester", &self.lookup_rate_per_requester)
            .field("lookup_burst", &self.lookup_burst)
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .field("policy", &self.policy)
            .field("insecure_requester_header", &self.insecure_requester_header)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_client_ca", &self.tls_client_ca)
            .field("tls_crl", &self.tls_crl)
            .field("tls_identity", &self.tls_identity)
            .finish_non_exhaustive()
    }
}

/// `HOSTNAME` of `env`, else the kernel's host name, else empty.
fn host_name(env: &HashMap<String, String>) -> String {
    env.get("HOSTNAME")
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
