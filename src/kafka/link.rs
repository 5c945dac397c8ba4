//! How govlink reaches the brokers: their bootstrap address and the link's security (TLS,
//! a client certificate, SASL), built once (by `config`, from the settings) and given to every Kafka
//! client, so the producer, the consumers, the admin clients and the tools all connect
//! the same way.

use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};

use crate::reach::ReachError;
use crate::secret::Secret;

/// `kafka_security_protocol`: whether the link is encrypted (TLS) and authenticated (SASL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecurityProtocol {
    /// Neither TLS nor SASL (the embedded broker, a broker on a private network).
    #[default]
    Plaintext,
    /// TLS, optionally with a client certificate.
    Ssl,
    /// SASL without TLS: the credentials cross the network unencrypted (SCRAM does not
    /// send the password itself, PLAIN does).
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// The setting's value, which is also librdkafka's `security.protocol` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether the link is TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the link authenticates with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl TryFrom<String> for SecurityProtocol {
    type Error = String;

    fn try_from(value: String) -> Result<SecurityProtocol, String> {
        SecurityProtocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| {
                format!(
                    "kafka_security_protocol must be plaintext, ssl, sasl_plaintext or \
                     sasl_ssl, not {value:?}"
                )
            })
    }
}

impl From<SecurityProtocol> for String {
    fn from(protocol: SecurityProtocol) -> String {
        protocol.as_str().to_owned()
    }
}

/// `kafka_sasl_mechanism`: how the SASL credentials are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SaslMechanism {
    /// The password itself is sent: only over TLS unless the network is trusted.
    Plain,
    /// A SCRAM exchange with SHA-256; the password never crosses the link.
    ScramSha256,
    /// A SCRAM exchange with SHA-512.
    ScramSha512,
}

impl SaslMechanism {
    const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    /// The setting's value, which is also librdkafka's `sasl.mechanisms` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl TryFrom<String> for SaslMechanism {
    type Error = String;

    fn try_from(value: String) -> Result<SaslMechanism, String> {
        SaslMechanism::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| {
                format!(
                    "kafka_sasl_mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, \
                     not {value:?}"
                )
            })
    }
}

impl From<SaslMechanism> for String {
    fn from(mechanism: SaslMechanism) -> String {
        mechanism.as_str().to_owned()
    }
}

/// SASL credentials.
#[derive(Clone, Debug)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// The security of the link to the brokers: what `client_config` adds to every client.
#[derive(Clone, Debug, Default)]
pub struct LinkSecurity {
    protocol: SecurityProtocol,
    /// PEM files: the CAs that verify the brokers, govlink's certificate and its key.
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    sasl: Option<Sasl>,
}

impl LinkSecurity {
    /// A link over `protocol`: with TLS, the CAs that verify the brokers in `ca` (PEM;
    /// the system's without) and govlink's certificate and key (PEM files) in
    /// `client_cert`; SASL credentials in `sasl`. The settings are checked where they are
    /// read (`config`): this takes them as they are.
    pub fn new(
        protocol: SecurityProtocol,
        ca: Option<String>,
        client_cert: Option<(String, String)>,
        sasl: Option<Sasl>,
    ) -> LinkSecurity {
        let (cert, key) = client_cert.unzip();
        LinkSecurity {
            protocol,
            ca,
            cert,
            key,
            sasl,
        }
    }

    /// The protocol of the link.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// Adds the link's properties to a client's configuration.
    fn apply(&self, config: &mut ClientConfig) {
        config.set("security.protocol", self.protocol.as_str());
        let files = [
            ("ssl.ca.location", &self.ca),
            ("ssl.certificate.location", &self.cert),
            ("ssl.key.location", &self.key),
        ];
        for (property, path) in files {
            if let Some(path) = path {
                config.set(property, path);
            }
        }
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanisms", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
    }
}

/// The brokers a process talks to and how: every Kafka client of govlink is configured
/// from one of these (see [`client_config`](super::client_config)).
#[derive(Clone, Debug)]
pub struct Brokers {
    bootstrap: String,
    security: LinkSecurity,
}

impl Brokers {
    /// Brokers at `bootstrap` (`host:port,…`) over a link secured as `security` says.
    pub fn new(bootstrap: impl Into<String>, security: LinkSecurity) -> Brokers {
        Brokers {
            bootstrap: bootstrap.into(),
            security,
        }
    }

    /// Brokers at `bootstrap` over a plaintext link (the embedded broker, tests).
    pub fn plaintext(bootstrap: impl Into<String>) -> Brokers {
        Brokers::new(bootstrap, LinkSecurity::default())
    }

    /// The bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The link's security.
    pub fn security(&self) -> &LinkSecurity {
        &self.security
    }

    /// Waits until a broker answers a metadata request, at most `timeout`. Every command
    /// asks this before anything else of the brokers, so one that cannot reach them
    /// stops within `connect_timeout_ms` with one line naming them and what to check,
    /// not after librdkafka's retries with its own words.
    pub async fn reachable(&self, timeout: Duration) -> Result<(), ReachError> {
        let config = super::client_config(self, "govlink-connect");
        // The request blocks until a broker answers or the time is up: keep it off the
        // async workers, and let it end on its own timeout (it is awaited, never dropped).
        let answered = tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = config.create()?;
            client.fetch_metadata(None, timeout).map(drop)
        })
        .await;
        match answered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if super::admin::refused(&e) => {
                let why = e
                    .rdkafka_error_code()
                    .map_or_else(|| e.to_string(), |code| code.to_string());
                Err(ReachError::kafka_refused(&self.bootstrap, &why))
            }
            Ok(Err(KafkaError::ClientCreation(why))) => {
                Err(ReachError::kafka_unusable(&self.bootstrap, &why))
            }
            Ok(Err(_)) | Err(_) => Err(ReachError::kafka_silent(
                &self.bootstrap,
                timeout,
                self.security.protocol != SecurityProtocol::Plaintext,
            )),
        }
    }

    /// Sets the bootstrap servers and the link's security on `config`.
    pub(super) fn apply(&self, config: &mut ClientConfig) {
        config.set("bootstrap.servers", &self.bootstrap);
        self.security.apply(config);
    }
}

/// `host:port (protocol)`, for logs.
impl fmt::Display for Brokers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            self.bootstrap,
            self.security.protocol.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_mechanisms_parse_in_either_case_and_name_the_setting() {
        let p = SecurityProtocol::try_from("SASL_SSL".to_owned()).unwrap();
        assert_eq!(p, SecurityProtocol::SaslSsl);
        let err = SecurityProtocol::try_from("tls".to_owned()).unwrap_err();
        assert!(err.starts_with("kafka_security_protocol must be"), "{err}");
        let m = SaslMechanism::try_from("scram-sha-256".to_owned()).unwrap();
        assert_eq!(m, SaslMechanism::ScramSha256);
        let err = SaslMechanism::try_from("GSSAPI".to_owned()).unwrap_err();
        assert!(err.contains("not \"GSSAPI\""), "{err}");
    }
}
