//! The pension transfer: a worker moves from Beijing to Shanghai and their pension
//! account follows them. Shanghai's social-security window opens the case; Beijing's
//! system gets the transfer-out task and issues the certificate, Shanghai's enrolls the
//! worker and carries the contributions over, each through its task stream, and records
//! complete the steps they prove. On paper this took 15 working days of letters between
//! the two cities.

use std::io::Write;

use tokio::time::Instant;

use super::records::{self, BEIJING, Run, SHANGHAI};
use super::timeline::Timeline;
use super::{Cases, Demo, Link, expect};
use crate::domain::ResidentId;
use crate::proto::{
    self, CaseParams, InsuranceType, SocialSecurityTransferParams, StepKind, case_event::Body,
    case_params,
};

/// Who acts in the story (`agency/service`).
const WINDOW: &str = "social-security/transfer-window";
// Both bureaus work through social security's record system, the agency's integration:
// the steps' tasks are the agency's, and each bureau takes its own from the stream.
const BEIJING_SYSTEM: &str = "social-security/records";
const SHANGHAI_SYSTEM: &str = "social-security/records";
/// What the transfer was allowed on paper.
const PAPER_WORKING_DAYS: u32 = 15;

/// Tells the story to `out`, against the app over `link`.
pub(super) async fn tell(
    link: &Link,
    run: Run,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut demo = Demo::connect(link, run, out).await?;
    let worker = run.person("11010519850704003");
    introduce(&mut demo, &worker).await?;
    let (case, asked, mut cases, mut timeline) = open(&mut demo, &worker).await?;
    desks_act(&mut demo, &worker, &mut timeline).await?;
    demo.step("The case's timeline, from the worker's request:")?;
    let case = cases
        .get_case(proto::GetCaseRequest {
            case_id: case.case_id,
        })
        .await?
        .into_inner();
    timeline.print(&case, demo.out)?;
    expect(
        case.state() == proto::CaseState::Completed,
        "the transfer case should be completed",
    )?;
    let took = asked.elapsed().as_secs_f64();
    demo.line(&format!(
        "Done: the account moved in {took:.1}s of the demo's time, where paper allowed \
         {PAPER_WORKING_DAYS} working days; each agency acted once, from its own system, and \
         every case action is in the audit trail."
    ))
}

/// Names the worker and the move; Beijing's enrollment is there already.
async fn introduce(demo: &mut Demo<'_>, worker: &str) -> anyhow::Result<()> {
    writeln!(
        demo.out,
        "govlink demo: a pension account moves from Beijing to Shanghai"
    )?;
    writeln!(
        demo.out,
        "  worker {}; from {BEIJING} (Chaoyang, Beijing) to {SHANGHAI} (Xuhui, Shanghai); \
         on paper, {PAPER_WORKING_DAYS} working days",
        ResidentId::parse(worker)?.masked()
    )?;
    demo.tagged()?;

    demo.step("Beijing's social-security system has published the worker's enrollment:")?;
    let ack = demo
        .social
        .publish_enrollment(records::pension_in(&demo.run, worker, BEIJING))
        .await?
        .into_inner();
    demo.say(
        "social security",
        "pension enrollment in Beijing, active",
        &ack,
    )?;
    Ok(())
}

/// Shanghai's window opens the transfer; the case, when it was asked for, the window's
/// client and the case's timeline.
async fn open(
    demo: &mut Demo<'_>,
    worker: &str,
) -> anyhow::Result<(proto::Case, Instant, Cases, Timeline)> {
    demo.step("The worker asks Shanghai's social-security window to bring the account over:")?;
    let request = proto::OpenCaseRequest {
        request_id: demo.run.id("demo-pension-1"),
        purpose: "social-security-transfer".into(),
        params: Some(CaseParams {
            kind: Some(case_params::Kind::SocialSecurityTransfer(
                SocialSecurityTransferParams {
                    person_id: worker.to_owned(),
                    insurance_type: InsuranceType::Pension as i32,
                    from_region_code: BEIJING.into(),
                    to_region_code: SHANGHAI.into(),
                },
            )),
        }),
        // Planned on what the agencies published so far (read-your-writes).
        min_positions: demo.positions.clone(),
    };
    let (case, asked, mut cases) = demo.open_case(WINDOW, request).await?;
    let timeline = Timeline::follow(&mut cases, &case.case_id, asked).await?;
    Ok((case, asked, cases, timeline))
}

/// Each region's desk takes its task from its stream and acts: Beijing issues the
/// certificate, Shanghai enrolls the worker and carries the contributions over.
async fn desks_act(
    demo: &mut Demo<'_>,
    worker: &str,
    timeline: &mut Timeline,
) -> anyhow::Result<()> {
    demo.step("Beijing's transfer desk gets the task and issues the transfer-out certificate:")?;
    demo.receive_task(BEIJING_SYSTEM, "transfer_out_certificate_issued")
        .await?;
    let acted = Instant::now();
    let ack = demo
        .social
        .publish_transfer_out_certificate(records::transfer_out(&demo.run, worker))
        .await?
        .into_inner();
    demo.say("social security", "the transfer-out certificate", &ack)?;
    let took = timeline
        .step_done(StepKind::TransferOutCertificateIssued, acted)
        .await?;
    writeln!(
        demo.out,
        "   the certificate completed its step {:.2}s after the publish began",
        took.as_secs_f64()
    )?;

    demo.step("Shanghai's transfer desk gets the next task and enrolls the worker:")?;
    demo.receive_task(SHANGHAI_SYSTEM, "transfer_accepted")
        .await?;
    let acted = Instant::now();
    let ack = demo
        .social
        .publish_enrollment(records::pension_in(&demo.run, worker, SHANGHAI))
        .await?
        .into_inner();
    demo.say(
        "social security",
        "pension enrollment in Shanghai, active",
        &ack,
    )?;
    let took = timeline
        .step_done(StepKind::TransferAccepted, acted)
        .await?;
    writeln!(
        demo.out,
        "   the enrollment completed its step {:.2}s after the publish began",
        took.as_secs_f64()
    )?;

    demo.step("Shanghai's desk carries the contributions over and completes its last task:")?;
    let task = demo
        .receive_task(SHANGHAI_SYSTEM, "contributions_carried_over")
        .await?;
    let acted = Instant::now();
    demo.tasks(SHANGHAI_SYSTEM)?
        .complete(proto::CompleteTaskRequest {
            task_id: task.task_id,
            outcome: "carried-over".into(),
            note: "136 months and the personal account balance".into(),
        })
        .await?;
    timeline
        .step_done(StepKind::ContributionsCarriedOver, acted)
        .await?;
    timeline
        .until("its completion", |b| matches!(b, Body::Completed(_)))
        .await?;
    Ok(())
}
