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
    assert_eq!(
        err.to_string(),
        "config file: line 2: step_working_days.loan_settled: expected an integer from 0 \
         to 4294967295, found -1"
    );
}

#[test]
fn the_loan_rule_comes_from_the_file_or_the_environment_and_is_checked() {
    use crate::resolver::checks::LoanRule;
    assert_eq!(
        Settings::load(None, &HashMap::new())
            .unwrap()
            .provident_fund_loan,
        LoanRule::default()
    );
    let file = "[provident_fund_loan]\ndeposit_months_required = 12\n\n\
                [[provident_fund_loan.local_rules]]\nregion_prefix = \"1101\"\n\
                months_required = 24\nwithin_months = 36\n";
    let rule = Settings::load(Some(file), &HashMap::new())
        .unwrap()
        .provident_fund_loan;
    assert_eq!(rule.deposit_months_required, 12);
    assert_eq!(rule.balance_multiple, LoanRule::default().balance_multiple);
    assert_eq!(rule.local_rules.len(), 1);

    let variable = "GOVLINK_PROVIDENT_FUND_LOAN";
    let rule = Settings::load(
        None,
        &env(&[(variable, "cap_fen=100000000, balance_multiple=10")]),
    )
    .unwrap()
    .provident_fund_loan;
    assert_eq!((rule.cap_fen, rule.balance_multiple), (100_000_000, 10));
    assert_eq!(
        rule.deposit_months_required, 6,
        "the rest keeps its default"
    );

    for (value, says) in [
        (
            "deposit_months_required=0",
            "provident_fund_loan.deposit_months_required must be 1 to 1200",
        ),
        (
            "balance_multiple=101",
            "provident_fund_loan.balance_multiple must be 1 to 100",
        ),
        ("cap_fen=0", "provident_fund_loan.cap_fen must be 1 to"),
        ("cap_fn=1", "cap_fn"),
    ] {
        let err = Settings::load(None, &env(&[(variable, value)])).unwrap_err();
        assert!(err.to_string().contains(says), "{value}: {err}");
    }
    let err = Settings::load(
        Some("[[provident_fund_loan.local_rules]]\nregion_prefix = \"x\"\nmonths_required = 1\nwithin_months = 1\n"),
        &HashMap::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("provident_fund_loan.local_rules[0]: region_prefix"),
        "{err}"
    );
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

/// The error `text` as `config.toml` gives, as printed.
fn file_error(text: &str) -> String {
    Settings::load_file("config.toml", text, &HashMap::new())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_value_of_the_wrong_type_names_the_file_its_line_and_its_key() {
    for (text, says) in [
        (
            "kafka = \"k:9092\"\n\npartitions = \"six\"\n",
            "config.toml: line 3: partitions: expected an integer, found a string \"six\"",
        ),
        (
            "log_json = 1\n",
            "config.toml: line 1: log_json: expected true or false, found an integer 1",
        ),
        (
            "# the broker\nkafka = 9092\n",
            "config.toml: line 2: kafka: expected a string, found an integer 9092",
        ),
        (
            "max_batch = -1\n",
            "config.toml: line 1: max_batch: expected an integer from 0 to \
             18446744073709551615, found -1",
        ),
        (
            "partitions = 3000000000\n",
            "config.toml: line 1: partitions: expected an integer from -2147483648 to \
             2147483647, found 3000000000",
        ),
        (
            "grpc_addr = \"localhost\"\n",
            "config.toml: line 1: grpc_addr: expected an IP address and port such as \
             127.0.0.1:50051, found \"localhost\"",
        ),
        (
            "step_working_days = 3\n",
            "config.toml: line 1: step_working_days: expected a table, found an integer 3",
        ),
        (
            "\n[[purchase_rules]]\nregion_prefix = \"1101\"\nmonths_required = \"24\"\n",
            "config.toml: line 4: purchase_rules[0].months_required: expected an integer, \
             found a string \"24\"",
        ),
        (
            "[[purchase_rules]]\nregion_prefix = \"1101\"\n",
            "config.toml: line 1: purchase_rules[0]: missing key `months_required`",
        ),
        (
            "kafka_security_protocol = \"tls\"\n",
            "config.toml: line 1: kafka_security_protocol must be plaintext, ssl, \
             sasl_plaintext or sasl_ssl, not \"tls\"",
        ),
        (
            "partitions = 3\npartitions = 4\n",
            "config.toml: line 2: duplicate key `partitions`",
        ),
        (
            "partitions =\n",
            "config.toml: line 1: string values must be quoted, expected literal string",
        ),
    ] {
        assert_eq!(file_error(text), says, "{text:?}");
    }
    // Without a name, the file is "config file".
    let err = Settings::load(Some("partitions = \"six\""), &HashMap::new()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config file: line 1: partitions: ")
    );
}

#[test]
fn an_unknown_key_names_its_line_and_the_nearest_valid_key() {
    for (text, says) in [
        (
            "kafka = \"k:9092\"\npartitons = 3\n",
            "config.toml: line 2: unknown key `partitons`; did you mean `partitions`?",
        ),
        (
            "\n\nmaterialiser_batch = 100\n",
            "config.toml: line 3: unknown key `materialiser_batch`; did you mean \
             `materializer_batch`?",
        ),
        (
            "[[purchase_rules]]\nregion_prefix = \"1101\"\nmonths_requird = 24\n",
            "config.toml: line 3: purchase_rules[0]: unknown key `months_requird`; did you \
             mean `months_required`?",
        ),
        // Nothing close: no guess.
        (
            "redis_url = \"redis://r/\"\n",
            "config.toml: line 1: unknown key `redis_url`; did you mean `redis`?",
        ),
        (
            "colour = \"blue\"\n",
            "config.toml: line 1: unknown key `colour`",
        ),
    ] {
        assert_eq!(file_error(text), says, "{text:?}");
    }
}

#[test]
fn a_govlink_variable_that_names_no_setting_stops_start_up_naming_the_nearest() {
    let err = Settings::load(None, &env(&[("GOVLINK_PARTITONS", "3")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: the environment variable GOVLINK_PARTITONS names no \
         setting; did you mean GOVLINK_PARTITIONS?"
    );
    let err = Settings::load(None, &env(&[("GOVLINK_TEST_KAFAK", "k:9092")])).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("did you mean GOVLINK_TEST_KAFKA?"),
        "{err}"
    );
    let err = Settings::load(None, &env(&[("GOVLINK_COLOUR", "blue")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: the environment variable GOVLINK_COLOUR names no setting; \
         the settings and their variables are listed in the README, \"Configuration\""
    );
    // The first in name order, whatever order the environment has.
    let err = Settings::load(
        None,
        &env(&[
            ("GOVLINK_ZZZ", "1"),
            ("GOVLINK_AAA", "1"),
            ("GOVLINK_MMM", "1"),
        ]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("GOVLINK_AAA"), "{err}");

    // The variables that are ours but not settings pass; so does anything not GOVLINK_.
    let others: Vec<(&str, &str)> = OTHER_VARIABLES.iter().map(|name| (*name, "x")).collect();
    let mut others = env(&others);
    others.insert("PATH".into(), "/bin".into());
    others.insert("GOVLINKX".into(), "x".into());
    Settings::load(None, &others).unwrap();
}

#[test]
fn a_variable_that_does_not_fit_its_setting_is_named() {
    for (pairs, says) in [
        (
            &[("GOVLINK_PARTITIONS", "six")][..],
            "invalid configuration: GOVLINK_PARTITIONS: expected an integer, found \"six\"",
        ),
        (
            &[("GOVLINK_PARTITIONS", "3000000000")][..],
            "invalid configuration: GOVLINK_PARTITIONS: expected an integer from \
             -2147483648 to 2147483647, found 3000000000",
        ),
        (
            &[("GOVLINK_LOG_JSON", "yes")][..],
            "invalid configuration: GOVLINK_LOG_JSON: expected true or false, found \"yes\"",
        ),
        (
            &[("GOVLINK_GRPC_ADDR", "localhost")][..],
            "invalid configuration: GOVLINK_GRPC_ADDR: expected an IP address and port such \
             as 127.0.0.1:50051, found localhost",
        ),
        (
            &[("GOVLINK_PURCHASE_RULES", "1101:24:36")][..],
            "invalid configuration: GOVLINK_PURCHASE_RULES: purchase_rules is a list of \
             tables; set it in the configuration file",
        ),
    ] {
        let err = Settings::load(None, &env(pairs)).unwrap_err();
        assert_eq!(err.to_string(), says, "{pairs:?}");
    }
    // Settings unset by default are typed as text.
    let s = Settings::load(
        None,
        &env(&[("GOVLINK_POLICY", "/etc/govlink/policy.toml")]),
    )
    .unwrap();
    assert_eq!(s.policy.as_deref(), Some("/etc/govlink/policy.toml"));
}

/// The host the audit chains name comes from the environment the settings were loaded
/// with, not the process's; it is not a setting.
#[test]
fn the_host_comes_from_the_environment_passed_in() {
    let s = Settings::load(None, &env(&[("HOSTNAME", "resolver-7f9c")])).unwrap();
    assert_eq!(s.host, "resolver-7f9c");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    assert_eq!(Settings::load(None, &env(&[])).unwrap().host, kernel);
    let err = Settings::load(None, &env(&[("GOVLINK_HOST", "x")])).unwrap_err();
    assert!(err.to_string().contains("GOVLINK_HOST"), "{err}");
}
