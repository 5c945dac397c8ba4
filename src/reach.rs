//! What an operator reads when a command cannot reach the broker or Redis: one line that
//! names the component, its address, what happened and what to check. It is the
//! operator's to fix, not a defect, so `main` prints it as it is — no cause chain, no
//! backtrace — and exits non-zero. Every Kafka and Redis client of govlink reaches its
//! server through `kafka::Brokers::reachable` or `redis_link::RedisLink::connect`, which
//! give this error within `connect_timeout_ms`.

use std::time::Duration;

use redis::RedisError;

/// How long a link waits for the broker or Redis to answer a connection unless
/// `connect_timeout_ms` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker or Redis could not be reached, or refused govlink, while connecting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{component} at {address} {problem}: {fix}")]
pub struct ReachError {
    /// `kafka` or `redis`.
    pub component: &'static str,
    /// Where it was looked for: the bootstrap servers, or the Redis URL without its
    /// password.
    pub address: String,
    /// What happened, e.g. `did not answer within 5s`.
    pub problem: String,
    /// What to check.
    pub fix: String,
}

/// What to check when the brokers do not answer: the address, and over TLS or SASL the
/// link settings too (a broker may close a link it refuses without saying why).
fn kafka_fix(secured: bool) -> String {
    if secured {
        "is the broker running, and are `kafka` (GOVLINK_KAFKA / --kafka), \
         kafka_security_protocol, kafka_ssl_* and kafka_sasl_* right for its listener?"
            .into()
    } else {
        "is the broker running, and is `kafka` (GOVLINK_KAFKA / --kafka) right?".into()
    }
}

/// What to check when Redis cannot be reached: the address, and over TLS the CA too.
fn redis_fix(tls: bool) -> String {
    if tls {
        "is Redis running, and are `redis` (GOVLINK_REDIS / --redis) and redis_ca right?".into()
    } else {
        "is Redis running, and is `redis` (GOVLINK_REDIS / --redis) right?".into()
    }
}

impl ReachError {
    /// No broker of `bootstrap` answered within `waited`; `secured`: the link is TLS or
    /// SASL.
    pub fn kafka_silent(bootstrap: &str, waited: Duration, secured: bool) -> ReachError {
        ReachError {
            component: "kafka",
            address: bootstrap.to_owned(),
            problem: format!("did not answer within {}", span(waited)),
            fix: kafka_fix(secured),
        }
    }

    /// The brokers of `bootstrap` refused the link: the TLS handshake or SASL failed
    /// (`why`, librdkafka's reason). Retrying cannot help.
    pub fn kafka_refused(bootstrap: &str, why: &str) -> ReachError {
        ReachError {
            component: "kafka",
            address: bootstrap.to_owned(),
            problem: format!("refused the link ({why})"),
            fix: "check kafka_security_protocol, kafka_ssl_* and kafka_sasl_*".into(),
        }
    }

    /// No client for the brokers of `bootstrap` could be made with the link settings
    /// (`why`, librdkafka's reason: a key that does not match its certificate, ...).
    pub fn kafka_unusable(bootstrap: &str, why: &str) -> ReachError {
        ReachError {
            component: "kafka",
            address: bootstrap.to_owned(),
            problem: format!("cannot be connected to with these settings ({why})"),
            fix: "check kafka_security_protocol, kafka_ssl_* and kafka_sasl_*".into(),
        }
    }

    /// Redis at `address` (no password in it) did not answer within `waited`.
    pub fn redis_silent(address: &str, waited: Duration, tls: bool) -> ReachError {
        ReachError {
            component: "redis",
            address: address.to_owned(),
            problem: format!("did not answer within {}", span(waited)),
            fix: redis_fix(tls),
        }
    }

    /// Redis at `address` (no password in it) failed with `error` while connecting. The
    /// redis crate's errors never carry the password.
    pub fn redis(address: &str, error: &RedisError, tls: bool) -> ReachError {
        let (problem, fix) = if refused_login(error) {
            (
                format!("refused the login ({})", cause(error)),
                "check redis_username and redis_password (GOVLINK_REDIS_USERNAME, \
                 GOVLINK_REDIS_PASSWORD)"
                    .to_owned(),
            )
        } else if error.is_connection_refusal() {
            ("refused the connection".to_owned(), redis_fix(tls))
        } else if error.is_io_error() {
            (format!("cannot be reached ({error})"), redis_fix(tls))
        } else {
            (
                format!("failed while connecting ({})", cause(error)),
                "check the Redis settings (redis, redis_ca, redis_username, redis_password)"
                    .to_owned(),
            )
        };
        ReachError {
            component: "redis",
            address: address.to_owned(),
            problem,
            fix,
        }
    }
}

/// Whether Redis refused the credentials, wants some, or does not let the user do what
/// govlink needs (also when a pipeline of the first commands was refused whole).
fn refused_login(error: &RedisError) -> bool {
    let login = |code: &str| matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM");
    error.kind() == redis::ErrorKind::AuthenticationFailed
        || error.code().is_some_and(login)
        || first_server_error(error).is_some_and(|e| login(e.code()))
}

/// The first error of a refused pipeline (its commands usually fail alike).
fn first_server_error(error: &RedisError) -> Option<redis::ServerError> {
    Some(error.clone().into_server_errors()?.first()?.1.clone())
}

/// What went wrong, short: a refused pipeline by its first error, not every command's.
fn cause(error: &RedisError) -> String {
    first_server_error(error).map_or_else(|| error.to_string(), |e| e.to_string())
}

/// A duration as an operator writes it: `5s`, `1.5s`, `800ms`.
fn span(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_is_one_line_naming_the_component_the_address_and_the_fix() {
        let silent = ReachError::kafka_silent("127.0.0.1:1", Duration::from_secs(5), false);
        assert_eq!(
            silent.to_string(),
            "kafka at 127.0.0.1:1 did not answer within 5s: is the broker running, and is \
             `kafka` (GOVLINK_KAFKA / --kafka) right?"
        );
        let secured = ReachError::kafka_silent("k:9093", Duration::from_millis(1500), true);
        assert!(secured.to_string().contains("within 1.5s"), "{secured}");
        assert!(secured.to_string().contains("kafka_sasl_*"), "{secured}");

        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let refused = ReachError::redis("redis://127.0.0.1:1/", &RedisError::from(io), false);
        assert_eq!(
            refused.to_string(),
            "redis at redis://127.0.0.1:1/ refused the connection: is Redis running, and is \
             `redis` (GOVLINK_REDIS / --redis) right?"
        );
        let login = RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        let login = ReachError::redis("rediss://u:***@r:6380/", &login, true).to_string();
        assert!(login.contains("Password authentication failed"), "{login}");
        assert!(login.contains("redis_password"), "{login}");
        for e in [silent.to_string(), refused.to_string(), login] {
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(span(Duration::from_millis(800)), "800ms");
    }
}
