//! `govlink dlq list|replay`, run as child processes against the suite's broker and
//! Redis: dead letters listed, sent back once their cause is fixed, and held once they
//! failed again after a replay.

use std::time::Duration;

use govlink::proto::Agency;
use redis::AsyncCommands;
use tonic::Code;

use crate::helpers::*;
use crate::ops_tools::{get_household, govlink_ok, json_lines};

/// Waits until the dead-letter topic holds `count` letters; returns them.
async fn dead_letters(app: &TestApp, count: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let letters = read_partition(&app.topics.dlq(), 0, 0, count, Duration::from_secs(30)).await;
    assert_eq!(letters.len(), count, "{count} dead letters");
    letters
}

#[tokio::test]
async fn dlq_replay_brings_a_fixed_letter_through_to_the_resolver_once() {
    let app = spawn_app().await;
    // The store is ready (a first record is answered) before anything is planted in it.
    let first = publish_household_at(&app, "h-0", 1).await;
    get_household(&app, "h-0", &[first]).await.unwrap();

    // Something in Redis where the record's entry goes: the store refuses the record for
    // good, and the materializer dead-letters it.
    let prefix = &app.settings.redis_prefix;
    let planted = format!("{prefix}rec:household_registration:dlq-1");
    let mut redis = redis().await;
    let _: () = redis.hset(&planted, "not", "a version").await.unwrap();
    let refused = publish_household_at(&app, "dlq-1", 1).await;
    dead_letters(&app, 1).await;
    // And bytes that are no event at all.
    let topic = app.topics.records(Agency::PublicSecurity);
    send_raw(
        &topic,
        "public-security/identity/x",
        &[0xff, 0xff, 0xff],
        None,
    )
    .await;
    dead_letters(&app, 2).await;
    assert!(
        get_household(&app, "dlq-1", std::slice::from_ref(&refused))
            .await
            .is_err(),
        "the refused record is not answered"
    );

    let listed = govlink_ok(&app.settings, &["dlq", "list"]).await;
    assert!(listed.starts_with("LETTER "), "{listed}");
    assert!(
        listed.contains("2 dead letter(s): undecodable 1, store-refused 1"),
        "{listed}"
    );
    let origin = format!("{topic}/{}/{}", refused.partition, refused.offset);
    let row = listed
        .lines()
        .find(|l| l.contains(" store-refused "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains(&origin), "{row}");
    assert!(row.contains("the store refused the record: "), "{row}");
    let only = govlink_ok(
        &app.settings,
        &["dlq", "list", "--reason", "undecodable", "--json"],
    )
    .await;
    let lines = json_lines(&only);
    assert_eq!(lines.len(), 2, "one letter and the summary: {only}");
    assert_eq!(lines[0]["dead_letter"]["kind"], "undecodable");
    assert_eq!(lines[0]["replayed"], false);
    assert_eq!(lines[1]["total"], 1);

    // The cause is fixed.
    let _: () = redis.del(&planted).await.unwrap();

    // A dry run counts and sends nothing.
    let records_before = message_count(&topic, 3).await;
    let dry = govlink_ok(
        &app.settings,
        &["dlq", "replay", "--reason", "store-refused", "--dry-run"],
    )
    .await;
    assert!(
        dry.contains("dry run: would replay 1 dead letter(s): store-refused 1"),
        "{dry}"
    );
    let dry_all = govlink_ok(&app.settings, &["dlq", "replay", "--dry-run"]).await;
    assert!(
        dry_all.contains("would replay 2 dead letter(s): undecodable 1, store-refused 1"),
        "{dry_all}"
    );
    nothing_sent_since(&topic, records_before).await;
    assert_eq!(
        get_household(&app, "dlq-1", &[]).await.unwrap_err().code(),
        Code::NotFound
    );

    // The replay sends the letter back and the resolver answers it.
    let replayed = govlink_ok(
        &app.settings,
        &["dlq", "replay", "--reason", "store-refused"],
    )
    .await;
    assert!(
        replayed.contains("replayed 1 dead letter(s): store-refused 1"),
        "{replayed}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let record = loop {
        match get_household(&app, "dlq-1", &[]).await {
            Ok(record) => break record,
            Err(status) if status.code() == Code::NotFound => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the replayed record is materialized"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    };
    assert_eq!(record.version, 1);
    assert_eq!(record.record_id, "dlq-1");
    // The replayed event is the original, marked with the letter it came from.
    let history = govlink_ok(
        &app.settings,
        &[
            "topics",
            "tail",
            "govlink.records.public-security.v1",
            "--key",
            "public-security/household_registration/dlq-1",
            "--json",
            "--unmasked",
        ],
    )
    .await;
    let history = json_lines(&history);
    assert_eq!(history.len(), 2, "the original and the replay");
    assert_eq!(history[0]["value"], history[1]["value"]);
    assert_eq!(
        history[1]["headers"]["govlink-replayed-from"],
        format!("{}/0/0", app.topics.dlq())
    );

    // A second replay sends nothing again; letters of another reason are still there.
    let records_before = message_count(&topic, 3).await;
    let again = govlink_ok(
        &app.settings,
        &["dlq", "replay", "--reason", "store-refused"],
    )
    .await;
    assert!(again.contains("replayed 0 dead letter(s)"), "{again}");
    let rest = govlink_ok(&app.settings, &["dlq", "replay", "--dry-run"]).await;
    assert!(
        rest.contains("would replay 1 dead letter(s): undecodable 1"),
        "{rest}"
    );
    nothing_sent_since(&topic, records_before).await;
    let listed = govlink_ok(&app.settings, &["dlq", "list", "--json"]).await;
    let replayed_flags: Vec<(String, bool)> = json_lines(&listed)
        .iter()
        .filter(|l| l.get("dead_letter").is_some())
        .map(|l| {
            (
                l["dead_letter"]["kind"].as_str().unwrap().to_owned(),
                l["replayed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        replayed_flags,
        [
            ("store-refused".to_owned(), true),
            ("undecodable".to_owned(), false)
        ]
    );

    // The replay position is a consumer group `topics lag` shows.
    let lag = govlink_ok(&app.settings, &["topics", "lag"]).await;
    assert!(
        lag.contains(&format!(
            "{}.dlq-replay.store-refused (dlq replay of store-refused): total lag 0",
            app.settings.consumer_group
        )),
        "{lag}"
    );

    // Undecodable bytes stay undecodable: replayed, they come back as a new letter,
    // which the next replay holds. The replay ends with what was there when it started.
    let all = govlink_ok(&app.settings, &["dlq", "replay"]).await;
    assert!(
        all.contains("replayed 1 dead letter(s): undecodable 1"),
        "{all}"
    );
    dead_letters(&app, 3).await;
    let next = govlink_ok(&app.settings, &["dlq", "replay", "--dry-run"]).await;
    assert!(next.contains("would replay 0 dead letter(s)"), "{next}");
    assert!(next.contains("held: 1 "), "{next}");
    app.stop().await;
}

/// Waits a second, then checks that `topic` still holds `before` messages.
async fn nothing_sent_since(topic: &str, before: usize) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(message_count(topic, 3).await, before, "nothing sent");
}

/// The value of header `name` of `message`, as text.
fn header(message: &rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::{Headers, Message};
    let headers = message.headers()?;
    let value = headers.iter().find(|h| h.key == name)?.value?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// A letter whose cause is not fixed: replayed once, it comes back marked with its
/// lineage and is held; a rebuild dead-letters the original and the replayed copy once
/// more, and replays still send nothing, so the letters do not multiply. `--again` sends
/// the original once more.
#[tokio::test]
async fn a_letter_that_fails_again_after_a_replay_is_held_not_replayed_in_a_loop() {
    let app = spawn_app().await;
    let first = publish_household_at(&app, "h-0", 1).await;
    get_household(&app, "h-0", &[first]).await.unwrap();
    let topic = app.topics.records(Agency::PublicSecurity);
    let dlq = app.topics.dlq();
    // Bytes that are no event at all: no fix will ever make them materialize.
    // Sent by key, as a replay sends it: the copy lands in the same partition.
    send_raw(
        &topic,
        "public-security/identity/x",
        &[0xff, 0xff, 0xff],
        None,
    )
    .await;
    let letters = dead_letters(&app, 1).await;
    let origin = |name| header(&letters[0], name).expect("an origin header");
    let original = format!(
        "{topic}/{}/{}",
        origin("govlink-dlq-partition"),
        origin("govlink-dlq-offset")
    );

    // The first replay sends it; it comes back as a letter carrying its lineage.
    let replayed = govlink_ok(&app.settings, &["dlq", "replay"]).await;
    assert!(
        replayed.contains("replayed 1 dead letter(s): undecodable 1"),
        "{replayed}"
    );
    let letters = dead_letters(&app, 2).await;

    // The second replay sends nothing: the letter failed again after a replay.
    let records_before = message_count(&topic, 3).await;
    let again = govlink_ok(&app.settings, &["dlq", "replay"]).await;
    assert!(again.contains("replayed 0 dead letter(s)"), "{again}");
    assert!(
        again.contains(
            "held: 1 (their event was replayed before and failed again; `--again` sends each \
             once more)"
        ),
        "{again}"
    );
    nothing_sent_since(&topic, records_before).await;
    assert_eq!(message_count(&dlq, 1).await, 2, "no new letter");
    assert_eq!(
        header(&letters[1], "govlink-replay-original").as_deref(),
        Some(original.as_str())
    );
    assert_eq!(
        header(&letters[1], "govlink-replay-count").as_deref(),
        Some("1")
    );

    // A rebuild reads the original and the replayed copy again: one letter each.
    let rebuilt = govlink_ok(&app.settings, &["rebuild"]).await;
    assert!(rebuilt.contains("rebuilt the record store"), "{rebuilt}");
    let letters = dead_letters(&app, 4).await;
    assert_eq!(
        header(&letters[3], "govlink-replay-count").as_deref(),
        Some("1"),
        "the replayed copy's letter carries its lineage"
    );
    // Neither is sent again: the original was replayed already, the copy failed again.
    let records_before = message_count(&topic, 3).await;
    let after_rebuild = govlink_ok(&app.settings, &["dlq", "replay"]).await;
    assert!(
        after_rebuild.contains("replayed 0 dead letter(s)"),
        "{after_rebuild}"
    );
    assert!(after_rebuild.contains("held: 2 "), "{after_rebuild}");
    nothing_sent_since(&topic, records_before).await;
    assert_eq!(
        message_count(&dlq, 1).await,
        4,
        "two replays and a rebuild: 4 letters"
    );

    // `dlq list` shows each letter's lineage and whether a replay sends it.
    let listed = json_lines(&govlink_ok(&app.settings, &["dlq", "list", "--json"]).await);
    let rows: Vec<(String, String, u64)> = listed
        .iter()
        .filter(|l| l.get("dead_letter").is_some())
        .map(|l| {
            (
                l["status"].as_str().unwrap().to_owned(),
                l["dead_letter"]["original"].as_str().unwrap().to_owned(),
                l["dead_letter"]["replays"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |status: &str, replays| (status.to_owned(), original.clone(), replays);
    assert_eq!(
        rows,
        [
            row("sent", 0),
            row("held", 1),
            row("held", 0),
            row("held", 1)
        ]
    );
    let table = govlink_ok(&app.settings, &["dlq", "list"]).await;
    assert!(table.contains(" REPLAYS "), "{table}");
    assert!(table.contains(" held "), "{table}");
    assert!(table.contains("4 dead letter(s): undecodable 4"), "{table}");

    // `--again` sends the original once more (one letter per original), a third time.
    let forced = govlink_ok(&app.settings, &["dlq", "replay", "--again"]).await;
    assert!(
        forced.contains("replayed 1 dead letter(s): undecodable 1"),
        "{forced}"
    );
    let letters = dead_letters(&app, 5).await;
    assert_eq!(
        header(&letters[4], "govlink-replay-original").as_deref(),
        Some(original.as_str())
    );
    assert_eq!(
        header(&letters[4], "govlink-replay-count").as_deref(),
        Some("2")
    );
    app.stop().await;
}
