//! Certificate validity dates: a server whose own certificate has expired (or is not yet
//! valid) refuses to start, naming the file and the date, instead of failing every
//! handshake; every configured certificate — the server's, the client CA bundle, the
//! Kafka and Redis links' — is reported at start-up and at each reload, with a warning
//! when one expires within [`WARN_WITHIN`] and a gauge of the seconds left
//! (`govlink_certificate_expiry_seconds`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{TlsError, content, read_certs};
use crate::telemetry::events::Event;
use crate::telemetry::metrics::Metrics;

/// A certificate expiring sooner than this is warned about at start-up and reload.
pub const WARN_WITHIN: Duration = Duration::from_secs(30 * 86_400);

/// Which configured certificate file (a metric label: a few values, never a subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CertificateRole {
    /// The servers' own chain (`tls_cert`).
    Server,
    /// The CAs client certificates must come from (`tls_client_ca`).
    ClientCa,
    /// The CAs that verify the Kafka brokers (`kafka_ssl_ca`).
    KafkaCa,
    /// govlink's client certificate for the Kafka brokers (`kafka_ssl_cert`).
    KafkaClient,
    /// The CAs that verify a `rediss://` Redis (`redis_ca`).
    RedisCa,
}

impl CertificateRole {
    /// The role as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateRole::Server => "server",
            CertificateRole::ClientCa => "client_ca",
            CertificateRole::KafkaCa => "kafka_ca",
            CertificateRole::KafkaClient => "kafka_client",
            CertificateRole::RedisCa => "redis_ca",
        }
    }

    /// The setting that names the file.
    pub fn setting(self) -> &'static str {
        match self {
            CertificateRole::Server => "tls_cert",
            CertificateRole::ClientCa => "tls_client_ca",
            CertificateRole::KafkaCa => "kafka_ssl_ca",
            CertificateRole::KafkaClient => "kafka_ssl_cert",
            CertificateRole::RedisCa => "redis_ca",
        }
    }
}

/// When the certificates of one file are valid: from the latest `notBefore` to the
/// earliest `notAfter` among them (a chain or bundle is only as good as its weakest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    /// The file.
    pub path: PathBuf,
    /// The latest `notBefore`, in seconds since the Unix epoch.
    pub not_before: i64,
    /// The earliest `notAfter`, in seconds since the Unix epoch.
    pub not_after: i64,
}

impl Validity {
    /// The validity of `certs`, read from `path`.
    pub fn of_certs(path: &Path, certs: &[CertificateDer<'_>]) -> Result<Validity, TlsError> {
        let mut validity: Option<Validity> = None;
        for (i, der) in certs.iter().enumerate() {
            let (_, cert) = X509Certificate::from_der(der)
                .map_err(|e| content(path, format!("certificate {} does not parse: {e}", i + 1)))?;
            let (not_before, not_after) = (
                cert.validity().not_before.timestamp(),
                cert.validity().not_after.timestamp(),
            );
            let v = validity.get_or_insert_with(|| Validity {
                path: path.to_owned(),
                not_before,
                not_after,
            });
            v.not_before = v.not_before.max(not_before);
            v.not_after = v.not_after.min(not_after);
        }
        validity.ok_or_else(|| content(path, "holds no certificate"))
    }

    /// The validity of the PEM certificates of `path`.
    pub fn of_file(path: &Path) -> Result<Validity, TlsError> {
        Validity::of_certs(path, &read_certs(path)?)
    }

    /// Seconds from `now` until `notAfter`; negative once it passed.
    pub fn seconds_left(&self, now: SystemTime) -> i64 {
        self.not_after - unix_seconds(now)
    }

    /// Whether `notAfter` comes within `within` of `now` (or passed).
    pub fn expires_within(&self, now: SystemTime, within: Duration) -> bool {
        self.seconds_left(now) < i64::try_from(within.as_secs()).unwrap_or(i64::MAX)
    }

    /// An error naming the file and the date unless `now` lies between `notBefore` and
    /// `notAfter`.
    pub fn check_current(&self, now: SystemTime) -> Result<(), TlsError> {
        let now = unix_seconds(now);
        if now > self.not_after {
            return Err(content(
                &self.path,
                format!(
                    "the certificate expired at {} (notAfter); install a renewed one",
                    rfc3339(self.not_after)
                ),
            ));
        }
        if now < self.not_before {
            return Err(content(
                &self.path,
                format!(
                    "the certificate is not valid until {} (notBefore); check the clock or \
                     the certificate",
                    rfc3339(self.not_before)
                ),
            ));
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch (negative before it).
fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A time in seconds since the Unix epoch as RFC 3339 (`2026-01-31T08:00:00Z`).
pub fn rfc3339(seconds: i64) -> String {
    prost_types::Timestamp { seconds, nanos: 0 }.to_string()
}

/// Reads the validity of the certificate files of the links a process uses (the
/// settings give them) and reports each to `metrics`. A file whose dates cannot be read
/// is logged and skipped: connecting with it reports what is wrong with it.
pub fn report_files(files: &[(CertificateRole, &str)], metrics: &Metrics, now: SystemTime) {
    for &(role, path) in files {
        match Validity::of_file(Path::new(path)) {
            Ok(validity) => metrics.emit(CertificateRead {
                role,
                validity: &validity,
                now,
            }),
            Err(e) => tracing::warn!(
                setting = role.setting(),
                error = %e,
                "tls: cannot read the certificate's dates"
            ),
        }
    }
}

/// A configured certificate file read (at start-up or a reload): warns when it expires
/// within [`WARN_WITHIN`] or has expired, and sets its expiry gauge.
pub struct CertificateRead<'a> {
    pub role: CertificateRole,
    pub validity: &'a Validity,
    pub now: std::time::SystemTime,
}

impl Event for CertificateRead<'_> {
    fn emit(self, m: &Metrics) {
        let (certificate, setting) = (self.role.as_str(), self.role.setting());
        let path = self.validity.path.display().to_string();
        let not_after = rfc3339(self.validity.not_after);
        let left = self.validity.seconds_left(self.now);
        let days_left = left.div_euclid(86_400);
        if left < 0 {
            tracing::warn!(
                certificate,
                setting,
                path,
                not_after,
                "tls: certificate expired"
            );
        } else if self.validity.expires_within(self.now, WARN_WITHIN) {
            tracing::warn!(
                certificate,
                setting,
                path,
                not_after,
                days_left,
                "tls: certificate expires soon"
            );
        } else {
            tracing::debug!(
                certificate,
                setting,
                path,
                not_after,
                days_left,
                "tls: certificate read"
            );
        }
        m.certificate_expiry
            .set(certificate, self.validity.not_after);
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};
    use time::OffsetDateTime;

    use super::*;

    const DAY: i64 = 86_400;

    /// A self-signed certificate valid from `from` to `until` (Unix seconds).
    fn cert(from: i64, until: i64) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = OffsetDateTime::from_unix_timestamp(from).unwrap();
        params.not_after = OffsetDateTime::from_unix_timestamp(until).unwrap();
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn at(seconds: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds.try_into().unwrap())
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_chain_is_valid_from_its_latest_start_to_its_earliest_end() {
        let path = Path::new("/etc/govlink/server.pem");
        let chain = [
            cert(NOW - 10 * DAY, NOW + 90 * DAY),
            cert(NOW - 400 * DAY, NOW + 20 * DAY),
        ];
        let validity = Validity::of_certs(path, &chain).unwrap();
        assert_eq!(validity.not_before, NOW - 10 * DAY);
        assert_eq!(validity.not_after, NOW + 20 * DAY);
        assert_eq!(validity.seconds_left(at(NOW)), 20 * DAY);
        assert!(validity.expires_within(at(NOW), WARN_WITHIN));
        assert!(!validity.expires_within(at(NOW - 11 * DAY), WARN_WITHIN));
        assert!(validity.check_current(at(NOW)).is_ok());
    }

    #[test]
    fn an_expired_certificate_is_refused_naming_the_file_and_the_date() {
        let path = Path::new("/etc/govlink/server.pem");
        let validity = Validity::of_certs(path, &[cert(NOW - 30 * DAY, NOW - DAY)]).unwrap();
        assert_eq!(
            validity.seconds_left(at(NOW)),
            -DAY,
            "negative once expired"
        );
        let err = validity.check_current(at(NOW)).unwrap_err().to_string();
        assert_eq!(
            err,
            "tls: /etc/govlink/server.pem: the certificate expired at 2027-01-14T08:00:00Z \
             (notAfter); install a renewed one"
        );
        // One second after notAfter is too late; notAfter itself is still valid.
        assert!(validity.check_current(at(NOW - DAY)).is_ok());
        assert!(validity.check_current(at(NOW - DAY + 1)).is_err());
    }

    #[test]
    fn a_certificate_not_yet_valid_is_refused_naming_the_date() {
        let path = Path::new("server.pem");
        let validity = Validity::of_certs(path, &[cert(NOW + DAY, NOW + 90 * DAY)]).unwrap();
        let err = validity.check_current(at(NOW)).unwrap_err().to_string();
        assert!(err.starts_with("tls: server.pem: "), "{err}");
        assert!(
            err.contains("not valid until 2027-01-16T08:00:00Z (notBefore)"),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_certificates_says_so() {
        let err = Validity::of_certs(Path::new("empty.pem"), &[]).unwrap_err();
        assert_eq!(err.to_string(), "tls: empty.pem: holds no certificate");
        let err = Validity::of_certs(
            Path::new("junk.pem"),
            &[CertificateDer::from(b"junk".to_vec())],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("certificate 1 does not parse"),
            "{err}"
        );
    }
}
