//! Case engines (`govlink cases` processes) killed with SIGKILL while cases are open and
//! their commands in flight: every case still completes, and its history on the case
//! topic has each event once (a retried publish may repeat one, identical) and each step
//! completed exactly once; the view in the case store is the fold of that history.

use govlink::app::Role;
use govlink::cases::case;
use govlink::cases::store::CaseStore;
use govlink::identity::AsRequester;
use govlink::identity::Requester;
use govlink::proto::{self, Agency, CaseEvent, CaseState, case_event, cases_client::CasesClient};
use govlink::redis_link::RedisLink;
use prost::Message as _;
use tonic::service::interceptor::InterceptedService;

use super::*;

const SHANGHAI: &str = "310104";
/// How many household moves each test carries.
const MOVES: usize = 8;

type Cases = CasesClient<InterceptedService<Channel, AsRequester>>;

/// The public-security move window's `Cases` client over `channel`.
fn move_window(channel: Channel) -> Cases {
    let requester = Requester::parse("public-security/move-window").unwrap();
    CasesClient::with_interceptor(channel, AsRequester::new(&requester, None))
}

/// The people who move, one per case; `tag` keeps tests apart.
fn movers(tag: u32) -> Vec<String> {
    (0..MOVES)
        .map(|i| person(&format!("110105198{tag}0101{:03}", 100 + i)))
        .collect()
}

/// Opens a household move to Shanghai for each of `people`; the case ids.
async fn open_moves(cases: &mut Cases, people: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, p) in people.iter().enumerate() {
        let case = cases
            .open_case(household_move(&format!("move-{i}"), p))
            .await
            .expect("the case opens")
            .into_inner()
            .case
            .unwrap();
        ids.push(case.case_id);
    }
    ids
}

/// Public security's record of `person`'s household at `version`: moved out of Beijing
/// (1), then registered in Shanghai (2).
async fn publish_move(adapter: &Channel, i: usize, person: &str, version: u64) {
    let (region, status) = match version {
        1 => ("110105", proto::HouseholdStatus::MovedOut),
        _ => (SHANGHAI, proto::HouseholdStatus::Registered),
    };
    let record = proto::HouseholdRegistration {
        region_code: region.into(),
        property_unit_number: String::new(),
        destination_region_code: if version == 1 {
            SHANGHAI.into()
        } else {
            String::new()
        },
        ..household(person, status)
    };
    proto::public_security_adapter_client::PublicSecurityAdapterClient::new(adapter.clone())
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta(&format!("move-{i}"), version),
            record: Some(record),
        })
        .await
        .expect("the record is published");
}

/// Waits until every case in `ids` is completed, asking `cases`.
async fn all_completed(cases: &mut Cases, ids: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for id in ids {
        loop {
            let case = cases
                .get_case(proto::GetCaseRequest {
                    case_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            if case.state() == CaseState::Completed {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "case {id} never completed: {case:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every case's history on the case topic: each sequence number once (or repeated
/// identically), without gaps; each of the two steps completed once; the stored view
/// the fold of the history.
async fn histories_are_whole(settings: &Settings, ids: &[String]) {
    let topics = govlink::kafka::Topics::new(settings.topic_prefix.clone());
    let mut events = Vec::new();
    for p in 0..settings.partitions {
        let topic = topics.cases();
        for m in read_partition(&topic, p, 0, usize::MAX, Duration::from_secs(2)).await {
            events.push(CaseEvent::decode(rdkafka::Message::payload(&m).unwrap()).unwrap());
        }
    }
    let store = CaseStore::connect(&RedisLink::new(redis_url()), &settings.redis_prefix)
        .await
        .unwrap();
    let mut duplicates = 0;
    for id in ids {
        let mut history: Vec<&CaseEvent> = events.iter().filter(|e| e.case_id == *id).collect();
        history.sort_by_key(|e| e.sequence);
        let published = history.len();
        history.dedup_by(|a, b| {
            let same = a.sequence == b.sequence;
            assert!(
                !same || a == b,
                "{id}: two different events with sequence {}",
                a.sequence
            );
            same
        });
        duplicates += published - history.len();
        let sequences: Vec<u64> = history.iter().map(|e| e.sequence).collect();
        assert_eq!(
            sequences,
            (1..=sequences.len() as u64).collect::<Vec<_>>(),
            "{id}: a gap in the history"
        );
        let completed = history
            .iter()
            .filter(|e| matches!(e.body, Some(case_event::Body::StepCompleted(_))))
            .count();
        assert_eq!(completed, 2, "{id}: each step completed once");
        let folded = history
            .iter()
            .fold(None, |case, e| Some(case::apply(case, e)))
            .unwrap();
        let stored = store.load(id).await.unwrap();
        assert_eq!(
            stored.case.as_ref(),
            Some(&folded),
            "{id}: view and history"
        );
        assert!(stored.outbox.is_empty(), "{id}: events left unpublished");
    }
    println!(
        "case engine faults: {} cases, {} events, {duplicates} repeated by a retried publish",
        ids.len(),
        events.len()
    );
}

/// The only case engine is killed right after records that complete a step of every
/// case were published (their commands on the way or being applied), and started again
/// by a supervisor after the session timeout.
#[tokio::test]
async fn a_case_engine_killed_mid_case_and_restarted_loses_nothing_and_repeats_no_step() {
    let settings = test_settings();
    // Records come through public security's adapter, and reach the cases through the
    // resolver's materializer and record bridge; the engine is the child process.
    let adapter = spawn_app_with(settings.clone(), Role::Adapter(Agency::PublicSecurity)).await;
    let resolver = spawn_app_with(settings.clone(), Role::Resolver).await;
    let mut engine = Process::start(&settings, "cases").await;
    let people = movers(1);
    let ids = open_moves(
        &mut move_window(engine.channel_as("public-security/move-window").await),
        &people,
    )
    .await;

    for (i, p) in people.iter().enumerate() {
        publish_move(&adapter.channel, i, p, 1).await;
    }
    let mut rng = Rng::seeded();
    tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
    engine.kill();

    for (i, p) in people.iter().enumerate() {
        publish_move(&adapter.channel, i, p, 2).await;
    }
    tokio::time::sleep(SESSION_EXPIRY).await;
    let engine = Process::start(&settings, "cases").await;
    all_completed(
        &mut move_window(engine.channel_as("public-security/move-window").await),
        &ids,
    )
    .await;
    histories_are_whole(&settings, &ids).await;
    resolver.stop().await;
    adapter.stop().await;
}

/// Two engines share the group: the app's and a `govlink cases` process, killed while
/// cases are open. Its partitions go to the survivor and a replacement a supervisor
/// starts after the session timeout.
#[tokio::test]
async fn two_case_engines_share_the_cases_and_one_is_killed() {
    let app = spawn_app().await;
    let mut child = Process::start(&app.settings, "cases").await;
    let people = movers(2);
    let mut window = move_window(app.channel.clone());
    let ids = open_moves(&mut window, &people).await;
    for (i, p) in people.iter().enumerate() {
        publish_move(&app.channel, i, p, 1).await;
    }
    let mut rng = Rng::seeded();
    tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
    child.kill();

    for (i, p) in people.iter().enumerate() {
        publish_move(&app.channel, i, p, 2).await;
    }
    tokio::time::sleep(SESSION_EXPIRY).await;
    let _replacement = Process::start(&app.settings, "cases").await;
    all_completed(&mut window, &ids).await;
    histories_are_whole(&app.settings, &ids).await;
    app.stop().await;
}
