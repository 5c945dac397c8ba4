//! The case engine on the real broker and Redis: commands on the command topic, records
//! from the adapters, the case's view and outbox in Redis, events and tasks on their
//! topics.

use std::time::Duration;

use govlink::cases::calendar::WorkCalendar;
use govlink::cases::engine::{Engine, EngineConfig};
use govlink::cases::store::CaseStore;
use govlink::kafka::Publisher;
use govlink::proto::{
    self, Agency, CaseCommand, CaseEvent, CaseParams, CaseState, PropertyTransferParams, StepKind,
    StepState, case_command, case_event, case_params,
};
use govlink::resolver::store::{RedisStore, Store};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// An engine on the app's topics and stores, stopped when dropped.
struct RunningEngine {
    stop: CancellationToken,
    cases: CaseStore,
    publisher: Publisher,
    app_topics: govlink::kafka::Topics,
}

impl Drop for RunningEngine {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RunningEngine {
    async fn start(app: &TestApp) -> RunningEngine {
        let s = &app.settings;
        let url = redis_url();
        let cases = CaseStore::connect(&url, &s.redis_prefix).await.unwrap();
        let records = Store::Redis(RedisStore::connect(&url, &s.redis_prefix).await.unwrap());
        let publisher = Publisher::new(&kafka(), Duration::from_secs(30), 1000).unwrap();
        let engine = Engine::new(
            EngineConfig {
                bootstrap: kafka(),
                group_id: format!("{}-cases", s.consumer_group),
                topics: app.topics.clone(),
            },
            cases.clone(),
            records,
            publisher.clone(),
            WorkCalendar::embedded().unwrap(),
        );
        let stop = CancellationToken::new();
        tokio::spawn(engine.run(stop.child_token()));
        RunningEngine {
            stop,
            cases,
            publisher,
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

/// Every message of `topic`, all partitions, decoded: read for two seconds each (end
/// offsets are no guide on Tansu, which under-reports them after a multi-record batch).
async fn read_all<M: prost::Message + Default>(topic: &str, partitions: i32) -> Vec<M> {
    let mut all = Vec::new();
    for p in 0..partitions {
        for m in read_partition(topic, p, 0, usize::MAX, Duration::from_secs(2)).await {
            all.push(M::decode(rdkafka::Message::payload(&m).unwrap()).unwrap());
        }
    }
    all
}

#[tokio::test]
async fn a_flat_sale_runs_to_completion_through_records_and_an_agency_task() {
    let app = spawn_app().await;
    let (seller, buyer) = (alice(), bea());
    let mut signed = contract(&[&seller], &[&buyer]);
    signed.status = proto::SaleContractStatus::Filed as i32;
    app.police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("h-1", 1),
            record: Some(household(&seller, proto::HouseholdStatus::Registered)),
        })
        .await
        .unwrap();
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
    let ack = app
        .police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("h-1", 2),
            record: Some(household(&seller, proto::HouseholdStatus::MovedOut)),
        })
        .await
        .unwrap()
        .into_inner();
    wait_materialized(&app, &ack).await;
    let changed = || case_command::Body::RecordChanged(proto::RecordChangedCommand::default());
    engine.send("changed-1", changed()).await;
    engine
        .case_when("household moved out", |c| {
            step(c, StepKind::SellerHouseholdMovedOut).state() == StepState::Done
        })
        .await;

    // The fund's system completes its task; the title's step opens.
    let complete = case_command::Body::CompleteTask(proto::CompleteTaskCommand {
        task_id: loan_task.clone(),
        agency: Agency::ProvidentFund as i32,
        outcome: "settled".into(),
        note: String::new(),
    });
    engine.send("complete-1", complete.clone()).await;
    // The same completion delivered twice changes nothing.
    engine.send("complete-1", complete).await;
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
    engine.send("changed-2", changed()).await;
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
    drop(engine);
    app.stop().await;
}

/// Waits until the resolver materialized the record of `ack`.
async fn wait_materialized(app: &TestApp, ack: &proto::PublishAck) {
    app.resolver()
        .get_record(proto::GetRecordRequest {
            record_key: ack.record_key.clone(),
            min_positions: vec![position(ack)],
        })
        .await
        .unwrap();
}
