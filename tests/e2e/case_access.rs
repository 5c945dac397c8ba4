//! Cases go through the same policy decision as lookups, over mutual TLS: a self-only
//! grant acts only on cases its citizen is a party to, the grant must include the
//! sections the case's plan reads, and the parameters come back masked as the grant
//! shows them.

use govlink::app::Role;
use govlink::domain::ResidentId;
use govlink::identity::AsRequester;
use govlink::identity::Requester;
use govlink::proto::{self, AccessDecision};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::*;

type Cases = proto::cases_client::CasesClient<InterceptedService<Channel, AsRequester>>;

/// A `Cases` client over `channel` (a certificate's), for `citizen` if given.
fn cases(channel: Channel, requester: &str, citizen: Option<&str>) -> Cases {
    let citizen = citizen.map(|c| ResidentId::parse(c).unwrap());
    proto::cases_client::CasesClient::with_interceptor(
        channel,
        AsRequester::new(&Requester::parse(requester).unwrap(), citizen.as_ref()),
    )
}

#[tokio::test]
async fn a_self_only_grant_acts_only_on_its_citizens_cases_and_parameters_are_masked() {
    let certs = fresh_certs();
    let app = spawn_app_with(secured_settings(&certs), Role::Dev).await;
    let (citizen, stranger, buyer) = (alice(), chen(), bea());
    let portal_channel = app.channel_as("public-security/citizen-portal").await;
    let mut portal = cases(
        portal_channel.clone(),
        "public-security/citizen-portal",
        Some(&citizen),
    );

    // About strangers: refused, and the refusal is in the trail.
    let mut about_others = sale_between(
        "portal-1",
        UNIT,
        vec![stranger.clone()],
        vec![buyer.clone()],
    );
    about_others.purpose = "self-view".into();
    let refused = portal.open_case(about_others).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("self-only"), "{refused:?}");
    // The entry names the citizen the portal acted for, as a lookup's does.
    audited(&app, |a| {
        a.method == "OpenCase"
            && a.decision == AccessDecision::Denied as i32
            && a.requester_service == "citizen-portal"
            && a.on_behalf_of == citizen
    })
    .await;
    // Without naming a citizen at all: refused too.
    let mut anonymous = sale_between("portal-2", UNIT, vec![citizen.clone()], vec![buyer.clone()]);
    anonymous.purpose = "self-view".into();
    let refused = cases(
        portal_channel.clone(),
        "public-security/citizen-portal",
        None,
    )
    .open_case(anonymous)
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // A window's case about the stranger: the portal cannot read or list it.
    let window_channel = app.channel_as("housing/transfer-window").await;
    let mut window = cases(window_channel, "housing/transfer-window", None);
    let strangers = window
        .open_case(sale_between(
            "window-1",
            UNIT,
            vec![stranger.clone()],
            vec![buyer.clone()],
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    // The window's grant masks resident IDs: the parameters come back masked.
    let Some(proto::case_params::Kind::PropertyTransfer(shown)) =
        strangers.params.as_ref().and_then(|p| p.kind.as_ref())
    else {
        panic!("{strangers:?}")
    };
    assert_ne!(shown.seller_ids[0], stranger);
    assert!(shown.seller_ids[0].contains('*'), "{shown:?}");
    let refused = portal
        .get_case(proto::GetCaseRequest {
            case_id: strangers.case_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let listed = portal
        .list_cases(proto::ListCasesRequest {
            person_id: stranger.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.cases.is_empty(), "{listed:?}");

    // The citizen's own sale: opened, and shown unmasked (the portal's grant unmasks).
    let mut own = sale_between("portal-3", UNIT, vec![citizen.clone()], vec![buyer.clone()]);
    own.purpose = "self-view".into();
    let opened = portal
        .open_case(own)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let Some(proto::case_params::Kind::PropertyTransfer(shown)) =
        opened.params.as_ref().and_then(|p| p.kind.as_ref())
    else {
        panic!("{opened:?}")
    };
    assert_eq!(shown.seller_ids, std::slice::from_ref(&citizen));
    let listed = portal
        .list_cases(proto::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed.cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, [opened.case_id.as_str()], "only the citizen's own");
    app.stop().await;
}

/// A grant without a section the case's plan reads does not open the case: the fund's
/// loan desk (loan-approval: no household section) cannot open a sale, whose plan reads
/// the household registrations.
#[tokio::test]
async fn a_grant_without_the_sections_a_plan_reads_cannot_open_the_case() {
    let certs = fresh_certs();
    let app = spawn_app_with(secured_settings(&certs), Role::Dev).await;
    let desk = app.channel_as("provident-fund/loan-desk").await;
    let mut sale = sale_between("desk-1", UNIT, vec![alice()], vec![bea()]);
    sale.purpose = "loan-approval".into();
    let refused = cases(desk, "provident-fund/loan-desk", None)
        .open_case(sale)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("section household"),
        "{refused:?}"
    );
    app.stop().await;
}

/// Case and task calls are charged to the requester's rate, as lookups are: a burst over
/// it is `RESOURCE_EXHAUSTED` with a `RetryInfo`, before anything is read or audited, and
/// counted.
#[tokio::test]
async fn case_and_task_calls_over_the_requester_rate_are_refused_with_retry_info() {
    let mut settings = secured_settings(&fresh_certs());
    settings.lookup_rate_per_requester = 1;
    settings.lookup_burst = 2;
    let app = spawn_app_with(settings, Role::Dev).await;
    let window = app.channel_as("housing/transfer-window").await;
    let calls = (0..5).map(|_| {
        let mut client = cases(window.clone(), "housing/transfer-window", None);
        async move { client.list_cases(proto::ListCasesRequest::default()).await }
    });
    let results = futures::future::join_all(calls).await;
    let answered = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|s| {
            crate::limits::retry_delay(
                s,
                "case call rate limit of requester housing/transfer-window",
            )
        })
        .collect();
    assert!(answered >= 2 && !refused.is_empty(), "{results:?}");
    assert_eq!(answered + refused.len(), 5);
    let (_, text) = http_get(app.admin.expect("admin http"), "/metrics").await;
    assert_eq!(
        metric(
            &text,
            r#"govlink_limited_requests_total{limit="lookup_rate",agency="housing"}"#
        ),
        refused.len() as f64
    );
    app.stop().await;
}

/// One requester may keep at most 16 streams open on a case engine; a stream it closes
/// frees its slot. Another requester is not affected.
#[tokio::test]
async fn a_requester_keeps_at_most_sixteen_streams_open() {
    use govlink::cases::admission::MAX_STREAMS_PER_REQUESTER;
    let app = spawn_app_with(secured_settings(&fresh_certs()), Role::Dev).await;
    let tasks = |channel: Channel, requester: &str| {
        proto::tasks_client::TasksClient::with_interceptor(
            channel,
            AsRequester::new(&Requester::parse(requester).unwrap(), None),
        )
    };
    let system = app.channel_as("provident-fund/records").await;
    let mut open = Vec::new();
    for _ in 0..MAX_STREAMS_PER_REQUESTER {
        let stream = tasks(system.clone(), "provident-fund/records")
            .stream(proto::StreamTasksRequest {})
            .await
            .expect("within the bound");
        open.push(stream.into_inner());
    }
    let refused = tasks(system.clone(), "provident-fund/records")
        .stream(proto::StreamTasksRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("streams open"), "{refused:?}");
    let other = app.channel_as("housing/records").await;
    tasks(other, "housing/records")
        .stream(proto::StreamTasksRequest {})
        .await
        .expect("another requester has slots of its own");

    // Closed by its client: the slot is free once the server notices (within its poll).
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tasks(system.clone(), "provident-fund/records")
            .stream(proto::StreamTasksRequest {})
            .await
        {
            Ok(stream) => {
                open.push(stream.into_inner());
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot was never freed"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    app.stop().await;
}
