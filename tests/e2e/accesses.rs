//! The audit trail as the people in it see it: every lookup, allowed or denied, is an
//! entry before its answer leaves, and the citizen lists who looked at their data.

use govlink::proto::{self, Agency, GetPersonProfileRequest};
use tonic::Code;

use crate::helpers::*;
use crate::lookups::{
    PORTAL, WINDOW, check_flat, everything_about_alice, profile, publish_household_at,
};

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
        publish_household_at(&app, &alice(), 1, proto::HouseholdStatus::Registered)
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

/// Lists `person`'s accesses through the citizen portal until `enough` says the list has
/// what the test waits for (each listing is audited and indexed too).
pub(crate) async fn accesses_until(
    app: &TestApp,
    person: &str,
    enough: impl Fn(&[proto::PersonAccess]) -> bool,
) -> Vec<proto::PersonAccess> {
    let mut portal = app.resolver_as(PORTAL, Some(person));
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = portal
            .list_data_accesses(proto::ListDataAccessesRequest {
                person_id: person.into(),
                purpose: "self-view".into(),
                limit: 0,
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
            limit: 0,
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

/// A flood of refused lookups by a desk without a grant does not push the window's real
/// check and case opening out of the citizen's view.
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
    app.stop().await;
}
