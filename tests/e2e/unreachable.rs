//! A broker or Redis that cannot be reached, as an operator meets it, on the real `govlink`
//! binary: every role and tool pointed at a closed loopback port exits non-zero with one
//! line on stderr naming the component, its address and the setting to check — no cause
//! chain and no backtrace, even with `RUST_BACKTRACE=1`. A resolver whose Redis dies says
//! so on `/readyz` and answers lookups `UNAVAILABLE`.

use std::process::Output;
use std::time::Duration;

use govlink::config::Settings;
use govlink::proto::{GetPersonProfileRequest, GetRecordRequest};
use tonic::Code;

use crate::faults::{Process, RedisServer, free_port};
use crate::helpers::*;

/// Runs `govlink ARGS` (first the subcommand) configured like `settings`, with
/// `RUST_BACKTRACE=1` and the logs off, so stderr holds only what `main` reports.
fn run(settings: &Settings, args: &[&str]) -> Output {
    govlink_command(settings, args[0])
        .args(&args[1..])
        .env("GOVLINK_GRPC_ADDR", "127.0.0.1:0")
        .env("GOVLINK_ADMIN_ADDR", "127.0.0.1:0")
        // Short, so the suite does not wait the default 5 s per command.
        .env("GOVLINK_CONNECT_TIMEOUT_MS", "1000")
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "off")
        .output()
        .expect("govlink runs")
}

/// Asserts that `govlink ARGS` failed with one line naming `component` (`kafka`, `redis`),
/// `address` and the component's setting.
fn assert_one_line_naming(args: &[&str], output: &Output, component: &str, address: &str) {
    let command = format!("govlink {}", args.join(" "));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "{command}: exited 0 with nothing to reach; stderr:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{command}: stderr is not one line:\n{stderr}"
    );
    let line = lines[0];
    let setting = format!("GOVLINK_{}", component.to_ascii_uppercase());
    assert!(
        line.starts_with(&format!("Error: {component} at {address} ")) && line.contains(&setting),
        "{command}: the line must name {component}, {address} and {setting}: {line}"
    );
    assert!(
        !stderr.to_ascii_lowercase().contains("backtrace"),
        "{command}: a backtrace for an unreachable {component}:\n{stderr}"
    );
}

/// Settings with everything at closed loopback ports (nothing listens there).
fn nothing_listens() -> Settings {
    Settings {
        kafka: Some(format!("127.0.0.1:{}", free_port())),
        redis: Some(format!("redis://127.0.0.1:{}/", free_port())),
        policy: Some(example_policy()),
        ..Settings::default()
    }
}

#[test]
fn every_role_and_tool_stops_with_one_line_naming_kafka_when_no_broker_listens() {
    let settings = nothing_listens();
    let address = settings.kafka.clone().unwrap();
    let commands: [&[&str]; 8] = [
        &["adapter", "--agency", "housing"],
        &["resolver"],
        &["cases"],
        &["dev"],
        &["topics", "list"],
        &["dlq", "list"],
        &["rebuild"],
        &["audit", "verify"],
    ];
    for args in commands {
        let output = run(&settings, args);
        assert_one_line_naming(args, &output, "kafka", &address);
    }
}

#[test]
fn every_role_and_tool_stops_with_one_line_naming_redis_when_no_redis_listens() {
    let settings = Settings {
        redis: nothing_listens().redis,
        ..test_settings()
    };
    let address = settings.redis.clone().unwrap();
    let commands: [&[&str]; 6] = [
        &["resolver"],
        &["cases"],
        &["dev"],
        &["rebuild"],
        &["rebuild", "--cases"],
        &["topics", "lag"],
    ];
    for args in commands {
        let output = run(&settings, args);
        assert_one_line_naming(args, &output, "redis", &address);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_whose_redis_dies_is_not_ready_naming_redis_and_answers_lookups_unavailable() {
    let mut redis = RedisServer::start().await;
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let settings = Settings {
        redis: Some(redis.url()),
        admin_addr: admin.to_string(),
        ..test_settings()
    };
    let resolver = Process::start(&settings, "resolver").await;
    let readyz = async |want: u16| readyz_answers(admin, want, Duration::from_secs(60)).await;
    let body = readyz(200).await;
    assert!(body.contains("ok redis"), "{body}");

    redis.kill();
    let body = readyz(503).await;
    assert!(body.contains("not ready: redis: "), "{body}");
    assert!(body.contains("ok broker and topics"), "{body}");

    let owner = resolver_as(
        resolver.channel_as("public-security/records").await,
        "public-security/records",
        None,
    );
    let mut request = tonic::Request::new(GetRecordRequest {
        record_key: "public-security/household_registration/gone-1".into(),
        min_positions: vec![],
    });
    request.set_timeout(Duration::from_secs(5));
    let status = owner.clone().get_record(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("record store"), "{status:?}");

    let window = resolver_as(
        resolver.channel_as("housing/transfer-window").await,
        "housing/transfer-window",
        None,
    );
    let mut request = tonic::Request::new(GetPersonProfileRequest {
        person_id: alice(),
        purpose: "property-transfer".into(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(5));
    let status = window
        .clone()
        .get_person_profile(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("record store"), "{status:?}");
}
