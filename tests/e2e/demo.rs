//! The demo the README promises, on embedded defaults and on the real broker and Redis.

use govlink::config::Settings;

use crate::helpers::*;

#[tokio::test]
async fn the_demo_runs_on_embedded_defaults() {
    let mut out = Vec::new();
    govlink::demo::run(&Settings::default(), &mut out)
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
    assert!(text.contains("refused with INVALID_ARGUMENT"), "{text}");
    assert!(!text.contains(&alice()), "the narration masks ID numbers");
}

#[tokio::test]
async fn the_demo_runs_on_the_real_broker_and_redis() {
    let mut out = Vec::new();
    govlink::demo::run(&test_settings(), &mut out)
        .await
        .expect("demo succeeds");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Done:"), "{text}");
}
