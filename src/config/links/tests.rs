//! The links built from the settings, and the errors that name a setting.

use crate::config::Settings;
use crate::kafka::{Brokers, SaslMechanism, SecurityProtocol, client_config};
use crate::secret::Secret;

fn settings(protocol: SecurityProtocol) -> Settings {
    Settings {
        kafka: Some("k:9093".into()),
        kafka_security_protocol: protocol,
        ..Settings::default()
    }
}

#[test]
fn sasl_credentials_reach_every_client_and_never_print() {
    let mut s = settings(SecurityProtocol::SaslPlaintext);
    s.kafka_sasl_mechanism = Some(SaslMechanism::ScramSha512);
    s.kafka_sasl_username = Some("govlink".into());
    s.kafka_sasl_password = Some(Secret::new("s3cret-sasl"));
    let brokers = s.brokers().unwrap().unwrap();
    let config = client_config(&brokers, "test");
    assert_eq!(config.get("bootstrap.servers"), Some("k:9093"));
    assert_eq!(config.get("security.protocol"), Some("sasl_plaintext"));
    assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
    assert_eq!(config.get("sasl.username"), Some("govlink"));
    assert_eq!(config.get("sasl.password"), Some("s3cret-sasl"));
    let printed = format!("{brokers:?} {brokers}");
    assert!(!printed.contains("s3cret-sasl"), "{printed}");
    assert_eq!(brokers.to_string(), "k:9093 (sasl_plaintext)");
}

#[test]
fn librdkafka_accepts_tls_and_scram() {
    use rdkafka::consumer::BaseConsumer;
    let mut s = settings(SecurityProtocol::SaslSsl);
    s.kafka_sasl_mechanism = Some(SaslMechanism::ScramSha512);
    s.kafka_sasl_username = Some("govlink".into());
    s.kafka_sasl_password = Some(Secret::new("p"));
    let brokers = s.brokers().unwrap().unwrap();
    // Without OpenSSL built in, librdkafka refuses both at client creation.
    let created = client_config(&brokers, "t").create::<BaseConsumer>();
    assert!(created.is_ok(), "{:?}", created.err());
    let ssl = client_config(&Brokers::new("k:9093", brokers.security().clone()), "t")
        .set("security.protocol", "ssl")
        .create::<BaseConsumer>();
    assert!(ssl.is_ok(), "{:?}", ssl.err());
}

#[test]
fn tls_files_are_set_only_when_configured() {
    let ca = std::env::temp_dir().join(format!("govlink-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, "not checked here").unwrap();
    let mut s = settings(SecurityProtocol::Ssl);
    s.kafka_ssl_ca = Some(ca.display().to_string());
    let config = client_config(&s.brokers().unwrap().unwrap(), "t");
    assert_eq!(config.get("security.protocol"), Some("ssl"));
    assert_eq!(config.get("ssl.ca.location"), s.kafka_ssl_ca.as_deref());
    assert_eq!(config.get("ssl.certificate.location"), None);
    assert_eq!(config.get("sasl.mechanisms"), None);

    s.kafka_ssl_cert = Some(ca.display().to_string());
    let err = s.kafka_link().unwrap_err();
    assert!(err.contains("kafka_ssl_cert and kafka_ssl_key"), "{err}");
    std::fs::remove_file(&ca).unwrap();

    let plaintext = client_config(&Brokers::plaintext("m:1"), "t");
    assert_eq!(plaintext.get("security.protocol"), Some("plaintext"));
    assert_eq!(plaintext.get("ssl.ca.location"), None);
}

#[test]
fn inconsistent_kafka_settings_name_the_setting() {
    let mut s = settings(SecurityProtocol::SaslSsl);
    s.kafka_sasl_mechanism = Some(SaslMechanism::Plain);
    s.kafka_sasl_username = Some("u".into());
    let err = s.kafka_link().unwrap_err();
    assert_eq!(
        err,
        "kafka_security_protocol sasl_ssl needs kafka_sasl_password to be set"
    );
    s.kafka_sasl_username = None;
    let err = s.kafka_link().unwrap_err();
    assert!(err.contains("needs kafka_sasl_username"), "{err}");

    let mut s = settings(SecurityProtocol::Ssl);
    s.kafka_sasl_mechanism = Some(SaslMechanism::ScramSha256);
    let err = s.kafka_link().unwrap_err();
    assert!(
        err.starts_with("kafka_sasl_mechanism is set but kafka_security_protocol is ssl"),
        "{err}"
    );

    let mut s = settings(SecurityProtocol::Plaintext);
    s.kafka_ssl_ca = Some("/etc/ssl/certs/ca-certificates.crt".into());
    let err = s.kafka_link().unwrap_err();
    assert!(err.starts_with("kafka_ssl_ca is set but"), "{err}");

    let mut s = settings(SecurityProtocol::SaslSsl);
    s.kafka_ssl_ca = Some("/nonexistent/govlink/ca.pem".into());
    let err = s.kafka_link().unwrap_err();
    assert!(
        err.starts_with("kafka_ssl_ca /nonexistent/govlink/ca.pem cannot be read"),
        "{err}"
    );
}

#[test]
fn inconsistent_redis_settings_name_the_setting() {
    let settings = Settings {
        redis: Some("redis://:pw@127.0.0.1:6379/".into()),
        redis_ca: Some("/nonexistent/ca.pem".into()),
        ..Settings::default()
    };
    let err = settings.check_redis().unwrap_err();
    assert!(
        err.starts_with("redis_ca /nonexistent/ca.pem cannot be read"),
        "{err}"
    );
    let readable = Settings {
        redis_ca: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").into()),
        ..settings
    };
    let err = readable.check_redis().unwrap_err();
    assert_eq!(
        err,
        "redis_ca is set but redis (redis://:***@127.0.0.1:6379/) is not a rediss:// URL"
    );
    let settings = Settings {
        redis_username: Some("govlink".into()),
        ..Settings::default()
    };
    let err = settings.check_redis().unwrap_err();
    assert_eq!(err, "redis_username needs redis_password");
}
