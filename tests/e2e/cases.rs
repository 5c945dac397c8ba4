//! The case engine on the real broker and Redis: commands on the command topic, records
//! from the adapters, the case's view and outbox in Redis, events and tasks on their
//! topics.

use std::time::Duration;

use govlink::cases::store::CaseStore;
use govlink::kafka::Brokers;
use govlink::kafka::Publisher;
use govlink::proto::{
    self, Agency, CaseCommand, CaseEvent, CaseParams, CaseState, PropertyTransferParams, StepKind,
    StepState, case_command, case_event, case_params,
};
use govlink::redis_link::RedisLink;
use prost::Message as _;

use crate::helpers::*;

/// The app's case engine, seen from outside: its command topic and its case store.
struct RunningEngine {
    cases: CaseStore,
    publisher: Publisher,
    app_topics: govlink::kafka::Topics,
}

impl RunningEngine {
    async fn start(app: &TestApp) -> RunningEngine {
        RunningEngine {
            cases: CaseStore::connect(&RedisLink::new(redis_url()), &app.settings.redis_prefix)
                .await
                .unwrap(),
            publisher: Publisher::new(&Brokers::plaintext(kafka()), Duration::from_secs(30), 1000)
                .unwrap(),
            app_topics: app.topics.clone(),
        }
    }

    /// Puts a command on the command topic, keyed by its case.
    async fn send(&self, command_id: &str, body: case_command::Body) {
        let command = CaseCommand {
            command_id: command_id.into(),
            case_id: CASE.into(),
            at: Some(std::time::SystemTime::now().into()),
            body: Some(body),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        self.publisher
            .publish(
                &self.app_topics.case_commands(),
                CASE.as_bytes(),
                &command.encode_to_vec(),
                &[],
                deadline,
            )
            .await
            .unwrap();
    }

    /// The case once `done` says its view is what the test waits for.
    async fn case_when(&self, what: &str, done: impl Fn(&proto::Case) -> bool) -> proto::Case {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let stored = self.cases.load(CASE).await.unwrap();
            if let Some(case) = stored.case.filter(|c| done(c) && stored.outbox.is_empty()) {
                return case;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the case never got to: {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const CASE: &str = "case-sale-1";

fn step(case: &proto::Case, kind: StepKind) -> &proto::Step {
    case.steps
        .iter()
        .find(|s| s.kind() == kind)
        .expect("planned")
}

#[tokio::test]
async fn a_flat_sale_runs_to_completion_through_records_and_an_agency_task() {
    let app = spawn_app().await;
    let (seller, buyer) = (alice(), bea());
    let mut signed = contract(&[&seller], &[&buyer]);
    signed.status = proto::SaleContractStatus::Filed as i32;
    publish_household(&app, "h-1", 1, &seller, proto::HouseholdStatus::Registered).await;
    app.fund()
        .publish_loan(proto::PublishLoanRequest {
            meta: meta("l-1", 1),
            record: Some(loan(&seller, proto::LoanStatus::Repaying, 1_000)),
        })
        .await
        .unwrap();
    app.housing()
        .publish_sale_contract(proto::PublishSaleContractRequest {
            meta: meta("c-1", 1),
            record: Some(signed),
        })
        .await
        .unwrap();
    let ack = app
        .housing()
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta("t-1", 1),
            record: Some(title(&[(&seller, 10_000)])),
        })
        .await
        .unwrap()
        .into_inner();
    wait_materialized(&app, &ack).await;

    let engine = RunningEngine::start(&app).await;
    engine
        .send(
            "open-1",
            case_command::Body::Open(proto::OpenCaseCommand {
                kind: 0,
                params: Some(CaseParams {
                    kind: Some(case_params::Kind::PropertyTransfer(
                        PropertyTransferParams {
                            unit_number: UNIT.into(),
                            contract_number: "WQ-1".into(),
                            seller_ids: vec![seller.clone()],
                            buyer_ids: vec![buyer.clone()],
                        },
                    )),
                }),
                opened_by: "housing/transfer-window".into(),
                purpose: "property-transfer".into(),
                request_id: "req-1".into(),
            }),
        )
        .await;
    let case = engine
        .case_when("opened", |c| {
            c.steps.iter().any(|s| s.state() == StepState::Open)
        })
        .await;
    // The filed contract proves its step at opening; the household and the loan are
    // tasks of their agencies; the title waits for all three.
    let contract_step = step(&case, StepKind::SaleContractFiled);
    assert_eq!(contract_step.state(), StepState::Done);
    assert!(matches!(&contract_step.completed_by,
        Some(proto::step::CompletedBy::Record(p)) if p.record_key == "housing/sale_contract/c-1"));
    assert_eq!(
        step(&case, StepKind::SellerHouseholdMovedOut).state(),
        StepState::Open
    );
    assert_eq!(
        step(&case, StepKind::TitleRegistered).state(),
        StepState::Pending
    );
    let loan_task = step(&case, StepKind::LoanSettled).task_id.clone();
    assert!(!loan_task.is_empty());
    let partitions = app.settings.partitions;
    let tasks: Vec<proto::Task> =
        read_all(&app.topics.tasks(Agency::ProvidentFund), partitions).await;
    assert!(
        tasks
            .iter()
            .any(|t| t.task_id == loan_task && t.case_id == CASE && t.due_on.is_some()),
        "the fund received its task: {tasks:?}"
    );

    // Public security moves the household out; the record proves the step.
    let ack = publish_household(&app, "h-1", 2, &seller, proto::HouseholdStatus::MovedOut).await;
    // Nobody tells the case: the materializer's change reaches it.
    wait_materialized(&app, &ack).await;
    engine
        .case_when("household moved out", |c| {
            step(c, StepKind::SellerHouseholdMovedOut).state() == StepState::Done
        })
        .await;

    // The fund's system gets its task from its stream; a reconnect before the ack gets
    // it again, one after the ack does not.
    let mut fund = tasks_as(&app, "provident-fund/records");
    let first = next_task(&mut fund).await;
    assert_eq!(
        first.as_ref().map(|t| t.task_id.as_str()),
        Some(loan_task.as_str())
    );
    let again = next_task(&mut fund).await;
    assert_eq!(again, first, "unacknowledged, so sent again");
    fund.ack(proto::AckTaskRequest {
        task_id: loan_task.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        next_task(&mut fund).await,
        None,
        "acknowledged: not sent again"
    );

    // Another agency cannot complete it; the fund's system can, and the title's step
    // opens.
    let complete = |task_id: &str| proto::CompleteTaskRequest {
        task_id: task_id.into(),
        outcome: "settled".into(),
        note: "repaid in full".into(),
    };
    let refused = tasks_as(&app, "housing/records")
        .complete(complete(&loan_task))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let done = fund
        .complete(complete(&loan_task))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), StepState::Done);
    assert!(matches!(&done.completed_by,
        Some(proto::step::CompletedBy::Task(t)) if t.outcome == "settled"));
    // The same completion delivered twice (as a command, again) changes nothing.
    let duplicate = case_command::Body::CompleteTask(proto::CompleteTaskCommand {
        task_id: loan_task.clone(),
        agency: Agency::ProvidentFund as i32,
        outcome: "settled".into(),
        note: String::new(),
    });
    engine.send("complete-again", duplicate).await;
    engine
        .case_when("title step open", |c| {
            step(c, StepKind::TitleRegistered).state() == StepState::Open
        })
        .await;

    // Housing registers the title to the buyer: the case completes.
    let ack = app
        .housing()
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta("t-1", 2),
            record: Some(title(&[(&buyer, 10_000)])),
        })
        .await
        .unwrap()
        .into_inner();
    wait_materialized(&app, &ack).await;
    let done = engine
        .case_when("completed", |c| c.state() == CaseState::Completed)
        .await;
    assert!(done.closed_at.is_some());

    // The topic holds the case's whole history, in order and without gaps, and folding
    // it gives the view.
    let events: Vec<CaseEvent> = read_all(&app.topics.cases(), partitions).await;
    let events: Vec<CaseEvent> = events.into_iter().filter(|e| e.case_id == CASE).collect();
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=done.sequence).collect::<Vec<_>>());
    let completions = events
        .iter()
        .filter(|e| matches!(e.body, Some(case_event::Body::StepCompleted(_))))
        .count();
    assert_eq!(completions, 4, "each step completed exactly once");
    let folded = events
        .iter()
        .fold(None, |c, e| Some(govlink::cases::case::apply(c, e)));
    assert_eq!(folded.as_ref(), Some(&done));
    app.stop().await;
}

fn open_sale(request_id: &str, seller: &str, buyer: &str) -> proto::OpenCaseRequest {
    sale_between(request_id, UNIT, vec![seller.into()], vec![buyer.into()])
}

#[tokio::test]
async fn open_case_answers_with_the_planned_case_once_and_only_to_its_purpose() {
    let app = spawn_app().await;
    let (seller, buyer) = (alice(), bea());
    let mut window = cases_as(&app, "housing/transfer-window");
    let opened = window
        .open_case(open_sale("req-7", &seller, &buyer))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(opened.kind(), proto::CaseKind::PropertyTransfer);
    assert_eq!(opened.opened_by, "housing/transfer-window");
    // No records yet: no record is no proof, so the household, the loan and the contract
    // are their agencies' tasks.
    assert_eq!(
        step(&opened, StepKind::LoanSettled).state(),
        StepState::Open
    );
    assert_eq!(
        step(&opened, StepKind::SaleContractFiled).state(),
        StepState::Open
    );

    // The same request id finds the same case, unchanged.
    let again = window
        .open_case(open_sale("req-7", &seller, &buyer))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        (again.case_id.as_str(), again.sequence),
        (opened.case_id.as_str(), opened.sequence)
    );

    // A requester without the purpose neither opens nor reads it.
    let mut fund = cases_as(&app, "provident-fund/loan-desk");
    let denied = fund
        .get_case(proto::GetCaseRequest {
            case_id: opened.case_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let denied = fund
        .open_case(open_sale("req-8", &seller, &buyer))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // Every action is in the audit trail, and so in the seller's own list of accesses:
    // the opening, and the fund's refused read (its refused opening too).
    let seen = crate::accesses::accesses_until(&app, &seller, |a| {
        a.iter()
            .any(|x| x.method == "OpenCase" && x.case_id == opened.case_id)
            && a.iter()
                .any(|x| x.method == "GetCase" && x.decision() == proto::AccessDecision::Denied)
    })
    .await;
    let opening = seen
        .iter()
        .find(|x| x.method == "OpenCase" && x.case_id == opened.case_id)
        .unwrap();
    assert_eq!(
        (
            opening.case_id.as_str(),
            opening.requester_service.as_str(),
            opening.decision()
        ),
        (
            opened.case_id.as_str(),
            "transfer-window",
            proto::AccessDecision::Allowed
        )
    );

    // Every malformed field is named.
    let mut bad = open_sale("", &seller, &seller);
    if let Some(case_params::Kind::PropertyTransfer(p)) =
        bad.params.as_mut().and_then(|p| p.kind.as_mut())
    {
        p.unit_number = "not-a-unit".into();
    }
    let refused = window.open_case(bad).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let fields: Vec<String> = violations(&refused).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "request_id",
            "params.property_transfer.unit_number",
            "params.property_transfer.buyer_ids"
        ]
    );

    // Cancelling answers with the cancelled case; what was not done is dropped.
    let cancelled = window
        .cancel_case(proto::CancelCaseRequest {
            case_id: opened.case_id.clone(),
            reason: "the buyer withdrew".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state(), CaseState::Cancelled);
    assert_eq!(
        step(&cancelled, StepKind::SaleContractFiled).state(),
        StepState::Dropped
    );
    assert_eq!(
        step(&cancelled, StepKind::LoanSettled).state(),
        StepState::Dropped
    );
    // The tasks that were out are withdrawn from their agencies.
    let withdrawn = next_task(&mut tasks_as(&app, "provident-fund/records"))
        .await
        .expect("the fund's stream sends the withdrawal");
    assert_eq!(
        (withdrawn.task_id.as_str(), withdrawn.withdrawn),
        (step(&opened, StepKind::LoanSettled).task_id.as_str(), true)
    );
    assert!(withdrawn.withdrawn_reason.contains("the buyer withdrew"));
    let read = window
        .get_case(proto::GetCaseRequest {
            case_id: opened.case_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, cancelled);

    // The whole history, from the start; the stream ends with the closed case.
    let mut watch = window
        .watch_case(proto::WatchCaseRequest {
            case_id: read.case_id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut sequences = Vec::new();
    let mut last = None;
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the watch ends after the cancellation")
        .unwrap()
    {
        sequences.push(event.sequence);
        last = event.body;
    }
    assert_eq!(sequences, (1..=read.sequence).collect::<Vec<_>>());
    assert!(matches!(last, Some(case_event::Body::Cancelled(_))));

    // Listed for the window, by state and by the citizen named; not for the fund.
    let listed = window
        .list_cases(proto::ListCasesRequest {
            state: CaseState::Cancelled as i32,
            person_id: buyer.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases, std::slice::from_ref(&read));
    assert!(!listed.truncated);
    let open_only = window
        .list_cases(proto::ListCasesRequest {
            state: CaseState::Open as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(open_only.cases.is_empty());
    let theirs = fund
        .list_cases(proto::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.cases.is_empty(), "no grant for the purpose");
    app.stop().await;
}

/// A household registration of `person` in `region`, registered or moved out to
/// Shanghai.
fn household_in(
    person: &str,
    region: &str,
    status: proto::HouseholdStatus,
) -> proto::HouseholdRegistration {
    proto::HouseholdRegistration {
        region_code: region.into(),
        property_unit_number: String::new(),
        ..household(person, status)
    }
}

/// Deadlines with an injected clock: a deadline check carries its time, so a check "40
/// days later" escalates the open steps now, once, without sleeping.
#[tokio::test]
async fn a_step_past_its_working_day_deadline_escalates_once() {
    let app = spawn_app().await;
    let engine = RunningEngine::start(&app).await;
    let mut window = cases_as(&app, "housing/transfer-window");
    let case = window
        .open_case(open_sale("req-late", &alice(), &bea()))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let contract = step(&case, StepKind::SaleContractFiled).clone();
    assert_eq!(contract.state(), StepState::Open);
    assert!(contract.due_on.is_some());
    let later = std::time::SystemTime::now() + Duration::from_secs(40 * 86_400);
    for id in ["check-1", "check-2"] {
        let command = CaseCommand {
            command_id: id.into(),
            case_id: case.case_id.clone(),
            at: Some(later.into()),
            body: Some(case_command::Body::CheckDeadlines(
                proto::CheckDeadlinesCommand {},
            )),
        };
        engine
            .publisher
            .publish(
                &app.topics.case_commands(),
                case.case_id.as_bytes(),
                &command.encode_to_vec(),
                &[],
                tokio::time::Instant::now() + Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
    // A cancellation after both checks: once it is applied, so are they.
    let cancelled = window
        .cancel_case(proto::CancelCaseRequest {
            case_id: case.case_id.clone(),
            reason: "the buyer withdrew".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(step(&cancelled, StepKind::SaleContractFiled).overdue);
    let events: Vec<CaseEvent> = read_all(&app.topics.cases(), app.settings.partitions).await;
    let escalations = events
        .iter()
        .filter(|e| e.case_id == case.case_id)
        .filter(|e| matches!(&e.body, Some(case_event::Body::StepOverdue(o)) if o.step_id == contract.step_id))
        .count();
    assert_eq!(escalations, 1, "escalated once");
    app.stop().await;
}

/// A cross-city social-security transfer and a household move run to completion: records
/// prove the steps records can prove, the target region's task completes the rest.
#[tokio::test]
async fn a_social_security_transfer_and_a_household_move_finish_online() {
    const SHANGHAI: &str = "310104";
    let app = spawn_app().await;
    let (mover, worker) = (chen(), alice());
    let mut social_window = cases_as(&app, "social-security/transfer-window");
    let transfer = social_window
        .open_case(proto::OpenCaseRequest {
            request_id: "ss-1".into(),
            purpose: "social-security-transfer".into(),
            params: Some(CaseParams {
                kind: Some(case_params::Kind::SocialSecurityTransfer(
                    proto::SocialSecurityTransferParams {
                        person_id: worker.clone(),
                        insurance_type: proto::InsuranceType::Pension as i32,
                        from_region_code: "110105".into(),
                        to_region_code: SHANGHAI.into(),
                    },
                )),
            }),
            min_positions: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let mut move_window = cases_as(&app, "public-security/move-window");
    let moving = move_window
        .open_case(household_move("mv-1", &mover))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();

    // Beijing issues the certificate, Shanghai enrolls the worker; public security moves
    // the household out and registers it in Shanghai.
    app.social()
        .publish_transfer_out_certificate(proto::PublishTransferOutCertificateRequest {
            meta: meta("z-1", 1),
            record: Some(certificate(&worker)),
        })
        .await
        .unwrap();
    app.social()
        .publish_enrollment(proto::PublishEnrollmentRequest {
            meta: meta("e-sh", 1),
            record: Some(proto::Enrollment {
                region_code: SHANGHAI.into(),
                start_date: date(2026, 11, 1),
                ..enrollment(&worker)
            }),
        })
        .await
        .unwrap();
    for (version, region, status) in [
        (1, "110105", proto::HouseholdStatus::MovedOut),
        (2, SHANGHAI, proto::HouseholdStatus::Registered),
    ] {
        app.police()
            .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                meta: meta("m-1", version),
                record: Some(household_in(&mover, region, status)),
            })
            .await
            .unwrap();
    }
    let until_done = |kind: StepKind| {
        move |c: &proto::Case| {
            c.steps
                .iter()
                .any(|s| s.kind() == kind && s.state() == StepState::Open)
                || c.state() == CaseState::Completed
        }
    };
    let watcher = RunningEngine::start(&app).await;
    // Carrying the contributions over is Shanghai's to confirm, through its task.
    let open = wait_case(
        &watcher,
        &transfer.case_id,
        until_done(StepKind::ContributionsCarriedOver),
    )
    .await;
    let task = step(&open, StepKind::ContributionsCarriedOver)
        .task_id
        .clone();
    let done = tasks_as(&app, "social-security/records")
        .complete(proto::CompleteTaskRequest {
            task_id: task,
            outcome: "carried-over".into(),
            note: "120 months".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state(), StepState::Done);
    let transfer = wait_case(&watcher, &transfer.case_id, |c| {
        c.state() == CaseState::Completed
    })
    .await;
    assert!(
        matches!(&step(&transfer, StepKind::TransferAccepted).completed_by,
        Some(proto::step::CompletedBy::Record(p)) if p.record_key == "social-security/enrollment/e-sh")
    );
    let moving = wait_case(&watcher, &moving.case_id, |c| {
        c.state() == CaseState::Completed
    })
    .await;
    assert!(moving.duration_ms > 0 && moving.closed_at.is_some());
    app.stop().await;
}

/// The case `case_id` once `done` holds (60 s at most).
async fn wait_case(
    engine: &RunningEngine,
    case_id: &str,
    done: impl Fn(&proto::Case) -> bool,
) -> proto::Case {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(case) = engine
            .cases
            .load(case_id)
            .await
            .unwrap()
            .case
            .filter(|c| done(c))
        {
            return case;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "case {case_id} never got there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A calendar file that is wrong stops the case engine from starting, naming the file,
/// the line and the entry.
#[tokio::test]
async fn the_case_engine_refuses_to_start_with_a_broken_calendar() {
    let broken = std::env::temp_dir().join(format!("{}.toml", unique("calendar")));
    std::fs::write(
        &broken,
        "[[year]]\nyear = 2026\nholidays = [\"2026-01-01\"]\nworkdays = [\"2026-02-13\"]\n",
    )
    .unwrap();
    let mut child = govlink_command(&test_settings(), "cases")
        .env("GOVLINK_CALENDAR", &broken)
        .env("GOVLINK_GRPC_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if tokio::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the case engine started with a broken calendar");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&broken.display().to_string()), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(stderr.contains("2026-02-13 is a Friday"), "{stderr}");
    std::fs::remove_file(broken).unwrap();
}

/// Version `version` of `saver`'s fund account `record_id` in `region`, materialized.
async fn publish_account(
    app: &TestApp,
    saver: &str,
    record_id: &str,
    version: u64,
    region: &str,
    status: proto::AccountStatus,
) {
    let record = proto::ProvidentFundAccount {
        region_code: region.into(),
        status: status as i32,
        account_number: format!("GJJ-{record_id}"),
        ..account(saver)
    };
    let ack = app
        .fund()
        .publish_account(proto::PublishAccountRequest {
            meta: meta(record_id, version),
            record: Some(record),
        })
        .await
        .unwrap()
        .into_inner();
    wait_materialized(app, &ack).await;
}

/// A provident-fund account moves from Beijing to Shanghai: the fund's system rejects
/// its first task (the case says what is needed and from whom), a record then proves the
/// step; a record change takes back what proved a done step, which reopens with a new
/// task; the last task's completion completes the case.
#[tokio::test]
async fn a_fund_transfer_is_rejected_replanned_by_a_record_change_and_completed() {
    const SHANGHAI: &str = "310104";
    let app = spawn_app().await;
    let engine = RunningEngine::start(&app).await;
    let saver = chen();
    publish_account(
        &app,
        &saver,
        "bj",
        1,
        "110105",
        proto::AccountStatus::Active,
    )
    .await;

    let case = cases_as(&app, "provident-fund/transfer-window")
        .open_case(proto::OpenCaseRequest {
            request_id: "pf-1".into(),
            purpose: "provident-fund-transfer".into(),
            params: Some(CaseParams {
                kind: Some(case_params::Kind::ProvidentFundTransfer(
                    proto::ProvidentFundTransferParams {
                        person_id: saver.clone(),
                        from_region_code: "110105".into(),
                        to_region_code: SHANGHAI.into(),
                    },
                )),
            }),
            min_positions: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let id = case.case_id.clone();
    let release = step(&case, StepKind::FundAccountReleased).clone();
    assert_eq!(release.state(), StepState::Open);

    // The fund's system cannot release the account yet: it says why.
    let mut fund_system = tasks_as(&app, "provident-fund/records");
    let rejected = fund_system
        .reject(proto::RejectTaskRequest {
            task_id: release.task_id.clone(),
            reason: "the employer still pays into the Beijing account".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejected.state(), StepState::Rejected);
    let waiting = wait_case(&engine, &id, |c| c.state() == CaseState::NeedsAction).await;
    assert!(
        waiting
            .waiting_for
            .contains("the employer still pays into the Beijing account")
            && waiting.waiting_for.contains("provident-fund"),
        "{}",
        waiting.waiting_for
    );

    // Beijing seals the account: the record proves the step, the rejection is over.
    publish_account(
        &app,
        &saver,
        "bj",
        2,
        "110105",
        proto::AccountStatus::Sealed,
    )
    .await;
    // The next step opens (with a task) before Shanghai's account is there to prove it.
    wait_case(&engine, &id, |c| {
        step(c, StepKind::FundAccountOpenedAtTarget).state() == StepState::Open
    })
    .await;
    publish_account(
        &app,
        &saver,
        "sh",
        1,
        SHANGHAI,
        proto::AccountStatus::Active,
    )
    .await;
    let carried = wait_case(&engine, &id, |c| {
        step(c, StepKind::FundBalanceCarriedOver).state() == StepState::Open
    })
    .await;
    assert_eq!(carried.state(), CaseState::Open);
    assert!(carried.waiting_for.is_empty(), "{}", carried.waiting_for);
    let opened = step(&carried, StepKind::FundAccountOpenedAtTarget).clone();
    assert!(matches!(&opened.completed_by,
        Some(proto::step::CompletedBy::Record(r)) if r.record_key == "provident-fund/account/sh" && r.version == 1));

    // Shanghai's account is closed again (opened in error): the step it proved reopens,
    // with a new task; a new version proves it again.
    publish_account(
        &app,
        &saver,
        "sh",
        2,
        SHANGHAI,
        proto::AccountStatus::Closed,
    )
    .await;
    let reopened = wait_case(&engine, &id, |c| {
        step(c, StepKind::FundAccountOpenedAtTarget).state() == StepState::Open
    })
    .await;
    let reopened_task = &step(&reopened, StepKind::FundAccountOpenedAtTarget).task_id;
    assert!(
        reopened_task.ends_with(".2") && *reopened_task != opened.task_id,
        "{reopened_task} after {}",
        opened.task_id
    );
    // The step after it goes back to pending, its task withdrawn.
    let withdrawn = step(&carried, StepKind::FundBalanceCarriedOver)
        .task_id
        .clone();
    let back = wait_case(&engine, &id, |c| {
        step(c, StepKind::FundBalanceCarriedOver).state() == StepState::Pending
    })
    .await;
    assert!(
        step(&back, StepKind::FundBalanceCarriedOver)
            .task_id
            .is_empty()
    );
    publish_account(
        &app,
        &saver,
        "sh",
        3,
        SHANGHAI,
        proto::AccountStatus::Active,
    )
    .await;
    let proved = wait_case(&engine, &id, |c| {
        step(c, StepKind::FundAccountOpenedAtTarget).state() == StepState::Done
            && step(c, StepKind::FundBalanceCarriedOver).state() == StepState::Open
    })
    .await;

    // The withdrawn task carries nothing over; the new one does: the fund's system
    // completes the last task.
    let refused = fund_system
        .complete(proto::CompleteTaskRequest {
            task_id: withdrawn.clone(),
            outcome: "carried-over".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let last = step(&proved, StepKind::FundBalanceCarriedOver)
        .task_id
        .clone();
    assert!(last.ends_with(".2") && last != withdrawn, "{last}");
    fund_system
        .complete(proto::CompleteTaskRequest {
            task_id: last,
            outcome: "carried-over".into(),
            note: String::new(),
        })
        .await
        .unwrap();
    let done = wait_case(&engine, &id, |c| c.state() == CaseState::Completed).await;

    let history = engine.cases.history(&id, 0).await.unwrap();
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| match e.body.as_ref().unwrap() {
            case_event::Body::Opened(_) => "opened",
            case_event::Body::StepOpened(_) => "step opened",
            case_event::Body::StepRejected(_) => "step rejected",
            case_event::Body::StepCompleted(_) => "step completed",
            case_event::Body::StepReopened(_) => "step reopened",
            case_event::Body::StepPulledBack(_) => "step pulled back",
            case_event::Body::Completed(_) => "completed",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "step opened",
            "step rejected",
            "step completed",
            "step opened",
            "step completed",
            "step opened",
            "step reopened",
            "step pulled back",
            "step completed",
            "step opened",
            "step completed",
            "completed"
        ]
    );
    let folded = history
        .iter()
        .fold(None, |c, e| Some(govlink::cases::case::apply(c, e)));
    assert_eq!(folded.as_ref(), Some(&done));
    app.stop().await;
}

/// The case store lost (its keys deleted) is put back from the case topic: the same
/// views and histories, the open case found again by its subject and its task kept for
/// its agency; the engine then carries it on. A second rebuild finds everything current.
#[tokio::test]
async fn the_case_store_is_rebuilt_from_the_case_topic() {
    const SHANGHAI: &str = "310104";
    let app = spawn_app().await;
    let engine = RunningEngine::start(&app).await;
    let mut window = cases_as(&app, "public-security/move-window");
    let (done_mover, open_mover) = (alice(), chen());
    let mut ids = Vec::new();
    for (i, mover) in [&done_mover, &open_mover].into_iter().enumerate() {
        let case = window
            .open_case(household_move(&format!("rb-{i}"), mover))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        ids.push(case.case_id);
    }
    app.police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("rb-done", 1),
            record: Some(household_in(
                &done_mover,
                SHANGHAI,
                proto::HouseholdStatus::Registered,
            )),
        })
        .await
        .unwrap();
    let completed = wait_case(&engine, &ids[0], |c| c.state() == CaseState::Completed).await;
    let open = engine.cases.load(&ids[1]).await.unwrap().case.unwrap();
    let open_task = step(&open, StepKind::HouseholdMovedOut).task_id.clone();
    let histories = [
        engine.cases.history(&ids[0], 0).await.unwrap(),
        engine.cases.history(&ids[1], 0).await.unwrap(),
    ];
    tasks_as(&app, "public-security/records")
        .ack(proto::AckTaskRequest {
            task_id: open_task.clone(),
        })
        .await
        .unwrap();

    // The case store is lost.
    let mut redis = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}case*", app.settings.redis_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    let tasks_key = format!("{}tasks:public-security", app.settings.redis_prefix);
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .arg(&tasks_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(engine.cases.load(&ids[1]).await.unwrap().case.is_none());

    let report = govlink::tools::rebuild_cases::rebuild(&app.settings, |_| {})
        .await
        .expect("the rebuild runs");
    assert_eq!(
        (report.cases, report.restored, report.current, report.tasks),
        (2, 2, 0, 1),
        "{report:?}"
    );
    assert!(report.broken.is_empty(), "{report:?}");
    assert_eq!(
        engine.cases.load(&ids[0]).await.unwrap().case.as_ref(),
        Some(&completed)
    );
    assert_eq!(
        engine.cases.load(&ids[1]).await.unwrap().case.as_ref(),
        Some(&open)
    );
    for (id, history) in ids.iter().zip(&histories) {
        assert_eq!(&engine.cases.history(id, 0).await.unwrap(), history);
    }
    assert_eq!(engine.cases.open_cases().await.unwrap(), [ids[1].clone()]);
    let pending: Vec<String> = engine
        .cases
        .tasks(Agency::PublicSecurity)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(
        pending,
        [open_task],
        "sent again: acknowledgements are not on the topic"
    );

    // The engine carries the rebuilt case on.
    for (version, region, status) in [
        (1, "110105", proto::HouseholdStatus::MovedOut),
        (2, SHANGHAI, proto::HouseholdStatus::Registered),
    ] {
        app.police()
            .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                meta: meta("rb-open", version),
                record: Some(household_in(&open_mover, region, status)),
            })
            .await
            .unwrap();
    }
    wait_case(&engine, &ids[1], |c| c.state() == CaseState::Completed).await;

    let again = govlink::tools::rebuild_cases::rebuild(&app.settings, |_| {})
        .await
        .unwrap();
    assert_eq!((again.restored, again.current), (0, 2), "{again:?}");
    app.stop().await;
}
