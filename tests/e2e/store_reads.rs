//! A lookup reads only what it returns: the Redis commands one `read_subjects` costs,
//! counted by Redis itself (`INFO commandstats`), do not grow with a person's
//! contribution history; and a store written in another key layout is rebuilt.

use std::collections::BTreeMap;
use std::time::Duration;

use govlink::app::Role;
use govlink::proto::{
    self, GetRecordRequest, InsuranceType, LoanStatus, RecordEvent, record_event::Payload,
};
use govlink::records::{RecordKey, RecordType, SubjectKey};
use govlink::redis_link::RedisLink;
use govlink::resolver::checks::ContributionSummary;
use govlink::resolver::store::{
    LAYOUT, NotReady, RecordWrite, RedisStore, Store, StoreError, StoreState, SubjectData,
    SubjectRead,
};
use redis::AsyncCommands;
use tonic::Code;

use crate::faults::RedisServer;
use crate::helpers::*;

/// What a person-profile lookup asks for, besides the contribution summary.
const PROFILE: [RecordType; 6] = [
    RecordType::Identity,
    RecordType::HouseholdRegistration,
    RecordType::Enrollment,
    RecordType::ProvidentFundAccount,
    RecordType::ProvidentFundLoan,
    RecordType::PropertyTitle,
];

fn event(record_id: &str, payload: Payload) -> RecordEvent {
    record_event(record_id, 1, payload)
}

/// `months` monthly contributions of `person` per insurance type, back from 2026-10.
fn contributions(person: &str, types: &[InsuranceType], months: u32) -> Vec<RecordEvent> {
    let mut events = Vec::new();
    for insurance_type in types {
        for m in 0..months {
            let index = 2026 * 12 + 9 - i32::try_from(m).unwrap();
            let mut period = contribution(person);
            period.insurance_type = *insurance_type as i32;
            period.period = Some(proto::YearMonth {
                year: index / 12,
                month: index % 12 + 1,
            });
            let id = format!("{}-{}-{m}", &person[14..], insurance_type.as_str_name());
            events.push(event(&id, Payload::ContributionPeriod(period)));
        }
    }
    events
}

/// A person's whole file: identity, household, two enrollments, provident-fund account and
/// loan, a title, and the contributions; written as the materializer would, in batches.
async fn load_person(store: &Store, person: &str, contributions: &[RecordEvent]) {
    let tag = &person[14..];
    let mut medical = enrollment(person);
    medical.insurance_type = InsuranceType::Medical as i32;
    let file = [
        event(&format!("I-{tag}"), Payload::Identity(identity(person))),
        event(
            &format!("H-{tag}"),
            Payload::HouseholdRegistration(household(person, proto::HouseholdStatus::Registered)),
        ),
        event(
            &format!("EP-{tag}"),
            Payload::Enrollment(enrollment(person)),
        ),
        event(&format!("EM-{tag}"), Payload::Enrollment(medical)),
        event(
            &format!("F-{tag}"),
            Payload::ProvidentFundAccount(account(person)),
        ),
        event(
            &format!("L-{tag}"),
            Payload::ProvidentFundLoan(loan(person, LoanStatus::Repaying, 1_000)),
        ),
        event(
            &format!("T-{tag}"),
            Payload::PropertyTitle(title(&[(person, 10_000)])),
        ),
    ];
    let writes: Vec<RecordWrite> = file.iter().chain(contributions).map(store_write).collect();
    for batch in writes.chunks(200) {
        store.apply(batch).await.expect("the batch is written");
    }
}

/// The commands one `read_subjects` call ran, by name (the `INFO` that measures is left
/// out). Nothing else talks to this Redis meanwhile.
async fn commands_of(
    store: &Store,
    conn: &mut redis::aio::MultiplexedConnection,
    reads: &[SubjectRead],
) -> (Vec<SubjectData>, BTreeMap<String, u64>) {
    let before = command_calls(conn).await;
    let data = store.read_subjects(reads).await.unwrap();
    let after = command_calls(conn).await;
    let ran = after
        .into_iter()
        .filter(|(name, _)| name != "info")
        .filter_map(|(name, calls)| {
            let delta = calls - before.get(&name).copied().unwrap_or(0);
            (delta > 0).then_some((name, delta))
        })
        .collect();
    (data, ran)
}

fn profile_read(person: &str) -> SubjectRead {
    SubjectRead {
        subject: SubjectKey::from_stored(&format!("p:{person}")),
        types: PROFILE.to_vec(),
        contributions: true,
    }
}

fn commands(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

#[tokio::test]
async fn a_profile_lookup_costs_the_same_commands_for_3_or_720_contributions() {
    // A Redis of this test's own: other tests run commands on the shared one.
    let redis = RedisServer::start().await;
    let store = Store::Redis(
        RedisStore::connect(&RedisLink::new(redis.url()), "govlink-reads:")
            .await
            .expect("redis store"),
    );
    assert!(store.replace_generation(None, "g1", "test").await.unwrap());
    assert!(store.start_rebuild("g1", &[]).await.unwrap());
    let (long, short) = (alice(), bea());
    let thirty_years = contributions(
        &long,
        &[InsuranceType::Pension, InsuranceType::Medical],
        360,
    );
    assert_eq!(thirty_years.len(), 720);
    let three_months = contributions(&short, &[InsuranceType::Pension], 3);
    load_person(&store, &long, &thirty_years).await;
    load_person(&store, &short, &three_months).await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // Readiness, then one HGETALL per asked type and one for the contribution index.
    let one_lookup = commands(&[("hmget", 1), ("hgetall", PROFILE.len() as u64 + 1)]);
    for (person, history, months) in [(&long, &thirty_years, 360), (&short, &three_months, 3)] {
        let (data, ran) = commands_of(&store, &mut conn, &[profile_read(person)]).await;
        assert_eq!(ran, one_lookup, "{months} months of contributions");
        let records: Vec<RecordType> = data[0]
            .records
            .iter()
            .map(|r| r.key.record_type())
            .collect();
        assert_eq!(records.len(), 7, "{records:?}");
        assert!(records.iter().all(|t| PROFILE.contains(t)), "{records:?}");
        let summary = data[0].contributions.as_ref().expect("asked for");
        assert_eq!(summary, &ContributionSummary::from_periods(history.iter()));
        assert_eq!(summary.months_paid(), months);
    }

    // Both people in one call: still one readiness read, and no command per record.
    let (data, ran) = commands_of(
        &store,
        &mut conn,
        &[profile_read(&long), profile_read(&short)],
    )
    .await;
    assert_eq!(
        ran,
        commands(&[("hmget", 1), ("hgetall", 2 * (PROFILE.len() as u64 + 1))])
    );
    assert_eq!(data.len(), 2);

    // Every record is still listed under the person, contributions included.
    let listed = store
        .subject_records(&SubjectKey::from_stored(&format!("p:{long}")))
        .await
        .unwrap();
    assert_eq!(listed.len(), 7 + 720);
}

/// A resolver that finds a store of its own deployment, ready, but written in the layout
/// before this one (its marker names none) does not answer from it: it starts a new
/// generation, which clears the old keys and rebuilds from the topics.
#[tokio::test]
async fn a_store_in_the_old_layout_is_cleared_and_rebuilt() {
    let settings = test_settings();
    let prefix = settings.redis_prefix.clone();
    let meta_key = format!("{prefix}meta");
    let old_copies = format!("{prefix}sub:{{p:{}}}", alice());
    let mut conn = redis().await;
    let source = format!("{}|{}", settings.topic_prefix, settings.consumer_group);
    let _: () = conn
        .hset_multiple(
            &meta_key,
            &[("gen", "old"), ("state", "ready"), ("source", &source)],
        )
        .await
        .unwrap();
    let _: () = conn
        .hset(
            &old_copies,
            "public-security/household_registration/h-old",
            format!("{:020}1old", 1),
        )
        .await
        .unwrap();

    let app = spawn_app_with(settings, Role::Dev).await;
    let at = publish_household_at(&app, "h-1", 3).await;
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    let version = loop {
        let mut request = tonic::Request::new(GetRecordRequest {
            record_key: "public-security/household_registration/h-1".into(),
            min_positions: vec![at.clone()],
        });
        request.set_timeout(Duration::from_secs(30));
        match app
            .resolver_as("public-security/records", None)
            .get_record(request)
            .await
        {
            Ok(r) => break r.into_inner().record.unwrap().version,
            // The rebuild is still running.
            Err(s) if s.code() == Code::Unavailable && tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("lookup failed: {s:?}"),
        }
    };
    assert_eq!(version, 3);
    assert_ne!(generation(&prefix).await, "old", "a new generation");
    let layout: Option<String> = conn.hget(&meta_key, "layout").await.unwrap();
    assert_eq!(layout.as_deref(), Some(LAYOUT));
    let left: bool = conn.exists(&old_copies).await.unwrap();
    assert!(!left, "the old layout's keys are cleared");
    app.stop().await;
}

/// A Redis store whose marker names another key layout (or none: written before layouts
/// were named) answers no lookup, as if it were lost, until a new generation starts.
#[tokio::test]
async fn a_redis_store_of_another_layout_is_lost_until_a_new_generation() {
    let prefix = format!("govlink-test:{}:", unique("layout"));
    let store = Store::Redis(
        RedisStore::connect(&RedisLink::new(redis_url()), &prefix)
            .await
            .expect("redis store"),
    );
    let meta_key = format!("{prefix}meta");
    let mut conn = redis().await;
    let read = SubjectRead {
        subject: SubjectKey::from_stored("p:o"),
        types: vec![RecordType::PropertyTitle],
        contributions: true,
    };
    for layout in [None, Some("1"), Some("2"), Some("3"), Some("5")] {
        let _: () = conn.del(&meta_key).await.unwrap();
        let _: () = conn
            .hset_multiple(
                &meta_key,
                &[("gen", "g0"), ("state", "ready"), ("source", "test")],
            )
            .await
            .unwrap();
        if let Some(layout) = layout {
            let _: () = conn.hset(&meta_key, "layout", layout).await.unwrap();
        }
        let meta = store.meta().await.unwrap().expect("a marker");
        assert!(!meta.has_current_layout(), "{layout:?}");
        assert!(matches!(
            store.get(&RecordKey::new(RecordType::Identity, "a")).await,
            Err(StoreError::NotReady(NotReady::Lost))
        ));
        assert!(matches!(
            store.subject_entries(&read.subject).await,
            Err(StoreError::NotReady(NotReady::Lost))
        ));
        assert!(matches!(
            store.read_subjects(std::slice::from_ref(&read)).await,
            Err(StoreError::NotReady(NotReady::Lost))
        ));
    }
    assert!(
        store
            .replace_generation(Some("g0"), "g1", "test")
            .await
            .unwrap()
    );
    assert!(store.start_rebuild("g1", &[]).await.unwrap());
    let meta = store.meta().await.unwrap().unwrap();
    assert!(meta.has_current_layout());
    assert_eq!(meta.state, StoreState::Ready);
    let data = store.read_subjects(&[read]).await.unwrap();
    assert!(data[0].records.is_empty());
    assert_eq!(data[0].contributions, Some(ContributionSummary::default()));
}
