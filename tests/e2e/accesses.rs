//! The audit trail as the people in it see it: every lookup, allowed or denied, is an
//! entry before its answer leaves, and the citizen lists who looked at their data.

use govlink::proto::{self, Agency, GetPersonProfileRequest};
use tonic::Code;

use crate::helpers::*;
use crate::lookups::{PORTAL, WINDOW, check_flat, everything_about_alice, profile};

/// The method of the citizen's own listing, itself audited.
const LISTING: &str = "ListDataAccesses";

/// The broker stops acknowledging (its process frozen): a lookup whose audit entry cannot
/// be written gets no answer, only `UNAVAILABLE`; once the broker is back, lookups are
/// answered (and audited) again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_cannot_be_audited_is_not_given() {
    let broker = crate::publish_faults::OwnBroker::start("memory://tansu/").await;
    let mut settings = test_settings();
    settings.kafka = Some(broker.bootstrap());
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;
    let after = vec![
        publish_household(&app, "H-1", 1, &alice(), proto::HouseholdStatus::Registered)
            .await
            .position
            .unwrap(),
    ];
    let mut window = app.resolver_as(WINDOW, None);
    let answer = profile(&mut window, &alice(), "property-transfer", &after)
        .await
        .unwrap();
    assert_eq!(answer.household.unwrap().registrations.len(), 1);

    broker.signal("-STOP");
    let mut request = tonic::Request::new(GetPersonProfileRequest {
        person_id: alice(),
        purpose: "property-transfer".into(),
        ..Default::default()
    });
    request.set_timeout(std::time::Duration::from_secs(3));
    let refused = window.get_person_profile(request).await.unwrap_err();
    broker.signal("-CONT");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("audit"), "{}", refused.message());

    let mut answered = None;
    for _ in 0..100 {
        match profile(&mut window, &alice(), "property-transfer", &[]).await {
            Ok(answer) => {
                answered = Some(answer);
                break;
            }
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    assert!(
        answered.is_some(),
        "lookups answered again once the broker is back"
    );
    app.stop().await;
}

/// Redis dies (killed): a listing of the citizen's accesses is refused `UNAVAILABLE`
/// naming the access index, and the failure is counted in `govlink_redis_errors_total` as
/// the resolver's, as a record read that Redis failed is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_the_access_index_cannot_read_is_counted_as_a_redis_failure() {
    let mut redis = crate::faults::RedisServer::start().await;
    let mut settings = test_settings();
    settings.redis = Some(redis.url());
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;
    let admin = app.admin.expect("admin http");
    let resolver_errors = async || {
        let (_, text) = http_get(admin, "/metrics").await;
        metric(&text, r#"govlink_redis_errors_total{component="resolver"}"#)
    };
    assert_eq!(resolver_errors().await, 0.0);

    redis.kill();
    let person = alice();
    let mut request = tonic::Request::new(proto::ListDataAccessesRequest {
        person_id: person.clone(),
        purpose: "self-view".into(),
        ..Default::default()
    });
    request.set_timeout(std::time::Duration::from_secs(5));
    let refused = app
        .resolver_as(PORTAL, Some(&person))
        .list_data_accesses(request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(
        refused.message(),
        "the access index is unavailable; retry later"
    );
    assert_eq!(
        resolver_errors().await,
        1.0,
        "the index's failure is counted"
    );

    let mut request = tonic::Request::new(proto::GetRecordRequest {
        record_key: "public-security/household_registration/gone-1".into(),
        min_positions: vec![],
    });
    request.set_timeout(std::time::Duration::from_secs(5));
    let refused = app
        .records_reader("public-security/household_registration/gone-1")
        .get_record(request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("record store"), "{refused:?}");
    assert_eq!(
        resolver_errors().await,
        2.0,
        "the store's failure is counted"
    );

    redis.restart().await;
    app.stop().await;
}

/// Lists `person`'s accesses through the citizen portal until `enough` says the list has
/// what the test waits for (each listing is audited and indexed too).
pub(crate) async fn accesses_until(
    app: &TestApp,
    person: &str,
    enough: impl Fn(&[proto::PersonAccess]) -> bool,
) -> Vec<proto::PersonAccess> {
    listed_until(&mut app.resolver_as(PORTAL, Some(person)), person, enough).await
}

/// Lists `person`'s accesses with `portal` (the citizen portal's client, for that
/// person) until `enough` says the list has what the test waits for.
pub(crate) async fn listed_until(
    portal: &mut Resolver,
    person: &str,
    enough: impl Fn(&[proto::PersonAccess]) -> bool,
) -> Vec<proto::PersonAccess> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = portal
            .list_data_accesses(proto::ListDataAccessesRequest {
                person_id: person.into(),
                purpose: "self-view".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .accesses;
        if enough(&seen) {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the accesses indexed for the person never became what the test expects: {seen:?}");
}

/// At least `n` accesses besides the portal's own listings.
fn at_least(n: usize) -> impl Fn(&[proto::PersonAccess]) -> bool {
    move |seen| seen.iter().filter(|a| a.method != LISTING).count() >= n
}

#[tokio::test]
async fn the_citizen_sees_every_lookup_of_their_data_allowed_or_denied() {
    let app = spawn_app().await;
    let after = everything_about_alice(&app).await;
    let person = alice();
    profile(
        &mut app.resolver_as(WINDOW, None),
        &person,
        "property-transfer",
        &after,
    )
    .await
    .unwrap();
    check_flat(&app, &after).await.unwrap();
    let denied = profile(
        &mut app.resolver_as("housing/archive", None),
        &person,
        "property-transfer",
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let accesses = accesses_until(&app, &person, at_least(3)).await;
    let summary: Vec<(String, &str, &str, Vec<String>, i32)> = accesses
        .iter()
        .filter(|a| a.method != LISTING)
        .map(|a| {
            (
                format!("{}/{}", a.requester_agency, a.requester_service),
                a.method.as_str(),
                a.case_id.as_str(),
                a.sections.clone(),
                a.decision,
            )
        })
        .collect();
    let housing = Agency::Housing as i32;
    let (allowed, refused) = (
        proto::AccessDecision::Allowed as i32,
        proto::AccessDecision::Denied as i32,
    );
    // Newest first.
    assert_eq!(
        summary,
        vec![
            (
                format!("{housing}/archive"),
                "GetPersonProfile",
                "",
                vec![],
                refused
            ),
            (
                format!("{housing}/transfer-window"),
                "CheckPropertyTransfer",
                "CASE-1",
                vec![
                    "property".into(),
                    "household".into(),
                    "provident-fund".into()
                ],
                allowed,
            ),
            (
                format!("{housing}/transfer-window"),
                "GetPersonProfile",
                "",
                vec![
                    "identity".into(),
                    "household".into(),
                    "provident-fund".into(),
                    "property".into()
                ],
                allowed,
            ),
        ]
    );
    let others = accesses.iter().filter(|a| a.method != LISTING);
    assert!(
        others
            .clone()
            .all(|a| a.purpose == "property-transfer" && a.at.is_some())
    );
    assert!(accesses.iter().all(|a| !a.chain_id.is_empty()));

    // The buyer was a party to the check: it is in her list too, and her own look at
    // the list is recorded as well.
    let bea = bea();
    let hers = accesses_until(&app, &bea, at_least(1)).await;
    assert_eq!(hers.last().unwrap().method, "CheckPropertyTransfer");
    let hers = accesses_until(&app, &bea, |seen| seen.iter().any(|a| a.method == LISTING)).await;
    let listing = hers.iter().find(|a| a.method == LISTING).unwrap();
    assert_eq!(
        (listing.requester_agency, listing.requester_service.as_str()),
        (Agency::PublicSecurity as i32, "citizen-portal")
    );
    assert_eq!(listing.purpose, "self-view");

    // Nobody but the citizen reads the list.
    let refused = app
        .resolver_as(WINDOW, None)
        .list_data_accesses(proto::ListDataAccessesRequest {
            person_id: person,
            purpose: "property-transfer".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("citizen's own view"),
        "{}",
        refused.message()
    );
    app.stop().await;
}

/// The unauthorised desk of the flood tests: it has no grant at all.
const ARCHIVE: &str = "housing/archive";
/// How many refused lookups the flood makes.
const FLOOD: usize = 1010;

/// `n` lookups of `person` by `requester` under a purpose it has no grant for, 16 at a
/// time: the answers' status codes.
async fn refused_lookups(app: &TestApp, requester: &str, person: &str, n: usize) -> Vec<Code> {
    use futures::StreamExt as _;
    let client = app.resolver_as(requester, None);
    futures::stream::iter(0..n)
        .map(|_| {
            let mut client = client.clone();
            async move {
                match profile(&mut client, person, "property-transfer", &[]).await {
                    Ok(_) => Code::Ok,
                    Err(status) => status.code(),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// One page of `person`'s list through the citizen portal.
async fn list_page(
    portal: &mut Resolver,
    person: &str,
    limit: u32,
    page_token: &str,
) -> Result<proto::ListDataAccessesResponse, tonic::Status> {
    portal
        .list_data_accesses(proto::ListDataAccessesRequest {
            person_id: person.into(),
            purpose: "self-view".into(),
            limit,
            page_token: page_token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Every page of `person`'s list, `limit` at a time: the entries, in order. Every page
/// but the last says more follow; the last says the list is whole.
async fn walk(app: &TestApp, person: &str, limit: u32) -> Vec<proto::PersonAccess> {
    let mut portal = app.resolver_as(PORTAL, Some(person));
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let page = list_page(&mut portal, person, limit, &token).await.unwrap();
        assert!(page.accesses.len() <= limit as usize);
        all.extend(page.accesses);
        if page.next_page_token.is_empty() {
            assert!(!page.truncated, "the last page holds the rest");
            return all;
        }
        assert!(page.truncated, "a page with more after it says so");
        token = page.next_page_token;
    }
}

/// Where an entry is in the trail: unique to it.
fn place(a: &proto::PersonAccess) -> (String, u64) {
    (a.chain_id.clone(), a.sequence)
}

/// A flood of refused lookups by a desk without a grant does not push the window's real
/// check and case opening out of the citizen's view: the refusals are one entry, counted;
/// the pages walk the whole list once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_does_not_hide_the_real_accesses() {
    let mut settings = test_settings();
    // High enough for the flood: this test is about the list, not the rate.
    settings.lookup_rate_per_requester = 50_000;
    settings.lookup_burst = 50_000;
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;
    let after = everything_about_alice(&app).await;
    let person = alice();
    check_flat(&app, &after).await.unwrap();
    let opened = cases_as(&app, WINDOW)
        .open_case(sale_between("sale-1", UNIT, vec![alice()], vec![bea()]))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();

    let codes = refused_lookups(&app, ARCHIVE, &person, FLOOD).await;
    assert!(
        codes.iter().all(|c| *c == Code::PermissionDenied),
        "{codes:?}"
    );

    // One writer's chain, indexed in order: once a listing made after the flood is in the
    // list, so is every refusal before it.
    let seen = accesses_until(&app, &person, |seen| {
        seen.iter().any(|a| a.method == LISTING)
    })
    .await;
    assert!(
        seen.iter()
            .any(|a| a.method == "CheckPropertyTransfer" && a.case_id == "CASE-1"),
        "the window's check is listed"
    );
    assert!(
        seen.iter()
            .any(|a| a.method == "OpenCase" && a.case_id == opened.case_id),
        "the case opening is listed"
    );
    let archive: Vec<&proto::PersonAccess> = seen
        .iter()
        .filter(|a| a.requester_service == "archive")
        .collect();
    assert_eq!(archive.len(), 1, "the refusals are one entry: {archive:?}");
    let flood = archive[0];
    assert_eq!(
        (
            flood.method.as_str(),
            flood.decision,
            flood.count,
            flood.requester_agency
        ),
        (
            "GetPersonProfile",
            proto::AccessDecision::Denied as i32,
            FLOOD as u64,
            Agency::Housing as i32
        )
    );
    assert!(flood.reason.contains("no grant"), "{}", flood.reason);
    let (first, last) = (flood.at.unwrap(), flood.last_at.unwrap());
    assert!((first.seconds, first.nanos) < (last.seconds, last.nanos));
    assert!(
        seen.iter().all(|a| a.count >= 1),
        "a single access counts one"
    );

    // Walked three at a time, the pages hold every entry once, in the list's order: the
    // entries already there when the walk started (listings made meanwhile are newer).
    let whole = list_page(&mut app.resolver_as(PORTAL, Some(&person)), &person, 0, "")
        .await
        .unwrap();
    assert!(whole.next_page_token.is_empty() && !whole.truncated);
    assert!(whole.kept_since.is_some());
    let walked = walk(&app, &person, 3).await;
    let mut places: Vec<(String, u64)> = walked.iter().map(place).collect();
    places.sort();
    places.dedup();
    assert_eq!(places.len(), walked.len(), "no entry twice");
    let not_listings = |list: &[proto::PersonAccess]| -> Vec<proto::PersonAccess> {
        list.iter()
            .filter(|a| a.method != LISTING)
            .cloned()
            .collect()
    };
    assert_eq!(not_listings(&walked), not_listings(&whole.accesses));
    let listed_before = whole.accesses.iter().filter(|a| a.method == LISTING);
    for listing in listed_before {
        assert!(walked.contains(listing), "{listing:?}");
    }
    app.stop().await;
}

/// A page token is the service's own: anything else, or one of another person's list, is
/// refused naming `page_token`.
#[tokio::test]
async fn a_page_token_that_is_not_one_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let (person, other) = (alice(), bea());
    for i in 0..3 {
        profile(
            &mut app.resolver_as(ARCHIVE, None),
            &person,
            &format!("purpose-{i}"),
            &[],
        )
        .await
        .unwrap_err();
    }
    accesses_until(&app, &person, |seen| seen.len() >= 3).await;
    let mut portal = app.resolver_as(PORTAL, Some(&person));
    let first = list_page(&mut portal, &person, 1, "").await.unwrap();
    assert!(first.truncated);
    let token = first.next_page_token;
    assert!(!token.is_empty());
    list_page(&mut portal, &person, 1, &token).await.unwrap();

    let mut others = app.resolver_as(PORTAL, Some(&other));
    let not_hers = list_page(&mut others, &other, 1, &token).await.unwrap_err();
    let garbage = list_page(&mut portal, &person, 1, "page-2")
        .await
        .unwrap_err();
    let mut cut = token.clone();
    cut.truncate(token.len() - 2);
    let cut = list_page(&mut portal, &person, 1, &cut).await.unwrap_err();
    for refused in [not_hers, garbage, cut] {
        let fields: Vec<String> = violations(&refused).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["page_token"], "{refused:?}");
    }
    app.stop().await;
}

/// A refused lookup takes from its requester's lookup rate like an answered one: a
/// flood of refusals is cut off with `RESOURCE_EXHAUSTED`, and only what was refused for
/// the policy is in the citizen's list (a call over the rate read nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_lookups_use_up_the_requesters_rate() {
    const BURST: u32 = 5;
    let mut settings = test_settings();
    settings.lookup_rate_per_requester = 1;
    settings.lookup_burst = BURST;
    let app = spawn_app_with(settings, govlink::app::Role::Dev).await;
    let person = alice();
    let started = std::time::Instant::now();
    let codes = refused_lookups(&app, ARCHIVE, &person, 60).await;
    let elapsed = started.elapsed();
    let denied = codes
        .iter()
        .filter(|c| **c == Code::PermissionDenied)
        .count();
    let limited = codes
        .iter()
        .filter(|c| **c == Code::ResourceExhausted)
        .count();
    assert_eq!(denied + limited, codes.len(), "{codes:?}");
    // At most the burst, and one more per second the flood lasted, were let through.
    let refills = elapsed.as_secs() as usize + 1;
    assert!(
        (BURST as usize..=BURST as usize + refills).contains(&denied),
        "{denied} refused for the policy in {elapsed:?}"
    );
    assert!(limited > 0);

    // Each refusal was written to the trail before its answer left, so all are indexed
    // in time; the portal's own listings are held to the rate too (its own bucket).
    let mut portal = app.resolver_as(PORTAL, Some(&person));
    let mut archive = Vec::new();
    for _ in 0..100 {
        match list_page(&mut portal, &person, 0, "").await {
            Ok(page) => {
                archive = page
                    .accesses
                    .into_iter()
                    .filter(|a| a.requester_service == "archive")
                    .collect();
                if archive.first().is_some_and(|a| a.count == denied as u64) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(s) if s.code() == Code::ResourceExhausted => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    assert_eq!(archive.len(), 1, "{archive:?}");
    assert_eq!(
        archive[0].count, denied as u64,
        "only the refusals for the policy"
    );
    app.stop().await;
}
