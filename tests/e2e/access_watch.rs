//! "Your data was used": the citizen portal watches a person's accesses
//! (`WatchDataAccesses`) and is told of each one as the access index takes it in, with a
//! cursor to resume from, on the real broker and Redis.

use std::time::Duration;

use govlink::proto::{self, Agency, DataAccessNotice};
use tonic::{Code, Status, Streaming};

use crate::helpers::*;
use crate::lookups::{PORTAL, WINDOW, check_flat, everything_about_alice, profile};

/// The method of the watch itself, audited as a listing is.
const WATCHING: &str = "WatchDataAccesses";

/// Opens a watch of `person`'s accesses with `client`, after `cursor` (empty: from now).
async fn watch(
    client: &mut Resolver,
    person: &str,
    cursor: &str,
) -> Result<Streaming<DataAccessNotice>, Status> {
    client
        .watch_data_accesses(proto::WatchDataAccessesRequest {
            person_id: person.into(),
            purpose: "self-view".into(),
            after_cursor: cursor.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The portal's watch of `person`, for that person.
async fn portal_watch(app: &TestApp, person: &str, cursor: &str) -> Streaming<DataAccessNotice> {
    watch(&mut app.resolver_as(PORTAL, Some(person)), person, cursor)
        .await
        .expect("the portal may watch the citizen's accesses")
}

/// The next notice of `stream`; the wait is bounded so a lost notice fails the test.
async fn next_notice(stream: &mut Streaming<DataAccessNotice>) -> DataAccessNotice {
    tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("a notice within 30 s")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

/// Notices of `stream` up to and including the first that `last` picks.
async fn notices_until(
    stream: &mut Streaming<DataAccessNotice>,
    last: impl Fn(&proto::PersonAccess) -> bool,
) -> Vec<DataAccessNotice> {
    let mut seen = Vec::new();
    loop {
        let notice = next_notice(stream).await;
        let done = last(notice.access.as_ref().unwrap());
        seen.push(notice);
        if done {
            return seen;
        }
    }
}

/// Where a notice's access is in the trail: unique to it.
fn place(notice: &DataAccessNotice) -> (String, u64) {
    let access = notice.access.as_ref().unwrap();
    (access.chain_id.clone(), access.sequence)
}

/// A citizen watches; the window looks them up; the notice names who, why, how and what
/// they saw. A second watch resumed from that notice's cursor sends exactly what the
/// first, still open, sent after it: nothing missed, nothing twice, in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_is_told_of_each_access_and_a_resumed_watch_misses_nothing() {
    let app = spawn_app().await;
    let after = everything_about_alice(&app).await;
    let person = alice();
    let mut first = portal_watch(&app, &person, "").await;

    profile(
        &mut app.resolver_as(WINDOW, None),
        &person,
        "property-transfer",
        &after,
    )
    .await
    .unwrap();
    let told = notices_until(&mut first, |a| a.method == "GetPersonProfile").await;
    let lookup = told.last().unwrap();
    let access = lookup.access.as_ref().unwrap();
    assert_eq!(
        (
            access.requester_agency,
            access.requester_service.as_str(),
            access.purpose.as_str(),
            access.decision,
            access.count,
        ),
        (
            Agency::Housing as i32,
            "transfer-window",
            "property-transfer",
            proto::AccessDecision::Allowed as i32,
            1,
        )
    );
    assert_eq!(
        access.sections,
        ["identity", "household", "provident-fund", "property"]
    );
    assert!(access.at.is_some() && !access.chain_id.is_empty());
    assert!(
        told.iter()
            .all(|n| n.access.as_ref().unwrap().method != "ListDataAccesses")
    );
    let cursor = lookup.cursor.clone();
    assert!(!cursor.is_empty());

    // More accesses after the cursor: a check (the buyer is a party too) and another look.
    check_flat(&app, &after).await.unwrap();
    profile(
        &mut app.resolver_as(WINDOW, None),
        &person,
        "property-transfer",
        &[],
    )
    .await
    .unwrap();
    let mut resumed = portal_watch(&app, &person, &cursor).await;
    // The first watch goes on to the resumed watch's own opening (audited, so told).
    let went_on = notices_until(&mut first, |a| a.method == WATCHING).await;
    let picked_up = notices_until(&mut resumed, |a| a.method == WATCHING).await;
    assert_eq!(
        went_on, picked_up,
        "the resumed watch sends what the open one sent after the cursor"
    );
    let methods: Vec<&str> = picked_up
        .iter()
        .map(|n| n.access.as_ref().unwrap().method.as_str())
        .filter(|m| *m != WATCHING)
        .collect();
    assert_eq!(methods, ["CheckPropertyTransfer", "GetPersonProfile"]);
    let mut places: Vec<_> = told.iter().chain(&picked_up).map(place).collect();
    let all = places.len();
    places.sort();
    places.dedup();
    assert_eq!(places.len(), all, "no access told twice");

    // Every allowed access the list holds after the first lookup was told.
    let listed = crate::accesses::accesses_until(&app, &person, |seen| {
        seen.iter().any(|a| a.method == "CheckPropertyTransfer")
    })
    .await;
    let told_places: Vec<_> = told.iter().chain(&picked_up).map(place).collect();
    let first_at = access.at.unwrap();
    for listed in listed.iter().filter(|a| {
        a.decision == proto::AccessDecision::Allowed as i32
            && a.method != "ListDataAccesses"
            && a.method != WATCHING
            && a.at
                .is_some_and(|at| (at.seconds, at.nanos) >= (first_at.seconds, first_at.nanos))
    }) {
        assert!(
            told_places.contains(&(listed.chain_id.clone(), listed.sequence)),
            "{listed:?} was not told"
        );
    }
    app.stop().await;
}

/// Only the citizen, through a self-only grant, watches their accesses; a refused watch
/// is audited (and listed) as a refused listing is.
#[tokio::test]
async fn only_the_citizen_watches_their_own_accesses() {
    let app = spawn_app().await;
    let person = alice();
    // The window has a grant for its purpose, but not a self-only one.
    let window = app
        .resolver_as(WINDOW, None)
        .watch_data_accesses(proto::WatchDataAccessesRequest {
            person_id: person.clone(),
            purpose: "property-transfer".into(),
            after_cursor: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(window.code(), Code::PermissionDenied, "{window:?}");
    assert!(
        window.message().contains("citizen's own view"),
        "{}",
        window.message()
    );
    let nobody = watch(&mut app.resolver_as(PORTAL, None), &person, "")
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::PermissionDenied, "{nobody:?}");
    let someone_else = watch(&mut app.resolver_as(PORTAL, Some(&bea())), &person, "")
        .await
        .unwrap_err();
    assert_eq!(someone_else.code(), Code::PermissionDenied);

    let listed = crate::accesses::accesses_until(&app, &person, |seen| {
        seen.iter()
            .filter(|a| a.method == WATCHING)
            .map(|a| a.count)
            .sum::<u64>()
            >= 3
    })
    .await;
    let refused: Vec<_> = listed.iter().filter(|a| a.method == WATCHING).collect();
    assert!(
        refused
            .iter()
            .all(|a| a.decision == proto::AccessDecision::Denied as i32),
        "{refused:?}"
    );
    app.stop().await;
}

/// A cursor is the service's own: garbage, a cut one, or another person's is refused
/// naming `after_cursor`; a bad person names `person_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_is_not_one_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let (person, other) = (alice(), bea());
    let mut watching = portal_watch(&app, &person, "").await;
    profile(
        &mut app.resolver_as(WINDOW, None),
        &person,
        "property-transfer",
        &[],
    )
    .await
    .unwrap();
    let cursor = notices_until(&mut watching, |a| a.method == "GetPersonProfile")
        .await
        .pop()
        .unwrap()
        .cursor;
    let mut cut = cursor.clone();
    cut.truncate(cursor.len() - 2);
    let mut portal = app.resolver_as(PORTAL, Some(&person));
    let mut hers = app.resolver_as(PORTAL, Some(&other));
    let refusals = [
        watch(&mut portal, &person, "page-2").await.unwrap_err(),
        watch(&mut portal, &person, &cut).await.unwrap_err(),
        watch(&mut hers, &other, &cursor).await.unwrap_err(),
        watch(&mut portal, &person, &"0".repeat(200))
            .await
            .unwrap_err(),
    ];
    for refused in refusals {
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        let fields: Vec<String> = violations(&refused).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["after_cursor"], "{refused:?}");
    }
    let refused = watch(&mut portal, "123", "").await.unwrap_err();
    let fields: Vec<String> = violations(&refused).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["person_id"], "{refused:?}");
    app.stop().await;
}

/// A person's watches on one server are bounded (`RESOURCE_EXHAUSTED` beyond), a closed
/// one frees its slot, and every open watch ends cleanly when the server shuts down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_bounded_and_end_when_the_server_stops() {
    let app = spawn_app().await;
    let person = alice();
    let bound = govlink::resolver::watches::MAX_WATCHES_PER_PERSON;
    let mut open = Vec::new();
    for _ in 0..bound {
        open.push(portal_watch(&app, &person, "").await);
    }
    let refused = watch(&mut app.resolver_as(PORTAL, Some(&person)), &person, "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("watched 4 times"), "{refused:?}");
    let (_, text) = http_get(app.admin.expect("admin http"), "/metrics").await;
    assert_eq!(
        metric(
            &text,
            r#"govlink_limited_requests_total{limit="access_watches",agency="public-security"}"#
        ),
        1.0,
        "the refusal is counted"
    );
    drop(open.pop());
    // The server notices the closed stream when its client resets it: retry until then.
    let mut reopened = None;
    for _ in 0..100 {
        match watch(&mut app.resolver_as(PORTAL, Some(&person)), &person, "").await {
            Ok(stream) => {
                reopened = Some(stream);
                break;
            }
            Err(s) if s.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    open.push(reopened.expect("a closed watch frees its slot"));

    let stopping = tokio::spawn(app.stop());
    for mut stream in open {
        let end = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    other => return other,
                }
            }
        })
        .await
        .expect("the watch ends when the server stops");
        assert!(matches!(end, Ok(None)), "ended cleanly: {end:?}");
    }
    stopping.await.unwrap();
}

/// Redis dies under an open watch: the watch ends with `UNAVAILABLE` naming the access
/// index (counted as the resolver's Redis failure) rather than going quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_whose_index_fails_ends_unavailable_and_is_counted() {
    let mut redis = crate::faults::RedisServer::start().await;
    let mut settings = test_settings();
    settings.redis = Some(redis.url());
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;
    let admin = app.admin.expect("admin http");
    let person = alice();
    let mut watching = portal_watch(&app, &person, "").await;
    let resolver_errors = async || {
        let (_, text) = http_get(admin, "/metrics").await;
        metric(&text, r#"govlink_redis_errors_total{component="resolver"}"#)
    };
    let before = resolver_errors().await;

    redis.kill();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match watching.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the watch ends once the index fails");
    let failure = ended.expect_err("it ends with a failure");
    assert_eq!(failure.code(), Code::Unavailable, "{failure:?}");
    assert_eq!(
        failure.message(),
        "the access index is unavailable; retry later"
    );
    assert!(resolver_errors().await > before, "the failure is counted");
    redis.restart().await;
    app.stop().await;
}

/// The window's look at `person` through `app`, retried while the replica's store is not
/// ready yet (it joined a store another replica keeps).
async fn looked_up(app: &TestApp, person: &str) {
    for _ in 0..100 {
        match profile(
            &mut app.resolver_as(WINDOW, None),
            person,
            "property-transfer",
            &[],
        )
        .await
        {
            Ok(_) => return,
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    panic!("the replica never answered");
}

/// Notices of `stream` until it has told of `lookups` lookups and `watches` watch
/// openings.
async fn notices_of(
    stream: &mut Streaming<DataAccessNotice>,
    lookups: usize,
    watches: usize,
) -> Vec<DataAccessNotice> {
    let mut seen: Vec<DataAccessNotice> = Vec::new();
    let count = |seen: &[DataAccessNotice], method: &str| {
        seen.iter()
            .filter(|n| n.access.as_ref().unwrap().method == method)
            .count()
    };
    while count(&seen, "GetPersonProfile") < lookups || count(&seen, WATCHING) < watches {
        seen.push(next_notice(stream).await);
    }
    seen
}

/// Alice's watch opened on `watched`, told of a lookup answered by `first`; then a
/// second lookup answered by `second`, and a watch resumed on `resumed` from the last
/// cursor told: the resumed watch sends what the first one went on to send. Returns
/// what the first watch was told up to the first lookup, and what the resumed one sent.
async fn watched_then_resumed(
    watched: &TestApp,
    first: &TestApp,
    second: &TestApp,
    resumed: &TestApp,
) -> (Vec<DataAccessNotice>, Vec<DataAccessNotice>) {
    let person = alice();
    let mut watching = portal_watch(watched, &person, "").await;
    looked_up(first, &person).await;
    let told = notices_until(&mut watching, |a| a.method == "GetPersonProfile").await;
    let cursor = told.last().unwrap().cursor.clone();
    looked_up(second, &person).await;
    let mut resuming = portal_watch(resumed, &person, &cursor).await;
    let went_on = notices_of(&mut watching, 1, 1).await;
    let picked_up = notices_of(&mut resuming, 1, 1).await;
    assert_eq!(went_on, picked_up, "one log, read from any replica");
    (told, picked_up)
}

/// Two resolver replicas over one Redis and one audit topic: a watch on one is told of a
/// lookup the other answered (whichever replica's indexer took it in), and a watch
/// resumed on the other replica from its cursor sends what the first goes on to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_follows_accesses_across_resolver_replicas() {
    let settings = test_settings();
    let first = spawn_app_with(settings.clone(), govlink::app::Role::Dev).await;
    let second = spawn_app_with(settings, govlink::app::Role::Resolver).await;
    let (told, picked_up) = watched_then_resumed(&second, &first, &second, &first).await;
    let mut places: Vec<_> = told.iter().chain(&picked_up).map(place).collect();
    let all = places.len();
    places.sort();
    places.dedup();
    assert_eq!(places.len(), all, "no access told twice");
    second.stop().await;
    first.stop().await;
}

/// On the suite's Redis Cluster: the arrival log and the accesses share the
/// person's slot, so the watch's script runs there and the citizen is told, and resumed
/// from a cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_is_told_on_a_redis_cluster() {
    let cluster = std::env::var("GOVLINK_TEST_REDIS_CLUSTER")
        .expect("GOVLINK_TEST_REDIS_CLUSTER is not set: run the suite with scripts/test.sh");
    let settings = govlink::config::Settings {
        redis: Some(cluster),
        ..test_settings()
    };
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;
    watched_then_resumed(&app, &app, &app, &app).await;
    app.stop().await;
}

/// An audit entry of `chain` at `sequence`, `age` ago, about Alice, for `purpose`.
fn entry(
    chain: &str,
    sequence: u64,
    age: Duration,
    purpose: &str,
    decision: proto::AccessDecision,
) -> (proto::AuditEntry, proto::AuditBody) {
    use prost::Message as _;
    let body = proto::AuditBody {
        at: Some((std::time::SystemTime::now() - age).into()),
        kind: Some(proto::audit_body::Kind::Access(proto::DataAccess {
            requester_agency: Agency::Housing as i32,
            requester_service: "transfer-window".into(),
            purpose: purpose.into(),
            method: "GetPersonProfile".into(),
            person_ids: vec![alice()],
            decision: decision as i32,
            reason: "no grant".into(),
            ..proto::DataAccess::default()
        })),
    };
    let entry = proto::AuditEntry {
        chain_id: chain.into(),
        sequence,
        body: body.encode_to_vec(),
        ..proto::AuditEntry::default()
    };
    (entry, body)
}

/// The purposes of the accesses `index` logged for Alice after `after`, in log order.
async fn logged_after(
    index: &govlink::resolver::access::AccessIndex,
    after: govlink::resolver::access::ArrivalId,
) -> Vec<String> {
    let alice = govlink::domain::ResidentId::parse(&alice()).unwrap();
    let week = Duration::from_secs(7 * 86_400);
    let read = index.arrivals(&alice, after, 100, week).await.unwrap();
    assert!(read.windows(2).all(|w| w[0].id < w[1].id), "ids grow");
    assert!(read.first().is_none_or(|a| a.id > after));
    read.into_iter()
        .map(|a| a.access.expect("still indexed").purpose)
        .collect()
}

/// In Redis as in memory, the arrival log holds each allowed access once, in the order it
/// was indexed (an earlier access indexed later comes later), never a refusal, and a
/// replayed batch adds nothing; in Redis the log expires with the person's other keys.
#[tokio::test]
async fn both_indexes_log_each_access_once_in_the_order_indexed() {
    use govlink::resolver::access::{AccessIndex, ArrivalId};
    use proto::AccessDecision::{Allowed, Denied};
    let prefix = format!("govlink-test:{}:", unique("arrivals"));
    let link = govlink::redis_link::RedisLink::new(redis_url());
    let redis_index = AccessIndex::redis(&link, &prefix).await.unwrap();
    let alice_id = govlink::domain::ResidentId::parse(&alice()).unwrap();
    let month = Duration::from_secs(30 * 86_400);
    let first = vec![entry("c1", 1, Duration::from_secs(10), "later", Allowed)];
    let mut second = vec![
        entry("c2", 1, Duration::from_secs(60), "earlier", Allowed),
        entry("c1", 2, Duration::from_secs(5), "refused", Denied),
    ];
    second.extend(first.iter().cloned());
    for index in [AccessIndex::memory(), redis_index] {
        assert_eq!(
            index.last_arrival(&alice_id).await.unwrap(),
            ArrivalId::START
        );
        index.index_entries(&first, month).await.unwrap();
        let after_first = index.last_arrival(&alice_id).await.unwrap();
        index.index_entries(&second, month).await.unwrap();
        index.index_entries(&second, month).await.unwrap();
        assert_eq!(
            logged_after(&index, ArrivalId::START).await,
            ["later", "earlier"]
        );
        assert_eq!(logged_after(&index, after_first).await, ["earlier"]);
        let last = index.last_arrival(&alice_id).await.unwrap();
        assert!(logged_after(&index, last).await.is_empty());
    }
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}acn:{{p:{}}}", alice()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "the log expires with the person's keys: {ttl}");
}
