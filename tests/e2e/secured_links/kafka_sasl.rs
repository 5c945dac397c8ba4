//! govlink's Kafka clients over SASL (SCRAM-SHA-256, checked by a Tansu broker that asks
//! for credentials) and TLS with a client certificate (terminated by the test's proxy in
//! front of that broker, which accepts nothing but TLS with a certificate of its CA).

use std::sync::atomic::Ordering;
use std::time::Duration;

use govlink::app::{App, Role};
use govlink::config::Settings;
use govlink::kafka::{SaslMechanism, SecurityProtocol};
use govlink::secret::Secret;
use tokio::time::Instant;

use super::fixtures::{Pki, SaslBroker, TlsProxy, password};
use super::round_trip;
use crate::faults::free_port;
use crate::helpers::*;

/// Settings for the broker behind `proxy`: SASL over TLS, with the client certificate.
pub fn sasl_ssl(settings: &mut Settings, pki: &Pki, proxy: &TlsProxy, secret: &str) {
    settings.kafka = Some(format!("localhost:{}", proxy.port));
    settings.kafka_security_protocol = SecurityProtocol::SaslSsl;
    settings.kafka_ssl_ca = Some(pki.ca.display().to_string());
    settings.kafka_ssl_cert = Some(pki.client_cert.display().to_string());
    settings.kafka_ssl_key = Some(pki.client_key.display().to_string());
    settings.kafka_sasl_mechanism = Some(SaslMechanism::ScramSha256);
    settings.kafka_sasl_username = Some("govlink".into());
    settings.kafka_sasl_password = Some(Secret::new(secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_through_a_broker_over_sasl_and_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let secret = password("sasl");
    let port = free_port();
    let proxy = TlsProxy::start(&pki, port).await;
    let advertised = format!("localhost:{}", proxy.port);
    let _broker = SaslBroker::start(
        port,
        ("govlink", &secret, SaslMechanism::ScramSha256),
        Some(advertised),
    )
    .await;
    let mut settings = test_settings();
    sasl_ssl(&mut settings, &pki, &proxy, &secret);
    let app = spawn_app_with(settings, Role::Dev).await;
    round_trip(&app.channel, "sasl-1").await;
    app.stop().await;
    assert!(proxy.sessions.load(Ordering::SeqCst) > 0);
    assert_eq!(
        proxy.refused.load(Ordering::SeqCst),
        0,
        "every client spoke TLS with its certificate"
    );
}

/// Settings for the broker at loopback `port`: SASL without TLS, as user `govlink`.
fn sasl_plaintext(port: u16, mechanism: SaslMechanism, password: &str) -> Settings {
    let mut settings = test_settings();
    settings.kafka = Some(format!("127.0.0.1:{port}"));
    settings.kafka_security_protocol = SecurityProtocol::SaslPlaintext;
    settings.kafka_sasl_mechanism = Some(mechanism);
    settings.kafka_sasl_username = Some("govlink".into());
    settings.kafka_sasl_password = Some(Secret::new(password));
    settings
}

/// SCRAM-SHA-512 over a plaintext link (`sasl_plaintext`): the record goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_through_a_broker_over_scram_sha_512() {
    let secret = password("sasl512");
    let port = free_port();
    let user = ("govlink", secret.as_str(), SaslMechanism::ScramSha512);
    let _broker = SaslBroker::start(port, user, None).await;
    let settings = sasl_plaintext(port, SaslMechanism::ScramSha512, &secret);
    let app = spawn_app_with(settings, Role::Dev).await;
    round_trip(&app.channel, "sasl512-1").await;
    app.stop().await;
}

// Tansu answers a failed SCRAM exchange by closing the connection (Apache Kafka answers
// SASL_AUTHENTICATION_FAILED, which stops start-up at once): start-up then fails when its
// timeout is over, naming the link settings, and the right password gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_the_broker_refuses_stop_start_up_within_its_timeout_naming_the_settings() {
    let secret = password("sasl");
    let port = free_port();
    let _broker =
        SaslBroker::start(port, ("govlink", &secret, SaslMechanism::ScramSha256), None).await;
    let wrong = password("wrong");
    let mut settings = sasl_plaintext(port, SaslMechanism::ScramSha256, &wrong);
    settings.startup_timeout_ms = 10_000;
    let housing = Role::Adapter(govlink::proto::Agency::Housing);
    let started = Instant::now();
    let Err(err) = App::build(&settings, housing).await else {
        panic!("an adapter started with credentials the broker refuses");
    };
    let err = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed after {:?}, not within its start-up timeout ({err})",
        started.elapsed()
    );
    assert!(
        err.contains("kafka_security_protocol") && err.contains("kafka_sasl_"),
        "{err}"
    );
    assert!(!err.contains(&wrong) && !err.contains(&secret), "{err}");

    settings.kafka_sasl_password = Some(Secret::new(&secret));
    let app = spawn_app_with(settings, housing).await;
    app.stop().await;
}
