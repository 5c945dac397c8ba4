//! Secrets never print: a real govlink process (`RUST_LOG=debug`, JSON logs) runs with a
//! Redis password, a SASL password and a TLS client key in use; its output, its metrics,
//! its status page, the errors of processes given wrong passwords, `Settings`' `Debug`
//! and librdkafka's own debug log are searched for each secret.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use govlink::config::Settings;
use govlink::kafka::{Brokers, SaslMechanism, client_config};
use govlink::secret::Secret;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use tonic::transport::Channel;

use super::fixtures::{Pki, SaslBroker, TlsProxy, TlsRedis, password};
use super::kafka_sasl::sasl_ssl;
use super::round_trip;
use crate::faults::free_port;
use crate::helpers::*;
use govlink::identity::Requester;
use govlink::proto::Agency;
use govlink::tls::certs::CertsDir;
use govlink::tls::client::ClientTls;

/// `govlink SUBCOMMAND` configured like `settings`, the link settings included, logging
/// JSON at debug level into `out`.stdout / `out`.stderr.
fn govlink(settings: &Settings, subcommand: &str, out: &Path) -> Command {
    let mut command = govlink_command(settings, subcommand);
    let secret = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_owned());
    let links = [
        (
            "GOVLINK_KAFKA_SECURITY_PROTOCOL",
            Some(settings.kafka_security_protocol.as_str().to_owned()),
        ),
        ("GOVLINK_KAFKA_SSL_CA", settings.kafka_ssl_ca.clone()),
        ("GOVLINK_KAFKA_SSL_CERT", settings.kafka_ssl_cert.clone()),
        ("GOVLINK_KAFKA_SSL_KEY", settings.kafka_ssl_key.clone()),
        (
            "GOVLINK_KAFKA_SASL_MECHANISM",
            settings.kafka_sasl_mechanism.map(String::from),
        ),
        (
            "GOVLINK_KAFKA_SASL_USERNAME",
            settings.kafka_sasl_username.clone(),
        ),
        (
            "GOVLINK_KAFKA_SASL_PASSWORD",
            secret(&settings.kafka_sasl_password),
        ),
        ("GOVLINK_REDIS_CA", settings.redis_ca.clone()),
        ("GOVLINK_REDIS_USERNAME", settings.redis_username.clone()),
        ("GOVLINK_REDIS_PASSWORD", secret(&settings.redis_password)),
    ];
    for (name, value) in links {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    command
        .env("GOVLINK_LOG_JSON", "true")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out.with_extension("stdout")).unwrap())
        .stderr(std::fs::File::create(out.with_extension("stderr")).unwrap());
    command
}

/// What a process wrote, stdout then stderr.
fn output_of(out: &Path) -> String {
    let read = |ext| std::fs::read_to_string(out.with_extension(ext)).unwrap_or_default();
    format!("{}\n{}", read("stdout"), read("stderr"))
}

/// Runs a process that must fail at start-up; returns what it wrote.
async fn failing(settings: &Settings, out: &Path) -> String {
    let mut child = govlink(settings, "resolver", out)
        .env("GOVLINK_STARTUP_TIMEOUT_MS", "10000")
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still running after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    output_of(out)
}

/// Waits until `child` serves gRPC (mutual TLS with [`test_certs`]) at `port`; the
/// channel calls as public security's record system.
async fn serving(child: &mut Child, port: u16) -> Channel {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let police = Requester::new(Agency::PublicSecurity, "records");
    let addr = format!("127.0.0.1:{port}");
    loop {
        if let Ok(channel) = ClientTls::new(test_certs()).connect(&addr, &police).await {
            return channel;
        }
        assert!(child.try_wait().unwrap().is_none(), "govlink exited");
        assert!(
            tokio::time::Instant::now() < deadline,
            "not serving in 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// librdkafka's log lines, at whatever level the client is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl ClientContext for Captured {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, line: &str) {
        let mut all = self.0.lock().unwrap();
        all.push_str(fac);
        all.push(' ');
        all.push_str(line);
        all.push('\n');
    }
}

impl ConsumerContext for Captured {}

/// Everything librdkafka logs with `debug=all` while one client connects over `brokers`.
async fn librdkafka_debug_log(brokers: Brokers) -> String {
    let captured = Captured::default();
    let context = captured.clone();
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer<Captured> = client_config(&brokers, "govlink-secrets-test")
            .set("debug", "all")
            // rdkafka sets the client's level from the `log` crate's after creation.
            .set_log_level(RDKafkaLogLevel::Debug)
            .create_with_context(context)
            .unwrap();
        client
            .fetch_metadata(None, Duration::from_secs(20))
            .expect("metadata over the secured link");
        // Log lines are events on the client's queue: polling hands them to the context.
        for _ in 0..20 {
            let _ = client.poll(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    captured.0.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_shows_in_output_metrics_status_page_errors_or_debug_logs() {
    let pki = Pki::new();
    let (redis_secret, sasl_secret) = (password("redis"), password("sasl"));
    let redis = TlsRedis::start(&pki, "govlink", &redis_secret).await;
    let broker_port = free_port();
    let proxy = TlsProxy::start(&pki, broker_port).await;
    let advertised = format!("localhost:{}", proxy.port);
    let _broker = SaslBroker::start(
        broker_port,
        ("govlink", &sasl_secret, SaslMechanism::ScramSha256),
        Some(advertised),
    )
    .await;
    let mut settings = test_settings();
    sasl_ssl(&mut settings, &pki, &proxy, &sasl_secret);
    settings.redis = Some(redis.url());
    settings.redis_ca = Some(pki.ca.display().to_string());
    settings.redis_username = Some("govlink".into());
    settings.redis_password = Some(Secret::new(&redis_secret));
    let (grpc, admin) = (free_port(), free_port());
    settings.admin_addr = format!("127.0.0.1:{admin}");
    let out = pki.dir.join("govlink");

    let mut child = govlink(&settings, "dev", &out)
        .env("GOVLINK_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .spawn()
        .unwrap();
    let channel = serving(&mut child, grpc).await;
    round_trip(&channel, "secret-1").await;
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    let (code, metrics) = http_get(admin, "/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("govlink_"), "{metrics}");
    let (code, page) = http_get(admin, "/").await;
    assert_eq!(code, 200);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let output = output_of(&out);
    assert!(output.contains("\"level\":\"DEBUG\""), "{output}");
    assert!(output.contains("using kafka"), "{output}");

    let (wrong_redis, wrong_sasl) = (password("wrong-redis"), password("wrong-sasl"));
    let mut bad_redis = settings.clone();
    bad_redis.redis_password = Some(Secret::new(&wrong_redis));
    let redis_error = failing(&bad_redis, &pki.dir.join("bad-redis")).await;
    assert!(
        redis_error.contains("Password authentication failed"),
        "{redis_error}"
    );
    let mut bad_sasl = settings.clone();
    bad_sasl.kafka_sasl_password = Some(Secret::new(&wrong_sasl));
    let sasl_error = failing(&bad_sasl, &pki.dir.join("bad-sasl")).await;
    assert!(sasl_error.contains("kafka_sasl_"), "{sasl_error}");

    let brokers = Brokers::new(
        settings.kafka.clone().unwrap(),
        settings.kafka_link().unwrap(),
    );
    let debug_log = librdkafka_debug_log(brokers).await;
    assert!(debug_log.contains("SASL"), "{debug_log}");

    let everything = [
        output,
        metrics,
        page,
        redis_error,
        sasl_error,
        debug_log,
        format!("{settings:?} {bad_redis:?} {bad_sasl:?}"),
    ]
    .join("\n");
    // The Kafka client key, and the key the gRPC server serves mutual TLS with.
    let keys = Pki::read(&pki.client_key)
        + &std::fs::read_to_string(CertsDir::new(test_certs()).server().key).unwrap();
    let key_lines = keys
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 8);
    let secrets: Vec<&str> = [&redis_secret, &sasl_secret, &wrong_redis, &wrong_sasl]
        .into_iter()
        .map(String::as_str)
        .chain(key_lines)
        .collect();
    for secret in secrets {
        assert!(
            !everything.contains(secret),
            "a secret ({} characters) was printed",
            secret.len()
        );
    }
}
