//! Reading settings: the file, the environment, checks, and secrets that never print.

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn environment_overrides_the_file_and_types_are_checked() {
    let file = "partitions = 3\ntopic_prefix = \"a.\"\n";
    let s = Settings::load(
        Some(file),
        &env(&[
            ("GOVLINK_PARTITIONS", "12"),
            ("GOVLINK_KAFKA", "k:9092"),
            ("GOVLINK_TEST_KAFKA", "x"),
            ("GOVLINK_GRPC_ADDR", "0.0.0.0:50051"),
        ]),
    )
    .unwrap();
    assert_eq!(s.partitions, 12);
    assert_eq!(s.topic_prefix, "a.");
    assert_eq!(s.kafka.as_deref(), Some("k:9092"));
    assert_eq!(s.grpc_addr, SocketAddr::from(([0, 0, 0, 0], 50051)));

    let err = Settings::load(None, &env(&[("GOVLINK_PARTITIONS", "many")])).unwrap_err();
    assert!(err.to_string().contains("GOVLINK_PARTITIONS"), "{err}");
    let err = Settings::load(Some("partitons = 3"), &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("partitons"), "{err}");
    let err = Settings::load(None, &env(&[("GOVLINK_MAX_BATCH", "0")])).unwrap_err();
    assert!(err.to_string().contains("max_batch"), "{err}");
    let err = Settings::load(None, &env(&[("GOVLINK_MAX_CLOCK_SKEW_MS", "86400001")])).unwrap_err();
    assert!(err.to_string().contains("max_clock_skew_ms"), "{err}");
    let s = Settings::load(None, &env(&[("GOVLINK_MAX_CLOCK_SKEW_MS", "0")])).unwrap();
    assert_eq!(s.max_clock_skew(), Duration::ZERO);
}

#[test]
fn step_working_days_come_from_the_file_or_the_environment_and_name_known_steps() {
    use crate::cases::plan::{WorkingDays, steps_of};
    use crate::proto::{CaseKind, StepKind};
    let sale = steps_of(CaseKind::PropertyTransfer);
    let loan = sale
        .iter()
        .find(|s| s.kind == StepKind::LoanSettled)
        .unwrap();
    let title = sale
        .iter()
        .find(|s| s.kind == StepKind::TitleRegistered)
        .unwrap();

    let file = "[step_working_days]\nloan_settled = 10\n";
    let s = Settings::load(Some(file), &HashMap::new()).unwrap();
    let days = s.working_days().unwrap();
    assert_eq!((days.of(loan), days.of(title)), (10, title.working_days));

    let variable = "GOVLINK_STEP_WORKING_DAYS";
    let s = Settings::load(
        Some(file),
        &env(&[(variable, " title_registered = 2, loan_settled=7 ")]),
    )
    .unwrap();
    let days = s.working_days().unwrap();
    assert_eq!(
        (days.of(loan), days.of(title)),
        (7, 2),
        "the variable replaces the table"
    );
    assert_eq!(WorkingDays::default().of(loan), loan.working_days);

    for (value, says) in [
        (
            "loan_setled=3",
            "no step is called \"loan_setled\"; the steps are ",
        ),
        (
            "loan_settled=0",
            "step_working_days.loan_settled must be 1 to 250",
        ),
        ("loan_settled=251", "must be 1 to 250 working days, not 251"),
        ("loan_settled", "\"loan_settled\" is not key=number"),
        (
            "loan_settled=ten",
            "GOVLINK_STEP_WORKING_DAYS: \"loan_settled=ten\"",
        ),
    ] {
        let err = Settings::load(None, &env(&[(variable, value)])).unwrap_err();
        assert!(err.to_string().contains(says), "{value}: {err}");
    }
    let err = Settings::load(
        Some("[step_working_days]\nloan_settled = -1\n"),
        &HashMap::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid"), "{err}");
}

#[test]
fn rate_limits_are_off_at_zero_and_their_bursts_must_let_a_call_pass() {
    let s = Settings::load(
        None,
        &env(&[
            ("GOVLINK_PUBLISH_RATE_PER_AGENCY", "0"),
            ("GOVLINK_PUBLISH_BURST", "0"),
            ("GOVLINK_LOOKUP_RATE_PER_REQUESTER", "0"),
            ("GOVLINK_LOOKUP_BURST", "0"),
            ("GOVLINK_MAX_CONCURRENT_STREAMS", "0"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (s.publish_rate_per_agency, s.lookup_rate_per_requester),
        (0, 0)
    );
    let err = Settings::load(
        None,
        &env(&[("GOVLINK_PUBLISH_BURST", "10"), ("GOVLINK_MAX_BATCH", "11")]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("publish_burst (10) must be at least max_batch (11)"),
        "{err}"
    );
    Settings::load(
        None,
        &env(&[("GOVLINK_PUBLISH_BURST", "11"), ("GOVLINK_MAX_BATCH", "11")]),
    )
    .unwrap();
    let err = Settings::load(None, &env(&[("GOVLINK_LOOKUP_BURST", "0")])).unwrap_err();
    assert!(err.to_string().contains("lookup_burst"), "{err}");
}

#[test]
fn passwords_never_print() {
    let s = Settings {
        redis: Some("redis://app:s3cret@db:6379/0".into()),
        ..Settings::default()
    };
    let printed = format!("{s:?}");
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(printed.contains("redis://app:***@db:6379/0"), "{printed}");
}

#[test]
fn link_settings_come_from_the_environment_and_their_secrets_never_print() {
    let s = Settings::load(
        None,
        &env(&[
            ("GOVLINK_KAFKA", "k:9093"),
            ("GOVLINK_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("GOVLINK_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
            ("GOVLINK_KAFKA_SASL_USERNAME", "govlink"),
            ("GOVLINK_KAFKA_SASL_PASSWORD", "sasl-s3cret"),
            ("GOVLINK_REDIS", "rediss://:url-s3cret@db:6380/"),
            ("GOVLINK_REDIS_USERNAME", "resolver"),
            ("GOVLINK_REDIS_PASSWORD", "redis-s3cret"),
        ]),
    )
    .unwrap();
    assert_eq!(s.kafka_security_protocol, SecurityProtocol::SaslPlaintext);
    assert_eq!(s.kafka_sasl_mechanism, Some(SaslMechanism::ScramSha256));
    assert_eq!(
        s.kafka_sasl_password.as_ref().map(Secret::expose),
        Some("sasl-s3cret")
    );
    assert_eq!(
        s.redis_password.as_ref().map(Secret::expose),
        Some("redis-s3cret")
    );
    let printed = format!("{s:?}");
    for secret in ["sasl-s3cret", "url-s3cret", "redis-s3cret"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(
        printed.contains("kafka_sasl_password: Some(***)"),
        "{printed}"
    );
    assert!(printed.contains("redis_password: Some(***)"), "{printed}");

    for (pairs, says) in [
        (
            &[("GOVLINK_KAFKA_SECURITY_PROTOCOL", "tls")][..],
            "kafka_security_protocol must be plaintext, ssl, sasl_plaintext or sasl_ssl",
        ),
        (
            &[
                ("GOVLINK_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
                ("GOVLINK_KAFKA_SASL_MECHANISM", "OAUTHBEARER"),
            ][..],
            "kafka_sasl_mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        ),
        (
            &[("GOVLINK_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")][..],
            "kafka_security_protocol sasl_ssl needs kafka_sasl_mechanism to be set",
        ),
        (
            &[("GOVLINK_KAFKA_SASL_MECHANISM", "PLAIN")][..],
            "kafka_sasl_mechanism is set but kafka_security_protocol is plaintext",
        ),
        (
            &[
                ("GOVLINK_KAFKA_SECURITY_PROTOCOL", "ssl"),
                ("GOVLINK_KAFKA_SSL_KEY", "/nonexistent/govlink.key"),
            ][..],
            "kafka_ssl_key /nonexistent/govlink.key cannot be read",
        ),
        (
            &[("GOVLINK_REDIS_CA", "/nonexistent/redis-ca.pem")][..],
            "redis_ca /nonexistent/redis-ca.pem cannot be read",
        ),
    ] {
        let err = Settings::load(None, &env(pairs)).unwrap_err().to_string();
        assert!(err.contains(says), "{pairs:?}: {err}");
    }
}

#[test]
fn tls_needs_certificate_key_and_ca_together_and_a_known_identity_mapping() {
    assert_eq!(Settings::default().tls().unwrap(), None);
    let err = Settings::load(None, &env(&[("GOVLINK_TLS_CERT", "/c/server.pem")])).unwrap_err();
    assert!(
        err.to_string()
            .contains("tls_cert, tls_key and tls_client_ca"),
        "{err}"
    );
    let err = Settings::load(None, &env(&[("GOVLINK_TLS_CRL", "/c/crl.pem")])).unwrap_err();
    assert!(err.to_string().contains("tls_crl is optional"), "{err}");
    let err = Settings::load(None, &env(&[("GOVLINK_TLS_IDENTITY", "cn")])).unwrap_err();
    assert!(
        err.to_string()
            .contains("tls_identity must be uri or subject"),
        "{err}"
    );
    let err =
        Settings::load(None, &env(&[("GOVLINK_TLS_TRUST_DOMAIN", "spiffe://x")])).unwrap_err();
    assert!(err.to_string().contains("tls_trust_domain"), "{err}");

    let s = Settings::default().with_certs_dir(std::path::Path::new("/c"));
    let (files, mapping) = s.tls().unwrap().expect("tls on");
    assert_eq!(files.cert, std::path::Path::new("/c/server.pem"));
    assert_eq!(files.key, std::path::Path::new("/c/server.key"));
    assert_eq!(files.client_ca, std::path::Path::new("/c/ca.pem"));
    assert_eq!(
        files.crl.as_deref(),
        Some(std::path::Path::new("/c/crl.pem"))
    );
    assert_eq!(
        mapping,
        IdentityMapping::Uri {
            trust_domain: "gov.example".into()
        }
    );
    let s = Settings::load(
        None,
        &env(&[
            ("GOVLINK_TLS_CERT", "a"),
            ("GOVLINK_TLS_KEY", "b"),
            ("GOVLINK_TLS_CLIENT_CA", "c"),
            ("GOVLINK_TLS_IDENTITY", "subject"),
        ]),
    )
    .unwrap();
    assert_eq!(s.tls().unwrap().unwrap().1, IdentityMapping::Subject);
}
