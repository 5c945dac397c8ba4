//! Only an agency's record system — an integration the policy lists, `<agency>/records` in
//! the example — publishes through its agency's adapter, reads its agency's raw records and
//! carries out its agency's tasks. Any other service of the agency (a window, the citizen
//! portal) is refused over mutual TLS, and raw reads reach the citizen's access list like
//! lookups.

use govlink::app::Role;
use govlink::identity::AsRequester;
use govlink::identity::Requester;
use govlink::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use govlink::proto::{self, AccessDecision, HouseholdStatus, StepKind, SubjectKind};
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::*;

const PORTAL: &str = "public-security/citizen-portal";
const RECORDS: &str = "public-security/records";

fn tasks(
    channel: Channel,
    requester: &str,
) -> proto::tasks_client::TasksClient<
    tonic::service::interceptor::InterceptedService<Channel, AsRequester>,
> {
    proto::tasks_client::TasksClient::with_interceptor(
        channel,
        AsRequester::new(&Requester::parse(requester).unwrap(), None),
    )
}

fn moved_out(person: &str) -> proto::PublishHouseholdRegistrationRequest {
    proto::PublishHouseholdRegistrationRequest {
        meta: meta(&unique("household"), 1),
        record: Some(household(person, HouseholdStatus::MovedOut)),
    }
}

fn subject_of(person: &str, positions: Vec<proto::Position>) -> proto::ListSubjectRecordsRequest {
    proto::ListSubjectRecordsRequest {
        subject: Some(proto::Subject {
            kind: SubjectKind::Person as i32,
            id: person.into(),
        }),
        min_positions: positions,
    }
}

#[tokio::test]
async fn only_an_agencys_record_system_publishes_reads_raw_records_and_carries_out_tasks() {
    let certs = fresh_certs();
    let app = spawn_app_with(secured_settings(&certs), Role::Dev).await;
    let seller = alice();
    let portal = app.channel_as(PORTAL).await;
    let records = app.channel_as(RECORDS).await;

    // Publishing: the portal is public security's, but not its record system.
    let refused = PublicSecurityAdapterClient::new(portal.clone())
        .publish_household_registration(moved_out(&seller))
        .await
        .expect_err("the portal publishes nothing");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("not an integration"),
        "{refused:?}"
    );
    let attempt = audited(&app, |a| {
        a.purpose == "publish" && a.requester_service == "citizen-portal"
    })
    .await;
    assert_eq!(attempt.decision, AccessDecision::Denied as i32);
    let ack = PublicSecurityAdapterClient::new(records.clone())
        .publish_household_registration(moved_out(&seller))
        .await
        .expect("the record system publishes")
        .into_inner();

    // Raw reads: refused to the portal, answered to the record system and audited.
    let refused = resolver_as(portal.clone(), PORTAL, Some(&seller))
        .list_subject_records(subject_of(&seller, vec![position(&ack)]))
        .await
        .expect_err("the portal reads no raw records");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let listed = resolver_as(records.clone(), RECORDS, None)
        .list_subject_records(subject_of(&seller, vec![position(&ack)]))
        .await
        .expect("the record system reads its agency's records")
        .into_inner();
    assert_eq!(listed.records.len(), 1, "{listed:?}");
    let read = audited(&app, |a| {
        a.method == "ListSubjectRecords" && a.decision == AccessDecision::Allowed as i32
    })
    .await;
    assert_eq!(read.person_ids, vec![seller.clone()]);
    assert_eq!(read.requester_service, "records");
    let mut citizen = resolver_as(portal.clone(), PORTAL, Some(&seller));
    let seen = crate::accesses::listed_until(&mut citizen, &seller, |seen| {
        seen.iter().any(|a| a.method == "ListSubjectRecords")
    })
    .await;
    assert!(
        seen.iter().any(|a| a.method == "ListSubjectRecords"
            && a.requester_service == "records"
            && a.decision == AccessDecision::Allowed as i32),
        "the raw read is in the citizen's list: {seen:?}"
    );

    // Tasks: the household step of a sale is public security's task, the record system's.
    let window = app.channel_as("housing/transfer-window").await;
    let case = cases_on(window, "housing/transfer-window")
        .open_case(sale_between(
            &unique("sale"),
            UNIT,
            vec![bea()],
            vec![chen()],
        ))
        .await
        .expect("the window opens the sale")
        .into_inner()
        .case
        .unwrap();
    let household = case
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::SellerHouseholdMovedOut)
        .expect("a household step")
        .clone();
    let complete = || proto::CompleteTaskRequest {
        task_id: household.task_id.clone(),
        outcome: "moved out".into(),
        note: String::new(),
    };
    let refused = tasks(portal.clone(), PORTAL)
        .complete(complete())
        .await
        .expect_err("the portal carries out no task");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = tasks(portal, PORTAL)
        .stream(proto::StreamTasksRequest::default())
        .await
        .expect_err("the portal receives no tasks");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    tasks(records, RECORDS)
        .complete(complete())
        .await
        .expect("the record system completes its agency's task");
    app.stop().await;
}
