//! Certificate dates: a server whose own certificate expired (or is not yet valid) does not
//! start and says which file and since when; every certificate's expiry is a gauge that
//! follows a renewal; `certs issue` refuses a validity that makes no sense.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use govlink::app::Role;
use govlink::tls::certs::CertsDir;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::*;

const DAY: u64 = 86_400;

/// Now, to the second (certificates carry whole seconds), moved by `days`.
fn days_from_now(days: i64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs = i64::try_from(now).unwrap() + days * i64::try_from(DAY).unwrap();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time).format(&Rfc3339).unwrap()
}

/// `govlink resolver` secured with the certificates of `certs`, against a broker nobody
/// listens at (the certificates are checked before any connection): its stderr, after
/// checking it did not start.
fn resolver_refused(certs: &Path) -> String {
    let dir = CertsDir::new(certs);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_govlink"))
        .arg("resolver")
        .env("GOVLINK_KAFKA", "127.0.0.1:9")
        .env("GOVLINK_ADMIN_ADDR", "")
        .env("GOVLINK_TLS_CERT", dir.server().cert)
        .env("GOVLINK_TLS_KEY", dir.server().key)
        .env("GOVLINK_TLS_CLIENT_CA", dir.ca())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "the resolver started: {stderr}");
    stderr
}

#[test]
fn a_server_with_an_expired_certificate_refuses_to_start_naming_the_file_and_the_date() {
    let certs = fresh_certs();
    let dir = CertsDir::new(&certs);
    let expired = days_from_now(-1);
    dir.reissue_server(days_from_now(-30), expired).unwrap();
    let stderr = resolver_refused(&certs);
    let path = dir.server().cert.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{path}: the certificate expired at {} (notAfter)",
            rfc3339(expired)
        )),
        "{stderr}"
    );

    // Not yet valid: the same, with the date it starts.
    let starts = days_from_now(2);
    dir.reissue_server(starts, days_from_now(90)).unwrap();
    let stderr = resolver_refused(&certs);
    assert!(
        stderr.contains(&format!(
            "{path}: the certificate is not valid until {} (notBefore)",
            rfc3339(starts)
        )),
        "{stderr}"
    );
}

#[test]
fn certs_issue_refuses_a_validity_outside_one_day_to_ten_years() {
    let certs = fresh_certs();
    let issue = |days: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_govlink"))
            .args(["certs", "issue", "--dir"])
            .arg(&certs)
            .arg(format!("--days={days}"))
            .arg("housing/archive")
            .output()
            .unwrap()
    };
    let archive = certs.join("clients/housing/archive.pem");
    for days in ["0", "3651", "-1"] {
        let output = issue(days);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--days {days} was accepted");
        assert!(stderr.contains("--days"), "{stderr}");
        if days != "-1" {
            assert!(stderr.contains("1..=3650"), "{stderr}");
        }
        assert!(!archive.exists(), "nothing issued for --days {days}");
    }
    let output = issue("1");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(archive.exists());
}

#[test]
fn a_certificate_expiring_within_30_days_is_warned_about_at_start() {
    use std::io::BufRead;
    let certs = fresh_certs();
    let dir = CertsDir::new(&certs);
    let not_after = days_from_now(10);
    dir.reissue_server(days_from_now(-1), not_after).unwrap();
    // `dev` on its embedded broker: nothing else needed to start.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_govlink"))
        .args(["dev", "--tls"])
        .arg(&certs)
        .args(["--grpc-addr", "127.0.0.1:0", "--admin-addr", ""])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut warning = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("tls: certificate expires soon") {
            warning = Some(line);
            break;
        }
        // Serving without having warned: the warning is not coming.
        let ready = line.contains(" ready ");
        seen.push(line);
        if ready {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let warning = warning.unwrap_or_else(|| panic!("no warning: {seen:#?}"));
    assert!(warning.contains(r#"certificate="server""#), "{warning}");
    assert!(warning.contains(&rfc3339(not_after)), "{warning}");
    // Ten days from the second the certificate was made, less the start-up.
    assert!(
        warning.contains("days_left=9") || warning.contains("days_left=10"),
        "{warning}"
    );
}

/// The value of the series `series` in the exposition `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_expiry_gauge_shows_each_certificate_and_follows_a_renewal() {
    let certs = fresh_certs();
    let dir = CertsDir::new(&certs);
    // Ten days left: warned about, and the gauge says so.
    dir.reissue_server(days_from_now(-1), days_from_now(10))
        .unwrap();
    let app = spawn_app_with(secured_settings(&certs), Role::Dev).await;
    let admin = app.admin.expect("the app serves admin http");
    let server = r#"govlink_certificate_expiry_seconds{certificate="server"}"#;
    let client_ca = r#"govlink_certificate_expiry_seconds{certificate="client_ca"}"#;
    let (_, text) = http_get(admin, "/metrics").await;
    let left = value(&text, server).unwrap_or_else(|| panic!("{server} is exposed:\n{text}"));
    // The margin is for a slow start, not a bound on it.
    let ten_days = (10 * DAY) as f64;
    assert!(
        (ten_days - 3600.0..=ten_days).contains(&left),
        "ten days left: {left}"
    );
    // The development CA is valid for ten years.
    let ca = value(&text, client_ca).unwrap_or_else(|| panic!("{client_ca}:\n{text}"));
    assert!(ca > (3000 * DAY) as f64, "{ca}");

    // Renewed: the reload (within a second of the file changing) moves the gauge.
    dir.reissue_server(days_from_now(-1), days_from_now(100))
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = http_get(admin, "/metrics").await;
        if value(&text, server).is_some_and(|left| left > (99 * DAY) as f64) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewal never showed:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}
