//! The per-call check against certificates `govlink certs` issues, without a network.

use std::time::{Duration, SystemTime};

use super::certs::CertsDir;
use super::*;
use crate::proto::Agency;

fn dir() -> CertsDir {
    let path = std::env::temp_dir().join(format!("govlink-tls-{}", uuid::Uuid::new_v4()));
    let dir = CertsDir::new(path);
    dir.init().unwrap();
    dir
}

fn server(dir: &CertsDir) -> Arc<ServerTls> {
    let files = TlsFiles {
        cert: dir.server().cert,
        key: dir.server().key,
        client_ca: dir.ca(),
        crl: Some(dir.crl()),
    };
    let mapping = IdentityMapping::Uri {
        trust_domain: certs::DEV_TRUST_DOMAIN.into(),
    };
    ServerTls::load(files, mapping, crate::telemetry::metrics::Metrics::new()).unwrap()
}

fn chain(path: &Path) -> Vec<CertificateDer<'static>> {
    read_certs(path).unwrap()
}

#[test]
fn issued_certificates_name_their_requester_until_revoked() {
    let dir = dir();
    let tls = server(&dir);
    let window = Requester::new(Agency::Housing, "transfer-window");
    let now = SystemTime::now();
    let certs = chain(&dir.client(&window).cert);
    assert_eq!(tls.authenticate(Some(&certs), now), Ok(window.clone()));
    assert!(!tls.reload(false).unwrap(), "nothing changed");

    dir.revoke(&dir.client(&window).cert).unwrap();
    assert!(tls.reload(false).unwrap(), "the new CRL is read");
    assert_eq!(tls.authenticate(Some(&certs), now), Err(Refusal::Revoked));
    let desk = Requester::new(Agency::Housing, "registration-desk");
    let other = chain(&dir.client(&desk).cert);
    assert_eq!(tls.authenticate(Some(&other), now), Ok(desk));
}

#[test]
fn missing_foreign_expired_and_nameless_certificates_are_refused() {
    let (dir, foreign) = (dir(), dir());
    let tls = server(&dir);
    let fund = Requester::new(Agency::ProvidentFund, "loan-desk");
    let now = SystemTime::now();
    assert_eq!(tls.authenticate(None, now), Err(Refusal::NoCertificate));
    assert_eq!(
        tls.authenticate(Some(&[]), now),
        Err(Refusal::NoCertificate)
    );
    let stranger = chain(&foreign.client(&fund).cert);
    assert_eq!(
        tls.authenticate(Some(&stranger), now),
        Err(Refusal::UntrustedIssuer)
    );
    let valid = chain(&dir.client(&fund).cert);
    let in_two_years = now + Duration::from_secs(2 * 365 * 86_400);
    assert!(matches!(
        tls.authenticate(Some(&valid), in_two_years),
        Err(Refusal::Expired(Some(_)))
    ));
    dir.issue(&fund, Duration::ZERO).unwrap();
    let expired = chain(&dir.client(&fund).cert);
    let refusal = tls.authenticate(Some(&expired), now).unwrap_err();
    assert!(
        refusal
            .to_string()
            .starts_with("client certificate expired at "),
        "{refusal}"
    );
    // The server's own certificate chains to the CA but names no requester (and is not
    // for client authentication).
    let server_cert = chain(&dir.server().cert);
    assert!(tls.authenticate(Some(&server_cert), now).is_err());
}

#[test]
fn material_that_does_not_load_is_refused_and_the_old_stays() {
    let dir = dir();
    let tls = server(&dir);
    let window = Requester::new(Agency::Housing, "transfer-window");
    let certs = chain(&dir.client(&window).cert);
    std::fs::write(dir.crl(), "-----BEGIN X509 CRL-----\nnot base64\n").unwrap();
    let err = tls.reload(false).unwrap_err();
    assert!(err.to_string().contains("crl.pem"), "{err}");
    assert_eq!(
        tls.authenticate(Some(&certs), SystemTime::now()),
        Ok(window)
    );
    let err = ServerTls::load(
        TlsFiles {
            cert: dir.server().cert,
            key: dir.client(&Requester::new(Agency::Housing, "records")).key,
            client_ca: dir.ca(),
            crl: None,
        },
        IdentityMapping::Subject,
        crate::telemetry::metrics::Metrics::new(),
    )
    .err()
    .expect("a key that is not the certificate's is refused");
    assert!(
        err.to_string().contains("do not make a server identity"),
        "{err}"
    );
}

/// The seconds left of `certificate` in the exposition of `metrics`.
fn expiry_seconds(metrics: &crate::telemetry::metrics::Metrics, certificate: &str) -> i64 {
    let series = format!("govlink_certificate_expiry_seconds{{certificate=\"{certificate}\"}} ");
    let text = metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("{series}is exposed:\n{text}"))
}

#[test]
fn an_expired_server_certificate_is_not_taken_up_and_a_renewal_moves_the_gauge() {
    const DAY: u64 = 86_400;
    let dir = dir();
    let metrics = crate::telemetry::metrics::Metrics::new();
    let files = TlsFiles {
        cert: dir.server().cert,
        key: dir.server().key,
        client_ca: dir.ca(),
        crl: None,
    };
    let tls = ServerTls::load(files, IdentityMapping::Subject, metrics.clone()).unwrap();
    let year = expiry_seconds(&metrics, "server");
    assert!(
        (364 * DAY..=365 * DAY).contains(&year.unsigned_abs()),
        "{year}"
    );
    assert!(expiry_seconds(&metrics, "client_ca") > year);

    let now = SystemTime::now();
    let days = |n: u64| Duration::from_secs(n * DAY);
    dir.reissue_server(now - days(30), now - days(1)).unwrap();
    let err = tls.reload(true).unwrap_err().to_string();
    assert!(
        err.contains("server.pem: the certificate expired at "),
        "{err}"
    );
    let after = expiry_seconds(&metrics, "server");
    assert!(
        after.abs_diff(year) < 60,
        "a refused reload leaves the gauge: {after}"
    );

    dir.reissue_server(now - days(1), now + days(10)).unwrap();
    assert!(tls.reload(true).unwrap());
    let left = expiry_seconds(&metrics, "server");
    assert!(
        (9 * DAY..=10 * DAY).contains(&left.unsigned_abs()),
        "{left}"
    );
}

#[test]
fn a_der_crl_is_read_as_well_as_a_pem_one() {
    let dir = dir();
    let window = Requester::new(Agency::Housing, "transfer-window");
    dir.revoke(&dir.client(&window).cert).unwrap();
    let pem = std::fs::read(dir.crl()).unwrap();
    let der: CertificateRevocationListDer<'_> = PemObject::from_pem_slice(&pem).unwrap();
    let der_file = dir.crl().with_extension("der");
    std::fs::write(&der_file, der.as_ref()).unwrap();
    let files = TlsFiles {
        cert: dir.server().cert,
        key: dir.server().key,
        client_ca: dir.ca(),
        crl: Some(der_file),
    };
    let tls = ServerTls::load(
        files,
        IdentityMapping::Subject,
        crate::telemetry::metrics::Metrics::new(),
    )
    .unwrap();
    let certs = chain(&dir.client(&window).cert);
    assert_eq!(
        tls.authenticate(Some(&certs), SystemTime::now()),
        Err(Refusal::Revoked)
    );
}

/// `SIGHUP` reads the files again even when none changed (the file check is an hour
/// away here).
#[tokio::test]
async fn sighup_reloads_at_once() {
    let dir = dir();
    let tls = server(&dir);
    let stop = tokio_util::sync::CancellationToken::new();
    let watching = tokio::spawn(Arc::clone(&tls).watch(Duration::from_secs(3600), stop.clone()));
    // The handler is installed at the watch's first poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tls.generation(), 0);
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tls.generation() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    watching.await.unwrap().unwrap();
}

/// Every refusal counts under a reason the metrics declare (and zero at start).
#[test]
fn refusal_kinds_are_declared_reasons() {
    use crate::telemetry::metrics::UNAUTHENTICATED_REASONS;
    let all = [
        Refusal::NoCertificate,
        Refusal::UntrustedIssuer,
        Refusal::Expired(None),
        Refusal::NotYetValid,
        Refusal::Revoked,
        Refusal::UnknownRevocationStatus,
        Refusal::WrongPurpose,
        Refusal::NoIdentity(String::new()),
        Refusal::Other(String::new()),
    ];
    let kinds: Vec<_> = all.iter().map(Refusal::kind).collect();
    assert_eq!(kinds, UNAUTHENTICATED_REASONS);
}
