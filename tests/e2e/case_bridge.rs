//! The record bridge on the real broker: applied record changes become `RecordChanged`
//! commands for the open cases watching their subjects; changes replayed while the
//! record store is not ready (a rebuild) send nothing, and readiness, like a lag, makes
//! every open case look at its records again, once.

use std::time::Duration;

use govlink::cases::bridge::RecordBridge;
use govlink::cases::store::{CaseStore, MemoryCaseStore};
use govlink::kafka::Brokers;
use govlink::kafka::{Publisher, Topics, ensure_topics};
use govlink::proto::{
    self, CaseCommand, CaseParams, CaseState, HouseholdMoveParams, Op, Position, case_command,
    case_params,
};
use govlink::records::{RecordKey, RecordType, SubjectKey};
use govlink::resolver::AppliedChange;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// An open household move of `person`, watching the person's records.
fn open_move(case_id: &str, person: &str) -> proto::Case {
    proto::Case {
        case_id: case_id.into(),
        sequence: 1,
        state: CaseState::Open as i32,
        params: Some(CaseParams {
            kind: Some(case_params::Kind::HouseholdMove(HouseholdMoveParams {
                person_id: person.into(),
                to_region_code: "310104".into(),
            })),
        }),
        ..Default::default()
    }
}

/// A household record change of `person`.
fn change(person: &str, version: u64) -> AppliedChange {
    AppliedChange {
        key: RecordKey::new(RecordType::HouseholdRegistration, &format!("h-{person}")),
        version,
        subjects: vec![SubjectKey::from_stored(&format!("p:{person}"))],
        op: Op::Upsert,
        position: Position::default(),
    }
}

/// Every command on the command topic so far, as (case id, record key).
async fn commands(topics: &Topics, partitions: i32) -> Vec<(String, String)> {
    let topic = topics.case_commands();
    let reads =
        (0..partitions).map(|p| read_partition(&topic, p, 0, usize::MAX, Duration::from_secs(2)));
    let mut all = Vec::new();
    for read in futures::future::join_all(reads).await {
        for m in read {
            let command = CaseCommand::decode(rdkafka::Message::payload(&m).unwrap()).unwrap();
            let Some(case_command::Body::RecordChanged(changed)) = command.body else {
                panic!("not a record change: {command:?}");
            };
            all.push((command.case_id, changed.record_key));
        }
    }
    all.sort();
    all
}

#[tokio::test]
async fn record_changes_reach_the_watching_cases_and_a_rebuild_or_a_lag_reaches_all_once() {
    let settings = test_settings();
    let topics = Topics::new(settings.topic_prefix.clone());
    let mut names = vec![topics.case_commands(), topics.cases()];
    names.extend(govlink::records::AGENCIES.map(|a| topics.tasks(a)));
    let specs = specs_of(&topics, &names, settings.partitions);
    ensure_topics(
        &Brokers::plaintext(kafka()),
        &specs,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (alice, bea) = (alice(), bea());
    let store = CaseStore::Memory(MemoryCaseStore::new());
    store.index(&open_move("move-a", &alice)).await.unwrap();
    store.index(&open_move("move-b", &bea)).await.unwrap();

    let (changes, receiver) = tokio::sync::broadcast::channel(16);
    let (ready, readiness) = tokio::sync::watch::channel(false);
    let publisher =
        Publisher::new(&Brokers::plaintext(kafka()), Duration::from_secs(30), 1000).unwrap();
    let bridge = RecordBridge::new(receiver, readiness, store, publisher, topics.clone());
    let stop = CancellationToken::new();
    let running = tokio::spawn(bridge.run(stop.clone()));

    // A rebuild replays history: nothing is news to a case.
    for version in 1..=200 {
        changes.send(change(&alice, version)).unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(commands(&topics, settings.partitions).await, []);

    // Ready: every open case looks again, once.
    ready.send(true).unwrap();
    let everyone = vec![
        ("move-a".to_owned(), String::new()),
        ("move-b".to_owned(), String::new()),
    ];
    assert_eq!(commands(&topics, settings.partitions).await, everyone);

    // A change reaches the case watching its subject, with its key.
    changes.send(change(&bea, 7)).unwrap();
    let mut expected = everyone.clone();
    expected.push((
        "move-b".to_owned(),
        format!("public-security/household_registration/h-{bea}"),
    ));
    expected.sort();
    assert_eq!(commands(&topics, settings.partitions).await, expected);

    // Far more changes than the bridge keeps, sent without letting it run: it lagged,
    // and every open case looks again, once.
    for version in 1..=100 {
        changes.send(change(&alice, 1000 + version)).unwrap();
    }
    expected.extend(everyone);
    expected.sort();
    assert_eq!(commands(&topics, settings.partitions).await, expected);

    stop.cancel();
    assert_eq!(running.await.unwrap(), Ok(()));
}
