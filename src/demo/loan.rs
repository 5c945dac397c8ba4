//! After the sale, the buyer borrows from the provident fund: the fund's loan desk checks
//! the application from the shared records (the fund account, the buyer's loans, the
//! title just registered), with no proof uploaded; a loan case carries it to the fund's
//! approval task, which the fund's system completes from its stream.

use std::io::Write;

use tokio::time::Instant;

use super::timeline::Timeline;
use super::{Demo, expect, records};
use crate::domain::CivilDate;
use crate::proto::{self, Agency, CaseParams, StepKind, case_event::Body, case_params};
use crate::records::agency_slug;

/// The fund's loan desk: checks applications and opens loan cases.
const LOAN_DESK: &str = "provident-fund/loan-desk";
/// The fund's record system: receives and completes the fund's tasks.
const FUND_SYSTEM: &str = "provident-fund/records";
/// The loan applied for: 1,000,000 yuan.
const AMOUNT_FEN: i64 = 100_000_000;

/// The buyer (full resident ID) applies for a loan on `unit`, which the title now names
/// them the owner of.
pub(super) async fn buyer_borrows(
    demo: &mut Demo<'_>,
    buyer: &str,
    unit: &str,
) -> anyhow::Result<()> {
    demo.step(
        "The buyer applies online for a provident-fund loan; the fund's loan desk checks it \
         from the shared records, with no proof uploaded:",
    )?;
    let today = CivilDate::today_in_china().year_month();
    let (year, month) = if today.month() == 1 {
        (today.year() - 1, 12)
    } else {
        (today.year(), today.month() as i32 - 1)
    };
    let last_deposit = proto::YearMonth { year, month };
    let request = records::fund_account(&demo.run, buyer, last_deposit);
    let ack = demo.fund.publish_account(request).await?.into_inner();
    let what = "the buyer's account, 36 months of deposits without a gap";
    demo.say("provident fund", what, &ack)?;
    check(demo, buyer, unit).await?;
    approve(demo, buyer, unit).await
}

/// `CheckProvidentFundLoan`, printed: eligible (or the blockers), the deposit months and
/// the largest loan with its inputs.
async fn check(demo: &mut Demo<'_>, buyer: &str, unit: &str) -> anyhow::Result<()> {
    let mut desk = demo.resolver(LOAN_DESK, None)?;
    let request = proto::CheckProvidentFundLoanRequest {
        person_id: buyer.into(),
        property_unit_number: unit.into(),
        amount_fen: AMOUNT_FEN,
        purpose: "loan-approval".into(),
        case_id: String::new(),
        min_positions: demo.positions.clone(),
    };
    let answer = desk.check_provident_fund_loan(request).await?.into_inner();
    let out = &mut demo.out;
    writeln!(
        out,
        "   deposits: {} consecutive months up to last month ({} required)",
        answer.consecutive_deposit_months, answer.deposit_months_required
    )?;
    if let Some(l) = &answer.limit {
        writeln!(
            out,
            "   largest loan: {} yuan = min(balance {} yuan × {}, cap {} yuan), bounded by the {}",
            l.max_loan_fen / 100,
            l.balance_fen / 100,
            l.balance_multiple,
            l.cap_fen / 100,
            l.bounded_by
        )?;
    }
    for b in &answer.blockers {
        let agency = agency_slug(Agency::try_from(b.agency).unwrap_or(Agency::Unspecified));
        writeln!(out, "   blocked: {} (cleared by {agency})", b.code)?;
        writeln!(out, "      {}", b.action_zh)?;
        writeln!(out, "      {}", b.action_en)?;
    }
    if answer.eligible {
        writeln!(
            out,
            "   Eligible: a loan of {} yuan, decided from the fund's and housing's records.",
            AMOUNT_FEN / 100
        )?;
    }
    expect(
        answer.eligible,
        "the buyer's loan should be eligible from the shared records",
    )
}

/// The desk opens a loan case; the fund's system takes the approval task from its stream
/// and completes it; the case completes.
async fn approve(demo: &mut Demo<'_>, buyer: &str, unit: &str) -> anyhow::Result<()> {
    demo.step("The loan desk opens a loan case; the fund's system approves it from its task:")?;
    let request = proto::OpenCaseRequest {
        request_id: demo.run.id("demo-loan-1"),
        purpose: "loan-approval".into(),
        params: Some(CaseParams {
            kind: Some(case_params::Kind::ProvidentFundLoan(
                proto::ProvidentFundLoanParams {
                    person_id: buyer.into(),
                    unit_number: unit.into(),
                    amount_fen: AMOUNT_FEN,
                },
            )),
        }),
        min_positions: demo.positions.clone(),
    };
    let (case, asked, mut cases) = demo.open_case(LOAN_DESK, request).await?;
    let mut timeline = Timeline::follow(&mut cases, &case.case_id, asked).await?;
    let task = demo.receive_task(FUND_SYSTEM, "fund_loan_approved").await?;
    let acted = Instant::now();
    demo.tasks(FUND_SYSTEM)?
        .complete(proto::CompleteTaskRequest {
            task_id: task.task_id.clone(),
            outcome: "approved".into(),
            note: "approved online from the shared records".into(),
        })
        .await?;
    let took = timeline
        .step_done(StepKind::FundLoanApproved, acted)
        .await?;
    timeline
        .until("its completion", |b| matches!(b, Body::Completed(_)))
        .await?;
    writeln!(
        demo.out,
        "   the approval reached the case in {:.2}s\n   The loan case is complete: approved online, no proof uploaded, no counter visited.",
        took.as_secs_f64()
    )?;
    let case = cases
        .get_case(proto::GetCaseRequest {
            case_id: case.case_id.clone(),
        })
        .await?
        .into_inner();
    expect(
        case.state() == proto::CaseState::Completed,
        "the loan case should be completed",
    )
}
