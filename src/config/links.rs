//! The links the settings describe: the brokers, Redis, the certificate files of each.
//! The links themselves (`kafka`, `redis_link`, `tls`) know nothing of settings; they
//! are built here, once, and every check that names a setting is made here, when the
//! settings are loaded, not when a client first connects.

use crate::kafka::{Brokers, LinkSecurity, Sasl};
use crate::redis_link::RedisLink;
use crate::tls::TlsFiles;
use crate::tls::expiry::CertificateRole;

use super::{ConfigError, Settings};

impl Settings {
    /// The configured brokers (`kafka` and its link settings); `None` without `kafka`.
    pub fn brokers(&self) -> Result<Option<Brokers>, String> {
        let Some(bootstrap) = &self.kafka else {
            return Ok(None);
        };
        Ok(Some(Brokers::new(bootstrap.clone(), self.kafka_link()?)))
    }

    /// The link the `kafka_security_protocol`, `kafka_ssl_*` and `kafka_sasl_*` settings
    /// describe; an error names the setting that is missing, contradicts another one, or
    /// names a file that cannot be read.
    pub fn kafka_link(&self) -> Result<LinkSecurity, String> {
        let protocol = self.kafka_security_protocol;
        let files = [
            ("kafka_ssl_ca", &self.kafka_ssl_ca),
            ("kafka_ssl_cert", &self.kafka_ssl_cert),
            ("kafka_ssl_key", &self.kafka_ssl_key),
        ];
        for (name, path) in files {
            let Some(path) = path else { continue };
            if !protocol.tls() {
                return Err(format!(
                    "{name} is set but kafka_security_protocol is {}: TLS files need ssl or \
                     sasl_ssl",
                    protocol.as_str()
                ));
            }
            readable(name, path)?;
        }
        let client_cert = match (&self.kafka_ssl_cert, &self.kafka_ssl_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                return Err(
                    "kafka_ssl_cert and kafka_ssl_key go together: set both or neither".into(),
                );
            }
        };
        Ok(LinkSecurity::new(
            protocol,
            self.kafka_ssl_ca.clone(),
            client_cert,
            self.kafka_sasl()?,
        ))
    }

    /// The SASL credentials: all three with a SASL protocol, none without.
    fn kafka_sasl(&self) -> Result<Option<Sasl>, String> {
        let protocol = self.kafka_security_protocol;
        if !protocol.sasl() {
            let set = [
                ("kafka_sasl_mechanism", self.kafka_sasl_mechanism.is_some()),
                ("kafka_sasl_username", self.kafka_sasl_username.is_some()),
                ("kafka_sasl_password", self.kafka_sasl_password.is_some()),
            ];
            return match set.into_iter().find(|(_, set)| *set) {
                Some((name, _)) => Err(format!(
                    "{name} is set but kafka_security_protocol is {}: SASL needs \
                     sasl_plaintext or sasl_ssl",
                    protocol.as_str()
                )),
                None => Ok(None),
            };
        }
        let missing = |name: &str| {
            format!(
                "kafka_security_protocol {} needs {name} to be set",
                protocol.as_str()
            )
        };
        Ok(Some(Sasl {
            mechanism: self
                .kafka_sasl_mechanism
                .ok_or_else(|| missing("kafka_sasl_mechanism"))?,
            username: self
                .kafka_sasl_username
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| missing("kafka_sasl_username"))?,
            password: self
                .kafka_sasl_password
                .clone()
                .ok_or_else(|| missing("kafka_sasl_password"))?,
        }))
    }

    /// The configured Redis (`redis`, `redis_ca`, `redis_username`, `redis_password`,
    /// `connect_timeout_ms`); `None` without `redis`.
    pub fn redis_link(&self) -> Option<RedisLink> {
        let url = self.redis.as_ref()?;
        Some(
            RedisLink::new(url.clone())
                .with_login(
                    self.redis_ca.clone(),
                    self.redis_username.clone(),
                    self.redis_password.clone(),
                )
                .with_connect_timeout(self.connect_timeout()),
        )
    }

    /// Checks the Redis settings for what would only fail later: a CA bundle that cannot
    /// be read or is given for a URL without TLS, a user without a password.
    pub(super) fn check_redis(&self) -> Result<(), String> {
        if let Some(link) = self.redis_link() {
            link.check().map_err(|e| format!("redis: {e}"))?;
        }
        if let Some(ca) = &self.redis_ca {
            readable("redis_ca", ca)?;
            if let Some(url) = &self.redis
                && !(url.starts_with("rediss://") || url.starts_with("rediss+cluster://"))
            {
                return Err(format!(
                    "redis_ca is set but redis ({}) is not a rediss:// URL",
                    crate::secret::redact_url(url)
                ));
            }
        }
        if self.redis_username.is_some() && self.redis_password.is_none() {
            return Err("redis_username needs redis_password".into());
        }
        Ok(())
    }

    /// The gRPC servers' TLS files; `None` when TLS is off.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        Ok(self.tls()?.map(|(files, _)| files))
    }

    /// The certificate files of the links the process uses (`kafka` or `redis` set), for
    /// their expiry to be reported.
    pub fn link_certificates(&self) -> Vec<(CertificateRole, &str)> {
        let kafka = self.kafka.is_some();
        let redis = self.redis.is_some();
        [
            (CertificateRole::KafkaCa, &self.kafka_ssl_ca, kafka),
            (CertificateRole::KafkaClient, &self.kafka_ssl_cert, kafka),
            (CertificateRole::RedisCa, &self.redis_ca, redis),
        ]
        .into_iter()
        .filter_map(|(role, path, used)| Some((role, path.as_deref().filter(|_| used)?)))
        .collect()
    }
}

/// Checks that the file a setting names can be read now, not when a client first needs
/// it; the error names the setting and the path.
pub(super) fn readable(setting: &str, path: &str) -> Result<(), String> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("{setting} {path} cannot be read: {e}"))
}

#[cfg(test)]
mod tests;
