//! The demo the README promises, on embedded defaults and on the real broker and Redis.

use govlink::config::Settings;
use govlink::demo::Story;

use crate::helpers::*;

#[tokio::test]
async fn the_demo_runs_on_embedded_defaults() {
    let mut out = Vec::new();
    govlink::demo::run(
        &Settings::default(),
        Story::PropertyTransfer,
        None,
        &mut out,
    )
    .await
    .expect("demo succeeds");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("The resolver kept version 2"), "{text}");
    assert!(text.contains("blocked: SELLER_HOUSEHOLD_AT_UNIT"), "{text}");
    assert!(
        text.contains("Eligible: nothing blocks the transfer."),
        "{text}"
    );
    assert!(
        text.contains("withheld from this window: social-security"),
        "{text}"
    );
    assert!(text.contains("CheckPropertyTransfer"), "who looked: {text}");
    assert!(
        text.contains("told: housing/transfer-window used it for property-transfer"),
        "told as it happened: {text}"
    );
    assert!(text.contains("refused with INVALID_ARGUMENT"), "{text}");
    assert!(!text.contains(&alice()), "the narration masks ID numbers");
    // The case: opened with its plan, moved on by records and a task, completed.
    for line in [
        "seller_household_moved_out       public-security  open     due ",
        "title_registered                 housing          pending  5 working days once it opens",
        "provident-fund/records received task ",
        "seller_household_moved_out done by the record public-security/household_registration/hukou-1 version 2",
        "loan_settled done by its task, outcome \"settled\"",
        "title_registered done by the record housing/property_title/title-1 version 2",
        // The seller's objection to the household record: disputed, then corrected.
        "filed against public-security/household_registration/hukou-1 version 1: step objection_resolved for public-security, due ",
        "the window's check: blocked: SELLER_HOUSEHOLD_AT_UNIT, disputed by objection case-",
        "/objection_resolved.1 from its stream and acknowledged it",
        "done by the record public-security/household_registration/hukou-1 version 2",
        "case completed",
        "The case is complete: the flat is the buyer's.",
        // The buyer's loan, decided from the shared records and approved online.
        "deposits: 36 consecutive months up to last month (6 required)",
        "largest loan: 1020000 yuan = min(balance 68000 yuan × 15, cap 1200000 yuan), bounded by the balance",
        "Eligible: a loan of 1000000 yuan, decided from the fund's and housing's records.",
        "fund_loan_approved               provident-fund   open     due ",
        "fund_loan_approved.1 from its stream and acknowledged it",
        "The loan case is complete: approved online, no proof uploaded, no counter visited.",
        "Time govlink added between the agencies' actions and the case moving on: ",
        ": OpenCase [allowed]",
    ] {
        assert!(text.contains(line), "missing {line:?}\n{text}");
    }
}

#[tokio::test]
async fn the_pension_transfer_demo_runs_on_embedded_defaults() {
    let mut out = Vec::new();
    govlink::demo::run(
        &Settings::default(),
        Story::SocialSecurityTransfer,
        None,
        &mut out,
    )
    .await
    .expect("demo succeeds");
    let text = String::from_utf8(out).unwrap();
    for line in [
        "social-security/records received task ",
        "transfer_out_certificate_issued done by the record social-security/transfer_out_certificate/transfer-out-1 version 1",
        "transfer_accepted done by the record social-security/enrollment/pension-310104 version 1",
        "contributions_carried_over done by its task, outcome \"carried-over\"",
        "case completed",
        "where paper allowed 15 working days",
    ] {
        assert!(text.contains(line), "missing {line:?}\n{text}");
    }
    assert_eq!(
        text.matches(" working days (due ").count(),
        3,
        "every step with its deadline: {text}"
    );
}

/// `demo --tls DIR` on the real broker and Redis: every caller presents its own
/// certificate, and another agency's certificate cannot publish.
#[tokio::test]
async fn the_secured_demo_runs_on_the_real_broker_and_redis() {
    let mut out = Vec::new();
    let certs = fresh_certs();
    govlink::demo::run(
        &test_settings(),
        Story::PropertyTransfer,
        Some(&certs),
        &mut out,
    )
    .await
    .expect("demo succeeds");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Done:"), "{text}");
    assert!(text.contains("The case is complete"), "{text}");
    assert!(
        text.contains(
            "refused with PERMISSION_DENIED: only public-security's systems may publish through \
             the public-security adapter; the client certificate is housing/records's"
        ),
        "{text}"
    );
    assert!(text.contains(": OpenCase [allowed]"), "{text}");
    assert!(
        text.contains("The loan case is complete"),
        "the loan desk's certificate checks and opens the loan: {text}"
    );
    assert!(
        text.contains("told: housing/transfer-window used it for property-transfer"),
        "told as it happened, from the index in Redis: {text}"
    );
}

/// `govlink demo --kafka … --redis …`, as an operator runs it, with the broker and Redis
/// keeping what every earlier run left: each run, of either story, still completes.
#[test]
fn the_demo_can_be_run_again_on_the_same_broker_and_redis() {
    // One deployment's prefixes for every run, as a user's broker and Redis would be, and
    // its servers' TLS files, which the demo (without --tls) does not serve with.
    let settings = test_settings().with_certs_dir(test_certs());
    let run = |kind: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_govlink"))
            .args(["demo", "--kind", kind])
            .args(["--kafka", settings.kafka.as_deref().unwrap()])
            .args(["--redis", settings.redis.as_deref().unwrap()])
            .env("GOVLINK_TOPIC_PREFIX", &settings.topic_prefix)
            .env("GOVLINK_REDIS_PREFIX", &settings.redis_prefix)
            .env("GOVLINK_CONSUMER_GROUP", &settings.consumer_group)
            .env("GOVLINK_PARTITIONS", settings.partitions.to_string())
            .env("GOVLINK_TLS_CERT", settings.tls_cert.as_deref().unwrap())
            .env("GOVLINK_TLS_KEY", settings.tls_key.as_deref().unwrap())
            .env(
                "GOVLINK_TLS_CLIENT_CA",
                settings.tls_client_ca.as_deref().unwrap(),
            )
            .env("GOVLINK_TLS_CRL", settings.tls_crl.as_deref().unwrap())
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("running govlink demo");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{kind}, {}: {stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    for kind in ["property-transfer", "social-security-transfer"] {
        let first = run(kind);
        let second = run(kind);
        for text in [&first, &second] {
            assert!(text.contains("Done:"), "{text}");
            assert!(text.contains("so it can be told again"), "{text}");
        }
    }
}
