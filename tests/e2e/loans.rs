//! Provident-fund loans decided from the shared records, against the real broker and
//! Redis: the eligible buyer and the largest loan with its inputs, each blocker with the
//! agency and record that prove it, bad input by field, a grant that cannot see the
//! balance, and a loan case carried to completion by the fund's approval task.

use std::time::Duration;

use govlink::domain::CivilDate;
use govlink::proto::{self, Agency, CaseParams, CaseState, Position, StepKind, case_params};
use tonic::Code;

use crate::helpers::*;

/// The fund's loan desk (the example policy's `provident-fund/*` loan-approval grant).
const LOAN_DESK: &str = "provident-fund/loan-desk";
/// The fund's record system: receives the fund's tasks.
const FUND_SYSTEM: &str = "provident-fund/records";

/// The month before the current one in China: the latest month a deposit is surely due.
fn last_month() -> proto::YearMonth {
    let now = CivilDate::today_in_china().year_month();
    match now.month() {
        1 => proto::YearMonth {
            year: now.year() - 1,
            month: 12,
        },
        m => proto::YearMonth {
            year: now.year(),
            month: m as i32 - 1,
        },
    }
}

/// `person`'s active account with 123,000 yuan saved and `months` of deposits without a
/// gap up to last month.
fn account_with_run(person: &str, months: u32) -> proto::ProvidentFundAccount {
    proto::ProvidentFundAccount {
        last_deposit_month: Some(last_month()),
        consecutive_deposit_months: months,
        ..account(person)
    }
}

/// Publishes what a loan to `bea` for [`UNIT`] needs, from `alice`'s flat: the title (in
/// alice's name), the filed contract to bea, and bea's account with `months` of deposits
/// (none when `None`). Returns the positions of the acks.
async fn flat_bought_by_bea(app: &TestApp, months: Option<u32>) -> Vec<Position> {
    let buyer = bea();
    let mut acks = publish_title_and_filed_contract(app, &alice(), &buyer).await;
    if let Some(months) = months {
        acks.push(publish_account(app, account_with_run(&buyer, months), 1).await);
    }
    acks.iter().map(position).collect()
}

async fn publish_account(
    app: &TestApp,
    record: proto::ProvidentFundAccount,
    version: u64,
) -> proto::PublishAck {
    app.fund()
        .publish_account(proto::PublishAccountRequest {
            meta: meta("A-1", version),
            record: Some(record),
        })
        .await
        .unwrap()
        .into_inner()
}

/// A request for a 1,000,000-yuan loan to `bea` on [`UNIT`], after `positions`.
fn application(positions: &[Position]) -> proto::CheckProvidentFundLoanRequest {
    proto::CheckProvidentFundLoanRequest {
        person_id: bea(),
        property_unit_number: UNIT.into(),
        amount_fen: 100_000_000,
        purpose: "loan-approval".into(),
        case_id: String::new(),
        min_positions: positions.to_vec(),
    }
}

async fn check_loan(
    app: &TestApp,
    request: proto::CheckProvidentFundLoanRequest,
) -> Result<proto::CheckProvidentFundLoanResponse, tonic::Status> {
    app.resolver_as(LOAN_DESK, None)
        .check_provident_fund_loan(request)
        .await
        .map(tonic::Response::into_inner)
}

fn codes(answer: &proto::CheckProvidentFundLoanResponse) -> Vec<&str> {
    answer.blockers.iter().map(|b| b.code.as_str()).collect()
}

fn record_of(blocker: &proto::Blocker) -> Option<(&str, u64)> {
    blocker
        .record
        .as_ref()
        .map(|r| (r.record_key.as_str(), r.version))
}

#[tokio::test]
async fn an_eligible_buyer_is_told_the_largest_loan_with_its_inputs() {
    let app = spawn_app().await;
    let after = flat_bought_by_bea(&app, Some(24)).await;
    let answer = check_loan(&app, application(&after)).await.unwrap();
    assert!(answer.eligible, "{:?}", answer.blockers);
    assert!(answer.blockers.is_empty());
    assert_eq!(
        (
            answer.consecutive_deposit_months,
            answer.deposit_months_required
        ),
        (24, 6)
    );
    // 123,000 yuan × 15 is 1,845,000 yuan: the 1.2 million cap decides.
    let limit = answer.limit.expect("an active account has a limit");
    assert_eq!(limit.max_loan_fen, 120_000_000);
    assert_eq!(limit.balance_fen, 12_300_000);
    assert_eq!(limit.balance_multiple, 15);
    assert_eq!(limit.cap_fen, 120_000_000);
    assert_eq!(limit.bounded_by, "cap");
    let account = limit.account.unwrap();
    assert_eq!(
        (account.record_key.as_str(), account.version),
        ("provident-fund/account/A-1", 1)
    );
    assert!(answer.checked_on.is_some());

    // A cent over the largest loan is a blocker citing the account.
    let mut over = application(&after);
    over.amount_fen = 120_000_001;
    let answer = check_loan(&app, over).await.unwrap();
    assert_eq!(codes(&answer), ["LOAN_AMOUNT_OVER_LIMIT"]);
    assert_eq!(
        record_of(&answer.blockers[0]),
        Some(("provident-fund/account/A-1", 1))
    );
    app.stop().await;
}

#[tokio::test]
async fn too_few_consecutive_months_of_deposits_block_the_loan_until_the_fund_records_more() {
    let app = spawn_app().await;
    let after = flat_bought_by_bea(&app, Some(5)).await;
    let answer = check_loan(&app, application(&after)).await.unwrap();
    assert!(!answer.eligible);
    assert_eq!(codes(&answer), ["FUND_DEPOSIT_MONTHS_NOT_MET"]);
    let blocker = &answer.blockers[0];
    assert_eq!(blocker.agency, Agency::ProvidentFund as i32);
    assert_eq!(record_of(blocker), Some(("provident-fund/account/A-1", 1)));
    assert!(blocker.action_zh.contains("连续缴存5个月"), "{blocker:?}");
    assert!(
        blocker.action_en.contains("needs 6 consecutive months"),
        "{blocker:?}"
    );
    assert_eq!(answer.consecutive_deposit_months, 5);

    // One more month recorded by the fund: read-your-writes, and eligible.
    let ack = publish_account(&app, account_with_run(&bea(), 6), 2).await;
    let answer = check_loan(&app, application(&[position(&ack)]))
        .await
        .unwrap();
    assert!(answer.eligible, "{:?}", answer.blockers);
    app.stop().await;
}

#[tokio::test]
async fn an_outstanding_loan_of_the_applicant_blocks_a_new_one() {
    let app = spawn_app().await;
    let mut after = flat_bought_by_bea(&app, Some(24)).await;
    let mut earlier = loan(&bea(), proto::LoanStatus::Repaying, 20_000_000);
    earlier.unit_number = "110105001002GB00017F00030202".into();
    let ack = app
        .fund()
        .publish_loan(proto::PublishLoanRequest {
            meta: meta("L-9", 3),
            record: Some(earlier),
        })
        .await
        .unwrap()
        .into_inner();
    after.push(position(&ack));
    let answer = check_loan(&app, application(&after)).await.unwrap();
    assert_eq!(codes(&answer), ["BORROWER_LOAN_OUTSTANDING"]);
    let blocker = &answer.blockers[0];
    assert_eq!(blocker.agency, Agency::ProvidentFund as i32);
    assert_eq!(record_of(blocker), Some(("provident-fund/loan/L-9", 3)));
    assert!(blocker.action_en.contains("200000.00 yuan"), "{blocker:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_unit_whose_title_and_contract_do_not_name_the_applicant_blocks_the_loan() {
    let app = spawn_app().await;
    let after = flat_bought_by_bea(&app, Some(24)).await;
    // chen applies for a loan on the flat bea is buying, with an account of their own.
    let ack = app
        .fund()
        .publish_account(proto::PublishAccountRequest {
            meta: meta("A-2", 1),
            record: Some(account_with_run(&chen(), 24)),
        })
        .await
        .unwrap()
        .into_inner();
    let mut request = application(&[after, vec![position(&ack)]].concat());
    request.person_id = chen();
    let answer = check_loan(&app, request).await.unwrap();
    assert_eq!(codes(&answer), ["APPLICANT_NOT_BUYER"]);
    let blocker = &answer.blockers[0];
    assert_eq!(blocker.agency, Agency::Housing as i32);
    assert_eq!(record_of(blocker), Some(("housing/property_title/T-1", 1)));
    app.stop().await;
}

#[tokio::test]
async fn a_missing_account_record_is_a_blocker_never_eligibility() {
    let app = spawn_app().await;
    let after = flat_bought_by_bea(&app, None).await;
    let answer = check_loan(&app, application(&after)).await.unwrap();
    assert!(!answer.eligible);
    assert_eq!(codes(&answer), ["FUND_ACCOUNT_MISSING"]);
    let blocker = &answer.blockers[0];
    assert_eq!(blocker.agency, Agency::ProvidentFund as i32);
    assert_eq!(blocker.record, None, "a missing record cites none");
    assert_eq!(answer.limit, None);
    assert_eq!(answer.consecutive_deposit_months, 0);

    // An account published without its run of deposits is unknown, not eligible.
    let ack = publish_account(&app, account(&bea()), 1).await;
    let answer = check_loan(&app, application(&[position(&ack)]))
        .await
        .unwrap();
    assert_eq!(codes(&answer), ["FUND_DEPOSIT_RUN_UNKNOWN"]);
    app.stop().await;
}

/// What makes a request bad.
type Spoil = fn(&mut proto::CheckProvidentFundLoanRequest);

#[tokio::test]
async fn bad_loan_requests_are_invalid_arguments_naming_the_field() {
    let app = spawn_app().await;
    let cases: [(&str, Spoil); 5] = [
        ("amount_fen", |r| r.amount_fen = 0),
        ("amount_fen", |r| r.amount_fen = -100),
        ("amount_fen", |r| r.amount_fen = i64::MAX),
        ("property_unit_number", |r| {
            r.property_unit_number = "110105".into()
        }),
        ("person_id", |r| r.person_id = "110105198001010017".into()),
    ];
    for (field, spoil) in cases {
        let mut request = application(&[]);
        spoil(&mut request);
        let status = check_loan(&app, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let named: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
        assert_eq!(named, [field], "{status:?}");
    }
    app.stop().await;
}

/// The housing transfer window's grant shows provident-fund loans only, not balances:
/// the loan check, whose answer carries the balance, is refused to it.
#[tokio::test]
async fn a_grant_that_cannot_see_the_balance_cannot_check_a_loan() {
    let app = spawn_app().await;
    let mut request = application(&[]);
    request.purpose = "property-transfer".into();
    let status = app
        .resolver_as("housing/transfer-window", None)
        .check_provident_fund_loan(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("provident-fund field account"),
        "{status:?}"
    );
    app.stop().await;
}

/// The loan desk's client for cases.
type Desk = proto::cases_client::CasesClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        govlink::identity::AsRequester,
    >,
>;

/// Opens a loan case for bea's 1,000,000-yuan loan on [`UNIT`] as the loan desk, planned
/// after `after`.
async fn open_loan_case(desk: &mut Desk, request_id: &str, after: Vec<Position>) -> proto::Case {
    desk.open_case(proto::OpenCaseRequest {
        request_id: request_id.into(),
        purpose: "loan-approval".into(),
        params: Some(CaseParams {
            kind: Some(case_params::Kind::ProvidentFundLoan(
                proto::ProvidentFundLoanParams {
                    person_id: bea(),
                    unit_number: UNIT.into(),
                    amount_fen: 100_000_000,
                },
            )),
        }),
        min_positions: after,
    })
    .await
    .unwrap()
    .into_inner()
    .case
    .unwrap()
}

/// The case `case_id` once completed (60 s at most).
async fn completed(desk: &mut Desk, case_id: &str) -> proto::Case {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let case = desk
            .get_case(proto::GetCaseRequest {
                case_id: case_id.into(),
            })
            .await
            .unwrap()
            .into_inner();
        if case.state() == CaseState::Completed {
            return case;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loan case never completed: {case:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loan case: opened by the loan desk, its one step is the fund's approval task, which
/// the fund's system takes from its stream and completes; the case completes.
#[tokio::test]
async fn a_loan_case_is_carried_to_completion_by_the_funds_approval_task() {
    let app = spawn_app().await;
    let after = flat_bought_by_bea(&app, Some(24)).await;
    let mut desk = cases_as(&app, LOAN_DESK);
    let opened = open_loan_case(&mut desk, "loan-1", after).await;
    assert_eq!(opened.kind(), proto::CaseKind::ProvidentFundLoan);
    let [step] = &opened.steps[..] else {
        panic!("one step: {:?}", opened.steps)
    };
    assert_eq!(step.kind(), StepKind::FundLoanApproved);
    assert_eq!(step.agency(), Agency::ProvidentFund);
    assert_eq!(step.state(), proto::StepState::Open);
    assert_eq!(step.working_days, 10);
    assert!(step.due_on.is_some());

    // The fund's system takes the task from its stream, acknowledges and completes it.
    let mut fund = tasks_as(&app, FUND_SYSTEM);
    let mut stream = fund
        .stream(proto::StreamTasksRequest {})
        .await
        .unwrap()
        .into_inner();
    let task = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let task = stream
                .message()
                .await
                .unwrap()
                .expect("the stream stays open");
            if task.case_id == opened.case_id {
                return task;
            }
        }
    })
    .await
    .expect("the approval task reaches the fund's stream");
    assert_eq!(task.step_id, "fund_loan_approved");
    assert_eq!(task.case_kind(), proto::CaseKind::ProvidentFundLoan);
    fund.ack(proto::AckTaskRequest {
        task_id: task.task_id.clone(),
    })
    .await
    .unwrap();
    fund.complete(proto::CompleteTaskRequest {
        task_id: task.task_id.clone(),
        outcome: "approved".into(),
        note: "approved from the shared records".into(),
    })
    .await
    .unwrap();

    let done = completed(&mut desk, &opened.case_id).await;
    assert_eq!(done.steps[0].state(), proto::StepState::Done);
    match &done.steps[0].completed_by {
        Some(proto::step::CompletedBy::Task(t)) => assert_eq!(t.outcome, "approved"),
        other => panic!("done by its task, not {other:?}"),
    }
    app.stop().await;
}

/// The fund records the loan it granted (repaying, to the applicant, on the unit): the
/// record completes the approval step without the task. A settled loan of the applicant
/// on the unit, published first, is an earlier one and leaves the step open.
#[tokio::test]
async fn a_loan_record_of_the_applicant_on_the_unit_completes_the_loan_case() {
    let app = spawn_app().await;
    let mut after = flat_bought_by_bea(&app, Some(24)).await;
    let settled = app
        .fund()
        .publish_loan(proto::PublishLoanRequest {
            meta: meta("L-OLD", 1),
            record: Some(loan(&bea(), proto::LoanStatus::Settled, 0)),
        })
        .await
        .unwrap()
        .into_inner();
    after.push(position(&settled));
    let mut desk = cases_as(&app, LOAN_DESK);
    let opened = open_loan_case(&mut desk, "loan-2", after).await;
    assert_eq!(
        opened.steps[0].state(),
        proto::StepState::Open,
        "{opened:?}"
    );

    let granted = app
        .fund()
        .publish_loan(proto::PublishLoanRequest {
            meta: meta("L-NEW", 1),
            record: Some(loan(&bea(), proto::LoanStatus::Repaying, 60_000_000)),
        })
        .await
        .unwrap()
        .into_inner();
    let done = completed(&mut desk, &opened.case_id).await;
    match &done.steps[0].completed_by {
        Some(proto::step::CompletedBy::Record(proof)) => assert_eq!(
            (proof.record_key.as_str(), proof.version),
            (granted.record_key.as_str(), 1)
        ),
        other => panic!("done by the loan record, not {other:?}"),
    }
    app.stop().await;
}

/// A loan case with an amount of 0 or a unit that is not one is refused by field, and no
/// case is opened.
#[tokio::test]
async fn a_loan_case_with_bad_parameters_is_refused_naming_each_field() {
    let app = spawn_app().await;
    let mut desk = cases_as(&app, LOAN_DESK);
    let refused = desk
        .open_case(proto::OpenCaseRequest {
            request_id: "loan-bad".into(),
            purpose: "loan-approval".into(),
            params: Some(CaseParams {
                kind: Some(case_params::Kind::ProvidentFundLoan(
                    proto::ProvidentFundLoanParams {
                        person_id: bea(),
                        unit_number: "110105".into(),
                        amount_fen: 0,
                    },
                )),
            }),
            min_positions: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let named: Vec<String> = violations(&refused).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        named,
        [
            "params.provident_fund_loan.unit_number",
            "params.provident_fund_loan.amount_fen"
        ],
        "{refused:?}"
    );
    let listed = desk
        .list_cases(proto::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.cases.is_empty(), "{listed:?}");
    app.stop().await;
}
