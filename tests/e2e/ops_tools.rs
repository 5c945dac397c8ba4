//! The operator tools, run as `govlink` child processes against the suite's broker and
//! Redis: `topics list|tail|lag` (`dlq list|replay` in `dlq.rs`).

use std::time::Duration;

use govlink::config::Settings;
use govlink::proto::{self, Agency, GetRecordRequest, Position};
use govlink::resolver::policy::mask;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use crate::helpers::*;

/// `govlink ARGS...` configured like `settings`, run off the test's runtime so the app
/// in it keeps serving: whether it succeeded, its stdout and its stderr.
pub async fn govlink(settings: &Settings, args: &[&str]) -> (bool, String, String) {
    let mut command = govlink_command(settings, args[0]);
    command.args(&args[1..]).env("RUST_BACKTRACE", "0");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("govlink runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `govlink ARGS...`, which must succeed: its stdout.
pub async fn govlink_ok(settings: &Settings, args: &[&str]) -> String {
    let (ok, stdout, stderr) = govlink(settings, args).await;
    assert!(ok, "govlink {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// The JSON objects of JSON-lines output.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

pub async fn publish_identity(app: &TestApp, id: &str, person: &str) -> Position {
    position(
        &app.police()
            .publish_identity(proto::PublishIdentityRequest {
                meta: meta(id, 1),
                record: Some(proto::Identity {
                    name: "张三丰".into(),
                    ..identity(person)
                }),
            })
            .await
            .expect("the publish is acknowledged")
            .into_inner(),
    )
}

pub async fn get_household(
    app: &TestApp,
    id: &str,
    after: &[Position],
) -> Result<proto::RecordEvent, tonic::Status> {
    let mut request = tonic::Request::new(GetRecordRequest {
        record_key: format!("public-security/household_registration/{id}"),
        min_positions: after.to_vec(),
    });
    request.set_timeout(Duration::from_secs(30));
    app.resolver_as("public-security/records", None)
        .get_record(request)
        .await
        .map(|r| r.into_inner().record.expect("a found record is returned"))
}

#[tokio::test]
async fn tail_prints_the_record_just_published_decoded_with_identifiers_masked() {
    let app = spawn_app().await;
    let person = alice();
    let at = publish_identity(&app, "id-1", &person).await;
    let key = "public-security/identity/id-1";

    // Named without the prefix; every message of the topic, one JSON object per line.
    let stdout = govlink_ok(
        &app.settings,
        &[
            "topics",
            "tail",
            "govlink.records.public-security.v1",
            "--from-beginning",
            "--json",
        ],
    )
    .await;
    assert!(
        !stdout.contains(&person),
        "no resident ID in clear: {stdout}"
    );
    assert!(!stdout.contains("张三丰"), "no name in clear: {stdout}");
    let lines = json_lines(&stdout);
    let printed = lines
        .iter()
        .find(|m| m["key"] == key)
        .unwrap_or_else(|| panic!("the published record is printed: {stdout}"));
    assert_eq!(printed["topic"], app.topics.records(Agency::PublicSecurity));
    assert_eq!(printed["partition"], at.partition);
    assert_eq!(printed["offset"], at.offset);
    assert!(printed["timestamp"].as_str().unwrap().ends_with('Z'));
    let value = &printed["value"];
    assert_eq!(value["recordId"], "id-1");
    assert_eq!(value["version"], "1");
    assert_eq!(value["op"], "OP_UPSERT");
    assert_eq!(value["agency"], "AGENCY_PUBLIC_SECURITY");
    assert_eq!(value["identity"]["personId"], mask::resident_id(&person));
    assert_eq!(value["identity"]["name"], "张**");
    assert_eq!(value["subjects"][0]["id"], mask::resident_id(&person));

    // In clear with --unmasked, named with the prefix, only the key asked for.
    let full_name = app.topics.records(Agency::PublicSecurity);
    let stdout = govlink_ok(
        &app.settings,
        &[
            "topics",
            "tail",
            &full_name,
            "--key",
            key,
            "--json",
            "--unmasked",
        ],
    )
    .await;
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "only the key asked for: {stdout}");
    assert_eq!(lines[0]["value"]["identity"]["personId"], person.as_str());
    assert_eq!(lines[0]["value"]["identity"]["name"], "张三丰");

    // By default: the last messages of each partition, as indented JSON.
    let stdout = govlink_ok(
        &app.settings,
        &["topics", "tail", "govlink.records.public-security.v1"],
    )
    .await;
    assert!(
        stdout.contains("\n  \"key\": \"public-security/identity/id-1\""),
        "{stdout}"
    );
    assert!(!stdout.contains(&person), "{stdout}");

    // An unknown topic is refused, naming the known ones.
    let (ok, _, stderr) = govlink(&app.settings, &["topics", "tail", "govlink.nope.v1"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("\"govlink.nope.v1\" is not a govlink topic"),
        "{stderr}"
    );
    assert!(stderr.contains(&app.topics.dlq()), "{stderr}");
    app.stop().await;
}

/// A record id may carry a resident ID number, and the record id is in the key: the key
/// is masked like the value.
#[tokio::test]
async fn tail_masks_resident_ids_in_message_keys() {
    let app = spawn_app().await;
    let person = alice();
    let id = format!("id-{person}");
    publish_identity(&app, &id, &person).await;
    let key = format!("public-security/identity/{id}");
    let masked_key = format!("public-security/identity/id-{}", mask::resident_id(&person));

    let stdout = govlink_ok(
        &app.settings,
        &[
            "topics",
            "tail",
            "govlink.records.public-security.v1",
            "--key",
            &key,
            "--json",
        ],
    )
    .await;
    assert!(
        !stdout.contains(&person),
        "no resident ID in clear: {stdout}"
    );
    let lines = json_lines(&stdout);
    assert_eq!(
        lines.len(),
        1,
        "the key asked for, in clear, finds it: {stdout}"
    );
    assert_eq!(lines[0]["key"], masked_key.as_str());
    assert_eq!(
        lines[0]["value"]["recordId"],
        format!("id-{}", mask::resident_id(&person))
    );

    let stdout = govlink_ok(
        &app.settings,
        &[
            "topics",
            "tail",
            "govlink.records.public-security.v1",
            "--key",
            &key,
            "--json",
            "--unmasked",
        ],
    )
    .await;
    assert_eq!(json_lines(&stdout)[0]["key"], key.as_str());
    app.stop().await;
}

#[tokio::test]
async fn tail_reaches_the_end_of_a_partition_written_in_one_producer_batch() {
    let app = spawn_app().await;
    let topic = app.topics.tasks(Agency::Housing);
    // Twenty tasks in one producer batch: some brokers (Tansu) report a high watermark
    // short of the end after it and cannot start a fetch inside it.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("linger.ms", "200")
        .create()
        .unwrap();
    let sends = (0..20).map(|i| {
        let task = proto::Task {
            task_id: format!("task-{i}"),
            ..Default::default()
        };
        let payload = prost::Message::encode_to_vec(&task);
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(&format!("task-{i}"))
                        .payload(&payload)
                        .partition(0),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
        }
    });
    let acked = futures::future::try_join_all(sends).await.unwrap();
    assert_eq!(acked.iter().map(|d| d.offset).max(), Some(19));
    // Then three more, one batch each: the last five start inside the batch.
    for i in 20..23 {
        let task = proto::Task {
            task_id: format!("task-{i}"),
            ..Default::default()
        };
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&format!("task-{i}"))
                    .payload(&prost::Message::encode_to_vec(&task))
                    .partition(0),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let stdout = govlink_ok(
        &app.settings,
        &[
            "topics",
            "tail",
            "govlink.tasks.housing.v1",
            "--last",
            "5",
            "--json",
        ],
    )
    .await;
    let offsets: Vec<i64> = json_lines(&stdout)
        .iter()
        .map(|m| m["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, [18, 19, 20, 21, 22], "{stdout}");
    let last = json_lines(&stdout).pop().unwrap();
    assert_eq!(last["value"]["taskId"], "task-22");

    let all = govlink_ok(
        &app.settings,
        &[
            "topics",
            "tail",
            "govlink.tasks.housing.v1",
            "--from-beginning",
            "--json",
        ],
    )
    .await;
    assert_eq!(json_lines(&all).len(), 23, "{all}");
    app.stop().await;
}

#[tokio::test]
async fn tail_decodes_the_audit_trail_with_the_entries_bodies_masked() {
    let app = spawn_app().await;
    let at = publish_household_at(&app, "h-1", 1).await;
    // A lookup writes an audit entry naming the person looked up.
    crate::lookups::profile(&mut app.resolver(), &alice(), "property-transfer", &[at])
        .await
        .unwrap();
    let stdout = govlink_ok(
        &app.settings,
        &[
            "topics",
            "tail",
            "govlink.audit.v1",
            "--from-beginning",
            "--json",
        ],
    )
    .await;
    let lines = json_lines(&stdout);
    let access = lines
        .iter()
        .find(|m| m["value"]["body"]["access"]["method"] == "GetPersonProfile")
        .unwrap_or_else(|| panic!("the lookup's audit entry is printed: {stdout}"));
    assert_eq!(
        access["value"]["body"]["access"]["personIds"][0],
        mask::resident_id(&alice())
    );
    assert_eq!(
        access["value"]["body"]["access"]["purpose"],
        "property-transfer"
    );
    assert!(
        lines
            .iter()
            .any(|m| m["value"]["body"]["start"]["writer"] == "resolver"),
        "the chain's start is printed: {stdout}"
    );
    assert!(!stdout.contains(&alice()), "{stdout}");
    app.stop().await;
}

#[tokio::test]
async fn topics_list_shows_every_topic_with_partitions_end_offsets_and_configs() {
    let app = spawn_app().await;
    publish_household_at(&app, "h-1", 1).await;
    let stdout = govlink_ok(&app.settings, &["topics", "list", "--json"]).await;
    let lines = json_lines(&stdout);
    let names: Vec<&str> = lines.iter().map(|l| l["topic"].as_str().unwrap()).collect();
    assert_eq!(names, app.topics.all());
    for line in &lines {
        let topic = line["topic"].as_str().unwrap();
        assert_eq!(line["exists"], true, "{line}");
        let partitions = if topic == app.topics.dlq() { 1 } else { 3 };
        assert_eq!(line["partitions"], partitions, "{line}");
        assert_eq!(line["configs"]["cleanup.policy"], "delete", "{line}");
        assert_eq!(line["configs"]["min.insync.replicas"], "1", "{line}");
    }
    let records = &lines[1];
    assert_eq!(records["topic"], app.topics.records(Agency::PublicSecurity));
    assert_eq!(records["message"], "govlink.v1.RecordEvent");
    assert!(records["end_offsets"].as_i64().unwrap() >= 1, "{records}");
    assert_eq!(
        lines[0]["end_offsets"], 0,
        "nothing published to social security"
    );
    assert_eq!(records["configs"]["retention.ms"], "-1");

    let table = govlink_ok(&app.settings, &["topics", "list"]).await;
    assert!(table.starts_with("TOPIC "), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{} ", app.topics.cases())))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(
        row.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["3", "0", "delete", "-1", "1"],
        "{table}"
    );

    // A deployment whose topics were never created.
    let elsewhere = Settings {
        topic_prefix: format!("{}.", unique("none")),
        ..app.settings.clone()
    };
    let table = govlink_ok(&elsewhere, &["topics", "list"]).await;
    let dlq = format!("{}govlink.dlq.v1", elsewhere.topic_prefix);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [dlq.as_str(), "missing"]),
        "{table}"
    );
    assert!(table.contains("13 topic(s) missing"), "{table}");
    app.stop().await;
}

#[tokio::test]
async fn topics_lag_shows_the_materializer_group_and_a_given_group() {
    let app = spawn_app().await;
    let mut after = Vec::new();
    for v in 1..=3 {
        after.push(publish_household_at(&app, &format!("h-{v}"), v).await);
    }
    get_household(&app, "h-3", &after).await.unwrap();
    let generation = generation(&app.settings.redis_prefix).await;
    let materializer = format!("{}.{generation}", app.settings.consumer_group);

    // The materializer commits what it materialized within about a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let group = loop {
        let stdout = govlink_ok(&app.settings, &["topics", "lag", "--json"]).await;
        let groups = json_lines(&stdout);
        let group = groups
            .iter()
            .find(|g| g["group"] == materializer.as_str())
            .unwrap_or_else(|| panic!("the materializer group is shown: {stdout}"))
            .clone();
        if group["lag"] == 0 || tokio::time::Instant::now() > deadline {
            assert!(
                groups.iter().any(
                    |g| g["group"] == format!("{}.cases", app.settings.consumer_group).as_str()
                ),
                "the case engine group is shown: {stdout}"
            );
            break group;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(group["role"], "materializer");
    assert_eq!(group["lag"], 0, "{group}");
    let topic = app.topics.records(Agency::PublicSecurity);
    let committed: i64 = group["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == topic.as_str())
        .map(|p| p["committed"].as_i64().unwrap_or(0))
        .sum();
    assert!(committed >= 3, "three records committed: {group}");

    // A group of one's own, behind by all but one message of a partition.
    let (partition, end) = {
        let mut found = None;
        for p in 0..3 {
            let count = message_count_in(&topic, p).await;
            if count > 0 {
                found = Some((p, i64::try_from(count).unwrap()));
                break;
            }
        }
        found.expect("a partition holds the records")
    };
    let mine = unique("ops-group");
    commit(&mine, &topic, partition, 1).await;
    let stdout = govlink_ok(
        &app.settings,
        &["topics", "lag", "--group", &mine, "--json"],
    )
    .await;
    let groups = json_lines(&stdout);
    assert_eq!(groups.len(), 1, "{stdout}");
    assert_eq!(groups[0]["group"], mine.as_str());
    assert_eq!(
        groups[0]["partitions"],
        serde_json::json!([{
            "topic": topic, "partition": partition, "committed": 1, "end": end, "lag": end - 1
        }])
    );
    assert_eq!(groups[0]["lag"], end - 1);

    let table = govlink_ok(&app.settings, &["topics", "lag", "--group", &mine]).await;
    assert!(
        table.contains(&format!("{mine} (given): total lag {}", end - 1)),
        "{table}"
    );
    app.stop().await;
}

/// Commits `offset` of `topic`/`partition` for `group`, as a consumer of it would.
async fn commit(group: &str, topic: &str, partition: i32, offset: i64) {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka())
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&topic, partition, Offset::Offset(offset))
            .unwrap();
        consumer.commit(&offsets, CommitMode::Sync).unwrap();
    })
    .await
    .unwrap();
}
