//! A case never hands out a step whose precondition is not met, on the real broker and
//! Redis: sales opened while the police's record is on its way, a precondition taken
//! back, openings that wait for the caller's publishes, the plan and the check deciding
//! by one predicate, and the status codes of the task and case calls.

use std::time::Duration;

use govlink::proto::{self, Agency, CaseState, StepKind, StepState};
use tonic::Code;

use crate::helpers::*;

/// A unit number of its own for sale `i` (same district as [`UNIT`]).
fn unit_of(i: usize) -> String {
    format!("110105001002GB00017F0003{:04}", 1000 + i)
}

/// A seller of their own for sale `i`.
fn seller_of(i: usize) -> String {
    person(&format!("11010519800312{:03}", 100 + i))
}

/// Publishes what a sale of `unit` by `seller` to [`bea`] needs besides the household:
/// the seller's title, the filed contract and a settled loan. Returns their positions.
async fn publish_sale_records(
    app: &TestApp,
    i: usize,
    unit: &str,
    seller: &str,
) -> Vec<proto::Position> {
    let mut acks = Vec::new();
    let ack = app
        .housing()
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta(&format!("t-{i}"), 1),
            record: Some(proto::PropertyTitle {
                unit_number: unit.into(),
                ..title(&[(seller, 10_000)])
            }),
        })
        .await
        .unwrap()
        .into_inner();
    acks.push(ack);
    let ack = app
        .housing()
        .publish_sale_contract(proto::PublishSaleContractRequest {
            meta: meta(&format!("c-{i}"), 1),
            record: Some(proto::SaleContract {
                unit_number: unit.into(),
                status: proto::SaleContractStatus::Filed as i32,
                ..contract(&[seller], &[&bea()])
            }),
        })
        .await
        .unwrap()
        .into_inner();
    acks.push(ack);
    let ack = app
        .fund()
        .publish_loan(proto::PublishLoanRequest {
            meta: meta(&format!("l-{i}"), 1),
            record: Some(proto::ProvidentFundLoan {
                unit_number: unit.into(),
                ..loan(seller, proto::LoanStatus::Settled, 0)
            }),
        })
        .await
        .unwrap()
        .into_inner();
    acks.push(ack);
    // Materialized before the sale is opened, so only the household races the opening.
    for ack in &acks {
        wait_materialized(app, ack).await;
    }
    acks.iter().map(position).collect()
}

/// Publishes version `version` of sale `i`'s household registration: `seller` at `unit`.
async fn publish_household(
    app: &TestApp,
    i: usize,
    version: u64,
    seller: &str,
    unit: &str,
    status: proto::HouseholdStatus,
) -> proto::PublishAck {
    app.police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta(&format!("h-{i}"), version),
            record: Some(proto::HouseholdRegistration {
                property_unit_number: unit.into(),
                ..household(seller, status)
            }),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Sale `i` opened (as `request_id`) once everything but the title is in place: the
/// seller's records and their household moved out, all materialized first. Its title's
/// step is housing's task.
async fn open_sale_ready_for_the_title(app: &TestApp, i: usize, request_id: &str) -> proto::Case {
    let (unit, seller) = (unit_of(i), seller_of(i));
    let mut positions = publish_sale_records(app, i, &unit, &seller).await;
    let moved =
        publish_household(app, i, 1, &seller, &unit, proto::HouseholdStatus::MovedOut).await;
    positions.push(position(&moved));
    let mut request = sale_between(request_id, &unit, vec![seller], vec![bea()]);
    request.min_positions = positions;
    cases_as(app, "housing/transfer-window")
        .open_case(request)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
}

fn step(case: &proto::Case, kind: StepKind) -> &proto::Step {
    case.steps
        .iter()
        .find(|s| s.kind() == kind)
        .expect("planned")
}

/// The case `case_id` once `done` holds (60 s at most).
async fn case_when(
    app: &TestApp,
    case_id: &str,
    what: &str,
    done: impl Fn(&proto::Case) -> bool,
) -> proto::Case {
    let mut window = cases_as(app, "housing/transfer-window");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let case = window
            .get_case(proto::GetCaseRequest {
                case_id: case_id.into(),
            })
            .await
            .unwrap()
            .into_inner();
        if done(&case) {
            return case;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "case {case_id} never got to: {what}: {case:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Thirty sales, each opened around the moment public security publishes that the seller
/// is registered at the flat (the publish 0 to 580 ms after the opening is sent).
/// Whichever arrives first, no case may hand the title to housing: the household step is
/// done only once a record proves the seller moved out.
#[tokio::test]
async fn sales_opened_while_the_household_record_arrives_never_hand_out_the_title() {
    const SALES: usize = 30;
    let app = spawn_app().await;
    for i in 0..SALES {
        publish_sale_records(&app, i, &unit_of(i), &seller_of(i)).await;
    }

    // Each opening races its household publish.
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..SALES {
        let (channel, unit, seller) = (app.channel.clone(), unit_of(i), seller_of(i));
        let police = app.police();
        racing.spawn(async move {
            let mut window = cases_on(channel, "housing/transfer-window");
            let opening = window.open_case(sale_between(
                &format!("race-{i}"),
                &unit,
                vec![seller.clone()],
                vec![bea()],
            ));
            let mut police = police;
            let publish =
                police.publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                    meta: meta(&format!("h-{i}"), 1),
                    record: Some(proto::HouseholdRegistration {
                        property_unit_number: unit.clone(),
                        ..household(&seller, proto::HouseholdStatus::Registered)
                    }),
                });
            // From together to well after the opening: both orders, and the moment
            // between the opening's plan and the record's arrival.
            let publish = async move {
                tokio::time::sleep(Duration::from_millis(20 * i as u64)).await;
                publish.await
            };
            let (opened, published) = tokio::join!(opening, publish);
            let case = opened.unwrap().into_inner().case.unwrap();
            (case.case_id, published.unwrap().into_inner())
        });
    }
    let mut cases = Vec::new();
    while let Some(done) = racing.join_next().await {
        let (case_id, ack) = done.unwrap();
        wait_materialized(&app, &ack).await;
        cases.push(case_id);
    }

    // Every case has seen the record (its household step is open: the police's task)
    // and none has its title step anywhere but pending.
    let mut wrong = 0;
    for case_id in &cases {
        let case = case_when(&app, case_id, "household step open", |c| {
            step(c, StepKind::SellerHouseholdMovedOut).state() == StepState::Open
        })
        .await;
        let title = step(&case, StepKind::TitleRegistered);
        if title.state() != StepState::Pending || case.state() == CaseState::Completed {
            wrong += 1;
        }
    }
    let handed_out =
        read_all::<proto::Task>(&app.topics.tasks(Agency::Housing), app.settings.partitions)
            .await
            .into_iter()
            .filter(|t| t.step_kind() == StepKind::TitleRegistered && !t.withdrawn)
            .count();
    println!("race: {wrong} of {SALES} cases wrong, {handed_out} title tasks handed to housing");
    assert_eq!((wrong, handed_out), (0, 0));
    app.stop().await;
}

/// A precondition taken back pulls every later step back: the seller registered at the
/// flat again sends the title's step back to pending, its task withdrawn on housing's
/// stream and refused if completed; moving out again hands out a new task.
#[tokio::test]
async fn a_household_registered_again_pulls_the_title_back_and_withdraws_its_task() {
    let app = spawn_app().await;
    let (unit, seller) = (unit_of(0), seller_of(0));
    let case = open_sale_ready_for_the_title(&app, 0, "pull-back").await;
    let first = step(&case, StepKind::TitleRegistered).task_id.clone();
    assert_eq!(
        first,
        format!("{}/title_registered.1", case.case_id),
        "{case:?}"
    );
    let mut registry = tasks_as(&app, "housing/records");
    let sent = next_task(&mut registry)
        .await
        .expect("housing receives the title's task");
    assert_eq!(
        (sent.task_id.as_str(), sent.withdrawn),
        (first.as_str(), false)
    );

    publish_household(
        &app,
        0,
        2,
        &seller,
        &unit,
        proto::HouseholdStatus::Registered,
    )
    .await;
    let case = case_when(&app, &case.case_id, "title pulled back", |c| {
        step(c, StepKind::TitleRegistered).state() == StepState::Pending
    })
    .await;
    assert_eq!(
        step(&case, StepKind::SellerHouseholdMovedOut).state(),
        StepState::Open
    );
    // The withdrawal reaches housing's stream (and its topic), and the task is void.
    let withdrawal = next_task(&mut registry)
        .await
        .expect("the withdrawal is streamed");
    assert_eq!(
        (withdrawal.task_id.as_str(), withdrawal.withdrawn),
        (first.as_str(), true)
    );
    assert!(
        withdrawal
            .withdrawn_reason
            .contains("seller_household_moved_out"),
        "{withdrawal:?}"
    );
    let on_topic =
        read_all::<proto::Task>(&app.topics.tasks(Agency::Housing), app.settings.partitions).await;
    assert!(
        on_topic.iter().any(|t| t.task_id == first && t.withdrawn),
        "{on_topic:?}"
    );
    registry
        .ack(proto::AckTaskRequest {
            task_id: first.clone(),
        })
        .await
        .unwrap();
    let refused = registry
        .complete(proto::CompleteTaskRequest {
            task_id: first.clone(),
            outcome: "registered".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("withdrawn"), "{refused:?}");

    // Moved out again: a new task, which completes the case.
    publish_household(&app, 0, 3, &seller, &unit, proto::HouseholdStatus::MovedOut).await;
    let case = case_when(&app, &case.case_id, "title open again", |c| {
        step(c, StepKind::TitleRegistered).state() == StepState::Open
    })
    .await;
    let second = step(&case, StepKind::TitleRegistered).task_id.clone();
    assert_eq!(second, format!("{}/title_registered.2", case.case_id));
    let done = registry
        .complete(proto::CompleteTaskRequest {
            task_id: second,
            outcome: "registered".into(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), StepState::Done);
    case_when(&app, &case.case_id, "completed", |c| {
        c.state() == CaseState::Completed
    })
    .await;
    app.stop().await;
}

/// No record is no proof: a sale of a flat of which the police and the fund have no
/// record leaves their steps as their tasks, and the title waits.
#[tokio::test]
async fn without_household_and_loan_records_their_steps_are_the_agencies_tasks() {
    let app = spawn_app().await;
    let mut window = cases_as(&app, "housing/transfer-window");
    let case = window
        .open_case(sale_between(
            "no-records",
            &unit_of(1),
            vec![seller_of(1)],
            vec![bea()],
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    for kind in [StepKind::SellerHouseholdMovedOut, StepKind::LoanSettled] {
        let s = step(&case, kind);
        assert_eq!(s.state(), StepState::Open, "{kind:?}: {s:?}");
        assert!(!s.task_id.is_empty());
    }
    assert_eq!(
        step(&case, StepKind::TitleRegistered).state(),
        StepState::Pending
    );
    app.stop().await;
}

/// `OpenCase` plans on the records up to the caller's positions: the household moved out
/// just before the opening proves its step at once; a position that cannot exist is
/// refused naming it, one not reached in time is `DEADLINE_EXCEEDED` naming the partition.
#[tokio::test]
async fn an_opening_waits_for_the_callers_publishes_before_planning() {
    let app = spawn_app().await;
    let (unit, seller) = (unit_of(2), seller_of(2));
    let mut positions = publish_sale_records(&app, 2, &unit, &seller).await;
    let moved =
        publish_household(&app, 2, 1, &seller, &unit, proto::HouseholdStatus::MovedOut).await;
    positions.push(position(&moved));
    let mut window = cases_as(&app, "housing/transfer-window");
    // Typed in lowercase: the case keeps the one spelling, and plans on the same records.
    let lowercase = unit.to_ascii_lowercase();
    let mut request = sale_between(
        "after-publish",
        &lowercase,
        vec![seller.clone()],
        vec![bea()],
    );
    request.min_positions = positions.clone();
    let case = window
        .open_case(request)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let Some(proto::case_params::Kind::PropertyTransfer(params)) =
        case.params.as_ref().and_then(|p| p.kind.as_ref())
    else {
        panic!("{case:?}")
    };
    assert_eq!(params.unit_number, unit);
    let household_step = step(&case, StepKind::SellerHouseholdMovedOut);
    assert_eq!(household_step.state(), StepState::Done, "{case:?}");
    assert!(matches!(&household_step.completed_by,
        Some(proto::step::CompletedBy::Record(p)) if p.record_key == moved.record_key));

    let mut impossible = sale_between("no-partition", &unit, vec![seller.clone()], vec![bea()]);
    impossible.min_positions = vec![proto::Position {
        partition: 999,
        ..positions[0].clone()
    }];
    let refused = window.open_case(impossible).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violations(&refused)[0].0, "min_positions[0].partition");

    let mut ahead = tonic::Request::new(sale_between("too-far", &unit, vec![seller], vec![bea()]));
    ahead.get_mut().min_positions = vec![proto::Position {
        offset: 1_000_000_000,
        ..positions[0].clone()
    }];
    ahead.set_timeout(Duration::from_secs(1));
    let late = window.open_case(ahead).await.unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
    let named = format!("{}/{}", positions[0].topic, positions[0].partition);
    assert!(late.message().contains(&named), "{late:?}");
    app.stop().await;
}

/// The check and the case decide "is the seller registered at the flat" by one
/// predicate: a registration with the flat's address but no unit number blocks the check
/// and keeps the case's household step open.
#[tokio::test]
async fn the_check_and_the_case_agree_on_a_household_with_only_an_address() {
    let app = spawn_app().await;
    let (unit, seller) = (unit_of(3), seller_of(3));
    let mut positions = publish_sale_records(&app, 3, &unit, &seller).await;
    // The title's address, spelled with other spacing and case.
    let ack = app
        .police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("h-3", 1),
            record: Some(proto::HouseholdRegistration {
                property_unit_number: String::new(),
                address: "room 201,building  3".into(),
                ..household(&seller, proto::HouseholdStatus::Registered)
            }),
        })
        .await
        .unwrap()
        .into_inner();
    positions.push(position(&ack));
    let check = app
        .resolver_as("housing/transfer-window", None)
        .check_property_transfer(proto::CheckPropertyTransferRequest {
            unit_number: unit.clone(),
            seller_ids: vec![seller.clone()],
            buyer_ids: vec![bea()],
            purpose: "property-transfer".into(),
            min_positions: positions.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<&str> = check.blockers.iter().map(|b| b.code.as_str()).collect();
    assert_eq!(codes, ["SELLER_HOUSEHOLD_AT_UNIT"], "{check:?}");

    let mut request = sale_between("address-only", &unit, vec![seller], vec![bea()]);
    request.min_positions = positions;
    let case = cases_as(&app, "housing/transfer-window")
        .open_case(request)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        step(&case, StepKind::SellerHouseholdMovedOut).state(),
        StepState::Open,
        "{case:?}"
    );
    assert_eq!(
        step(&case, StepKind::TitleRegistered).state(),
        StepState::Pending
    );
    app.stop().await;
}

/// Task and case calls answer with the code that says what happened: a different outcome
/// for a done task and a cancellation of a closed case are `FAILED_PRECONDITION`; a
/// repeat with the same outcome is OK and changes nothing; a malformed task id is
/// `INVALID_ARGUMENT` naming `task_id`.
#[tokio::test]
async fn task_and_case_calls_answer_with_precise_codes() {
    let app = spawn_app().await;
    let (unit, seller) = (unit_of(4), seller_of(4));
    let mut window = cases_as(&app, "housing/transfer-window");
    let case = window
        .open_case(sale_between(
            "codes",
            &unit,
            vec![seller.clone()],
            vec![bea()],
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let loan_task = step(&case, StepKind::LoanSettled).task_id.clone();
    let mut fund = tasks_as(&app, "provident-fund/records");
    let complete = |outcome: &str| proto::CompleteTaskRequest {
        task_id: loan_task.clone(),
        outcome: outcome.into(),
        note: String::new(),
    };
    fund.complete(complete("no loan")).await.unwrap();
    let done = case_when(&app, &case.case_id, "loan done", |c| {
        step(c, StepKind::LoanSettled).state() == StepState::Done
    })
    .await;
    let again = fund
        .complete(complete("no loan"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.state(), StepState::Done);
    let differently = fund.complete(complete("settled")).await.unwrap_err();
    assert_eq!(
        differently.code(),
        Code::FailedPrecondition,
        "{differently:?}"
    );
    let unchanged = case_when(&app, &case.case_id, "as it was", |_| true).await;
    assert_eq!(unchanged.sequence, done.sequence, "a repeat adds no event");

    let long = "x".repeat(5_000);
    for bad in [
        "bad id!/x",
        long.as_str(),
        "",
        "case-1",
        "case-1/loan_settled.0",
    ] {
        let request = |task_id: &str| proto::CompleteTaskRequest {
            task_id: task_id.into(),
            outcome: "done".into(),
            note: String::new(),
        };
        let refused = fund.complete(request(bad)).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{bad:.20}: {refused:?}"
        );
        assert_eq!(violations(&refused)[0].0, "task_id");
        let refused = fund
            .ack(proto::AckTaskRequest {
                task_id: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{bad:.20}: {refused:?}"
        );
    }

    let cancel = |case_id: &str| proto::CancelCaseRequest {
        case_id: case_id.into(),
        reason: "the buyer withdrew".into(),
    };
    let cancelled = window
        .cancel_case(cancel(&case.case_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state(), CaseState::Cancelled);
    let twice = window.cancel_case(cancel(&case.case_id)).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
    // A task of the cancelled case is refused at once, not after the deadline.
    let household_task = step(&case, StepKind::SellerHouseholdMovedOut)
        .task_id
        .clone();
    let refused = tasks_as(&app, "public-security/records")
        .complete(proto::CompleteTaskRequest {
            task_id: household_task,
            outcome: "moved out".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // A completed case cannot be cancelled either.
    let unit = unit_of(5);
    let case = open_sale_ready_for_the_title(&app, 5, "completed").await;
    let title = app
        .housing()
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta("t-5", 2),
            record: Some(proto::PropertyTitle {
                unit_number: unit.clone(),
                ..title(&[(&bea(), 10_000)])
            }),
        })
        .await
        .unwrap()
        .into_inner();
    wait_materialized(&app, &title).await;
    case_when(&app, &case.case_id, "completed", |c| {
        c.state() == CaseState::Completed
    })
    .await;
    let refused = window.cancel_case(cancel(&case.case_id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    app.stop().await;
}
