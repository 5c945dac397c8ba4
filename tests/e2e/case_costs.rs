//! What the case engine's calls cost its Redis, counted by Redis itself (`INFO
//! commandstats`) on a Redis of each test's own: a `ListCases` of one person's cases
//! reads that person's cases, not every case in the store; an idle `Tasks.Stream` asks
//! one small question per poll instead of reading the agency's every task again.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::faults::RedisServer;
use crate::helpers::*;
use govlink::app::Role;
use govlink::cases::store::CaseStore;
use govlink::config::Settings;
use govlink::domain::ResidentId;
use govlink::identity::AsRequester;
use govlink::identity::Requester;
use govlink::proto::{
    self, Agency, Case, CaseKind, CaseParams, CaseState, HouseholdMoveParams, Step, StepState,
    Task, case_params,
};
use govlink::redis_link::RedisLink;

/// The commands run between two readings, by name; left out: the `INFO` that measures and
/// the `PING`s that keep connections alive (not the store's work).
fn ran(before: &BTreeMap<String, u64>, after: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .into_iter()
        .filter(|(name, _)| name != "info" && name != "ping")
        .filter_map(|(name, calls)| {
            let delta = calls - before.get(&name).copied().unwrap_or(0);
            (delta > 0).then_some((name, delta))
        })
        .collect()
}

/// A case engine (and its services) on a Redis of its own, and that Redis's store.
async fn engine_on_own_redis() -> (RedisServer, TestApp, CaseStore) {
    let redis = RedisServer::start().await;
    let settings = Settings {
        redis: Some(redis.url()),
        ..test_settings()
    };
    let app = spawn_app_with(settings, Role::Cases).await;
    let store = CaseStore::connect(&RedisLink::new(redis.url()), &app.settings.redis_prefix)
        .await
        .expect("case store");
    (redis, app, store)
}

/// An open household move of `person` opened at `opened_s`, its one step public
/// security's.
fn household_case(id: &str, person: &str, opened_s: i64) -> Case {
    Case {
        case_id: id.into(),
        sequence: 1,
        kind: CaseKind::HouseholdMove as i32,
        state: CaseState::Open as i32,
        purpose: "household-move".into(),
        opened_at: Some(prost_types::Timestamp {
            seconds: opened_s,
            nanos: 0,
        }),
        params: Some(CaseParams {
            kind: Some(case_params::Kind::HouseholdMove(HouseholdMoveParams {
                person_id: person.into(),
                to_region_code: "310104".into(),
            })),
        }),
        steps: vec![Step {
            step_id: "household_moved".into(),
            agency: Agency::PublicSecurity as i32,
            state: StepState::Open as i32,
            task_id: format!("{id}/household_moved.1"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Someone other than alice for each `i` below 28 000.
fn somebody(i: usize) -> String {
    person(&format!("110105198001{:02}{:03}", 1 + i % 28, i / 28))
}

#[tokio::test]
async fn listing_one_persons_cases_reads_their_cases_not_the_whole_store() {
    let (redis, app, store) = engine_on_own_redis().await;
    // 2 000 cases, five of them alice's (one in every 400), committed and indexed as the
    // engine does.
    let mut hers = Vec::new();
    for i in 0..2000 {
        let id = format!("case-{i:05}");
        let person = if i % 400 == 7 { alice() } else { somebody(i) };
        let case = household_case(&id, &person, 1_700_000_000 + i64::try_from(i).unwrap());
        assert!(store.commit(0, &case, &[]).await.unwrap());
        store.index(&case).await.unwrap();
        if person == alice() {
            hers.push(id);
        }
    }
    hers.reverse();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut window = cases_as(&app, "public-security/move-window");

    let before = command_calls(&mut conn).await;
    let listed = window
        .list_cases(proto::ListCasesRequest {
            person_id: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let commands = ran(&before, command_calls(&mut conn).await);
    let ids: Vec<&str> = listed.cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, hers, "her five cases, newest first");
    assert!(!listed.truncated);
    let total: u64 = commands.values().sum();
    println!("ListCases(person_id) over 2000 cases ran {total} Redis commands: {commands:?}");
    // A few to find the list and her five views, not one per case in the store.
    assert!(total <= 12, "{total} commands: {commands:?}");

    // Limited to two: the newest two, and said to be truncated.
    let before = command_calls(&mut conn).await;
    let first_two = window
        .list_cases(proto::ListCasesRequest {
            person_id: alice(),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let commands = ran(&before, command_calls(&mut conn).await);
    let ids: Vec<&str> = first_two.cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, hers[..2]);
    assert!(first_two.truncated);
    assert!(commands.values().sum::<u64>() <= 12, "{commands:?}");

    // The citizen portal, self-only, asks for no person: it can only see cases naming
    // the citizen it acts for, so only hers are read (and none is of its purpose).
    let citizen = ResidentId::parse(&alice()).unwrap();
    let mut portal = proto::cases_client::CasesClient::with_interceptor(
        app.channel.clone(),
        AsRequester::new(
            &Requester::parse("public-security/citizen-portal").unwrap(),
            Some(&citizen),
        ),
    );
    let before = command_calls(&mut conn).await;
    let theirs = portal
        .list_cases(proto::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let commands = ran(&before, command_calls(&mut conn).await);
    assert!(theirs.cases.is_empty(), "{theirs:?}");
    println!("the portal's ListCases ran {commands:?}");
    assert!(commands.values().sum::<u64>() <= 12, "{commands:?}");
    app.stop().await;
}

fn task(id: usize) -> Task {
    Task {
        task_id: format!("case-{id:05}/household_moved.1"),
        case_id: format!("case-{id:05}"),
        agency: Agency::PublicSecurity as i32,
        purpose: "household-move".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_idle_task_stream_does_not_read_the_agencys_tasks_again() {
    let (redis, app, store) = engine_on_own_redis().await;
    for i in 0..50 {
        store.add_task(&task(i)).await.unwrap();
    }
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut client = tasks_as(&app, "public-security/records");
    let mut stream = client
        .stream(proto::StreamTasksRequest {})
        .await
        .unwrap()
        .into_inner();
    for _ in 0..50 {
        let sent = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("every kept task within a minute")
            .unwrap()
            .expect("the stream stays open");
        assert!(!sent.withdrawn);
    }

    // Idle: nothing changes. The stream goes on polling (one small read each time) but
    // does not read the 50 tasks again.
    let before = command_calls(&mut conn).await;
    let polls = |commands: &BTreeMap<String, u64>| commands.get("hget").copied().unwrap_or(0);
    let mut idle = BTreeMap::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        idle = ran(&before, command_calls(&mut conn).await);
        if polls(&idle) >= 5 {
            break;
        }
    }
    println!("an idle task stream ran {idle:?}");
    assert_eq!(idle.get("hgetall"), None, "the tasks read again: {idle:?}");
    assert!(polls(&idle) >= 5, "the stream polls: {idle:?}");
    let per_poll = idle.values().sum::<u64>() / polls(&idle);
    assert_eq!(per_poll, 1, "one command per idle poll: {idle:?}");

    // A change is seen at the next poll: a new task, then the withdrawal of one sent.
    store.add_task(&task(50)).await.unwrap();
    let mut withdrawn = task(3);
    withdrawn.withdrawn = true;
    store.add_task(&withdrawn).await.unwrap();
    let mut next = Vec::new();
    for _ in 0..2 {
        let sent = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("the changes within a minute")
            .unwrap()
            .expect("the stream stays open");
        next.push((sent.task_id, sent.withdrawn));
    }
    next.sort();
    assert_eq!(next, [(task(3).task_id, true), (task(50).task_id, false)]);
    app.stop().await;
}

#[tokio::test]
async fn cases_stored_before_the_lists_existed_are_still_listed() {
    let redis = RedisServer::start().await;
    let settings = Settings {
        redis: Some(redis.url()),
        ..test_settings()
    };
    let prefix = settings.redis_prefix.clone();
    let store = CaseStore::connect(&RedisLink::new(redis.url()), &prefix)
        .await
        .expect("case store");
    for (i, person) in [alice(), bea(), alice()].iter().enumerate() {
        let case = household_case(&format!("old-{i}"), person, 1_700_000_000 + i as i64);
        assert!(store.commit(0, &case, &[]).await.unwrap());
        store.index(&case).await.unwrap();
    }
    // As an older govlink left it: only the list of every case, no layout marker.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}cases:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for key in keys {
        if key != format!("{prefix}cases:all") && key != format!("{prefix}cases:open") {
            let _: i64 = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    assert!(!store.lists_current().await.unwrap());

    let app = spawn_app_with(settings, Role::Cases).await;
    let mut window = cases_as(&app, "public-security/move-window");
    let hers = |listed: proto::ListCasesResponse| -> Vec<String> {
        listed.cases.into_iter().map(|c| c.case_id).collect()
    };
    let by_person = proto::ListCasesRequest {
        person_id: alice(),
        ..Default::default()
    };
    // Whether or not the engine has relisted them yet, her cases are found.
    let listed = window
        .list_cases(by_person.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hers(listed), ["old-2", "old-0"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !store.lists_current().await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relisted within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = window.list_cases(by_person).await.unwrap().into_inner();
    assert_eq!(hers(listed), ["old-2", "old-0"]);
    assert_eq!(
        store
            .list_page(&govlink::cases::store::CaseList::Person(alice()), 0, 10)
            .await
            .unwrap(),
        (vec!["old-2".to_owned(), "old-0".to_owned()], false)
    );
    app.stop().await;
}
