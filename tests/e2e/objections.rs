//! Objections against shared records (数据异议) on the real broker and Redis: a wrong
//! household record blocks a sale, the citizen objects, the record is disputed wherever
//! it is used, the police correct it and the sale's check passes, read-your-writes; an
//! objection the owning agency rejects closes with its reason; bad input is refused
//! naming the field.

use govlink::domain::ResidentId;
use govlink::identity::{AsRequester, Requester};
use govlink::proto::{self, StepKind, StepState};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::*;

type Objections =
    proto::objections_client::ObjectionsClient<InterceptedService<Channel, AsRequester>>;

/// An `Objections` client of `app`, as `requester`, for `citizen` if given.
fn objections_as(app: &TestApp, requester: &str, citizen: Option<&str>) -> Objections {
    let citizen = citizen.map(|c| ResidentId::parse(c).unwrap());
    proto::objections_client::ObjectionsClient::with_interceptor(
        app.channel.clone(),
        AsRequester::new(&Requester::parse(requester).unwrap(), citizen.as_ref()),
    )
}

/// The seller's household as the police recorded it: still registered at the flat
/// (wrong: the seller moved out).
async fn wrong_household(app: &TestApp, seller: &str) -> proto::PublishAck {
    publish_household(app, "h-1", 1, seller, proto::HouseholdStatus::Registered).await
}

/// The sale's other records, all in order: the title the seller's, the contract filed.
async fn sale_records(app: &TestApp, seller: &str, buyer: &str) -> Vec<proto::Position> {
    let acks = publish_title_and_filed_contract(app, seller, buyer).await;
    acks.iter().map(position).collect()
}

async fn check(
    app: &TestApp,
    seller: &str,
    buyer: &str,
    positions: &[proto::Position],
) -> proto::CheckPropertyTransferResponse {
    app.resolver_as("housing/transfer-window", None)
        .check_property_transfer(proto::CheckPropertyTransferRequest {
            unit_number: UNIT.into(),
            seller_ids: vec![seller.into()],
            buyer_ids: vec![buyer.into()],
            purpose: "property-transfer".into(),
            min_positions: positions.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn objection(
    request_id: &str,
    ack: &proto::PublishAck,
    person: &str,
) -> proto::FileObjectionRequest {
    proto::FileObjectionRequest {
        request_id: request_id.into(),
        record_key: ack.record_key.clone(),
        version: 1,
        disputed_fields: vec!["status".into(), "property_unit_number".into()],
        note: "我已于2024年迁出 (moved out in 2024)".into(),
        person_id: person.into(),
        min_positions: vec![position(ack)],
    }
}

#[tokio::test]
async fn a_wrong_household_is_objected_to_corrected_by_the_police_and_the_sale_passes() {
    let app = spawn_app().await;
    let (seller, buyer) = (alice(), bea());
    let wrong = wrong_household(&app, &seller).await;
    let mut positions = sale_records(&app, &seller, &buyer).await;
    positions.push(position(&wrong));

    // The wrong record blocks the sale.
    let blocked = check(&app, &seller, &buyer, &positions).await;
    assert!(!blocked.eligible);
    let codes: Vec<&str> = blocked.blockers.iter().map(|b| b.code.as_str()).collect();
    assert_eq!(codes, ["SELLER_HOUSEHOLD_AT_UNIT"], "{blocked:?}");
    assert!(blocked.blockers[0].objection_id.is_empty());

    // The seller objects through the citizen portal.
    let mut portal = objections_as(&app, "public-security/citizen-portal", Some(&seller));
    let filed = portal
        .file_objection(objection("obj-1", &wrong, &seller))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(filed.kind(), proto::CaseKind::DataObjection);
    let step = &filed.steps[0];
    assert_eq!(
        (step.kind(), step.agency(), step.state()),
        (
            StepKind::ObjectionResolved,
            proto::Agency::PublicSecurity,
            StepState::Open
        )
    );
    assert_eq!(step.working_days, 5);
    assert!(step.due_on.is_some());
    // Filing again with the same request id finds the same objection.
    let again = portal
        .file_objection(objection("obj-1", &wrong, &seller))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(again.case_id, filed.case_id);

    // Disputed wherever it is used, as soon as the objection is filed.
    let disputed = check(&app, &seller, &buyer, &positions).await;
    assert!(!disputed.eligible);
    assert_eq!(disputed.blockers.len(), 1, "{disputed:?}");
    let blocker = &disputed.blockers[0];
    assert_eq!(blocker.objection_id, filed.case_id);
    assert_eq!(
        blocker.record.as_ref().unwrap().record_key,
        wrong.record_key
    );
    let profile = app
        .resolver_as("public-security/citizen-portal", Some(&seller))
        .get_person_profile(proto::GetPersonProfileRequest {
            person_id: seller.clone(),
            purpose: "self-view".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let info = profile.household.unwrap().info.unwrap();
    assert_eq!(
        info.disputes,
        [proto::RecordDispute {
            record_key: wrong.record_key.clone(),
            version: 1,
            objection_id: filed.case_id.clone(),
        }]
    );

    // The police receive the task and correct the record.
    let task = next_task(&mut tasks_as(&app, "public-security/records"))
        .await
        .expect("the objection is the police's task");
    assert_eq!(task.case_id, filed.case_id);
    assert_eq!(task.step_kind(), StepKind::ObjectionResolved);
    let corrected =
        publish_household(&app, "h-1", 2, &seller, proto::HouseholdStatus::MovedOut).await;
    positions.push(position(&corrected));

    // Read-your-writes: the check waits for the correction and passes.
    let passed = check(&app, &seller, &buyer, &positions).await;
    assert!(passed.eligible, "{passed:?}");
    assert!(passed.blockers.is_empty(), "{passed:?}");

    // The citizen sees the outcome in ListCases: done by the corrected version.
    let mut citizen_cases = cases_as_citizen(&app, &seller);
    let done = wait_listed(&mut citizen_cases, &filed.case_id).await;
    assert_eq!(done.state(), proto::CaseState::Completed);
    assert!(matches!(&done.steps[0].completed_by,
        Some(proto::step::CompletedBy::Record(p))
            if p.record_key == corrected.record_key && p.version == 2));
    // And the filing is in the audit trail, for the citizen it was made for.
    audited(&app, |a| {
        a.method == "FileObjection"
            && a.requester_service == "citizen-portal"
            && a.on_behalf_of == seller
    })
    .await;
    app.stop().await;
}

type Cases = proto::cases_client::CasesClient<InterceptedService<Channel, AsRequester>>;

fn cases_as_citizen(app: &TestApp, citizen: &str) -> Cases {
    let citizen = ResidentId::parse(citizen).unwrap();
    proto::cases_client::CasesClient::with_interceptor(
        app.channel.clone(),
        AsRequester::new(
            &Requester::parse("public-security/citizen-portal").unwrap(),
            Some(&citizen),
        ),
    )
}

/// The citizen's case `case_id` as ListCases shows it once it is closed.
async fn wait_listed(cases: &mut Cases, case_id: &str) -> proto::Case {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let listed = cases
            .list_cases(proto::ListCasesRequest {
                kind: proto::CaseKind::DataObjection as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(case) = listed.cases.into_iter().find(|c| c.case_id == case_id)
            && matches!(
                case.state(),
                proto::CaseState::Completed | proto::CaseState::Cancelled
            )
        {
            return case;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the objection never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rejected_objection_closes_with_its_reason_and_bad_input_names_the_field() {
    let app = spawn_app().await;
    let (seller, buyer) = (alice(), bea());
    let wrong = wrong_household(&app, &seller).await;
    let mut positions = sale_records(&app, &seller, &buyer).await;
    positions.push(position(&wrong));

    let mut window = objections_as(&app, "housing/transfer-window", None);
    let refusals = [
        ("record_key", {
            let mut r = objection("bad-1", &wrong, &seller);
            r.record_key = "public-security/household_registration/nobody".into();
            r
        }),
        ("version", {
            let mut r = objection("bad-2", &wrong, &seller);
            r.version = 7;
            r
        }),
        ("disputed_fields", {
            let mut r = objection("bad-3", &wrong, &seller);
            r.disputed_fields.clear();
            r
        }),
        ("note", {
            let mut r = objection("bad-4", &wrong, &seller);
            r.note = "x".repeat(501);
            r
        }),
        ("person_id", {
            let mut r = objection("bad-5", &wrong, &seller);
            r.person_id = buyer.clone();
            r
        }),
    ];
    for (field, request) in refusals {
        let refused = window.file_objection(request).await.unwrap_err();
        assert_eq!(violations(&refused)[0].0, field, "{refused:?}");
    }
    // A citizen portal objects only for its own citizen.
    let mut stranger = objections_as(&app, "public-security/citizen-portal", Some(&buyer));
    let denied = stranger
        .file_objection(objection("other", &wrong, &seller))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    let filed = window
        .file_objection(objection("obj-2", &wrong, &seller))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let task = filed.steps[0].task_id.clone();
    let reason = "户籍登记无误 (the registration is correct)";
    let rejected = tasks_as(&app, "public-security/records")
        .reject(proto::RejectTaskRequest {
            task_id: task,
            reason: reason.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejected.state(), StepState::Rejected);
    let mut citizen_cases = cases_as_citizen(&app, &seller);
    let closed = wait_listed(&mut citizen_cases, &filed.case_id).await;
    assert_eq!(closed.state(), proto::CaseState::Completed);
    assert_eq!(closed.steps[0].rejection, reason);
    // The rejection is in the audit trail as a use of the citizen's data.
    audited(&app, |a| {
        a.method == "Tasks.Reject" && a.case_id == filed.case_id && a.person_ids.contains(&seller)
    })
    .await;
    // The dispute ended with it (once the engine indexed the closing, which follows
    // the commit ListCases shows): the block is the record's own again.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let after = check(&app, &seller, &buyer, &positions).await;
        assert_eq!(after.blockers.len(), 1, "{after:?}");
        if after.blockers[0].objection_id.is_empty() {
            assert_eq!(after.blockers[0].code, "SELLER_HOUSEHOLD_AT_UNIT");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still disputed: {after:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}
