//! While the sale waits on the household, the seller objects to the police's record (数据
//! 异议) through the citizen portal: the window's check then says the blocking record is
//! disputed, naming the objection, and public security receives the objection as a task.
//! The corrected record public security publishes next completes both the sale's step and
//! the objection, which the seller sees closed in the portal.

use tokio::time::Instant;

use super::{Demo, TASK_PATIENCE, expect};
use crate::domain::ResidentId;
use crate::identity::{AsRequester, Requester};
use crate::proto::cases_client::CasesClient;
use crate::proto::objections_client::ObjectionsClient;
use crate::proto::{self, CaseState, step};
use crate::records::{RecordKey, RecordType};

const PORTAL: &str = "public-security/citizen-portal";
const WINDOW: &str = "housing/transfer-window";
const POLICE_SYSTEM: &str = "public-security/records";

/// The seller (full resident ID) objects to version 1 of their household record on
/// `unit`; the window checks the sale of `unit` to `buyer` again. The objection's id.
pub(super) async fn seller_objects(
    demo: &mut Demo<'_>,
    seller: &str,
    buyer: &str,
    unit: &str,
) -> anyhow::Result<String> {
    demo.step(
        "The seller says the household record is wrong (they moved out) and objects to it \
         through the citizen portal:",
    )?;
    let citizen = ResidentId::parse(seller)?;
    let portal = Requester::parse(PORTAL).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut objections = ObjectionsClient::with_interceptor(
        demo.link.channel(&portal)?,
        AsRequester::new(&portal, Some(&citizen)),
    );
    let key = RecordKey::new(RecordType::HouseholdRegistration, &demo.run.id("hukou-1"));
    let case = objections
        .file_objection(proto::FileObjectionRequest {
            request_id: demo.run.id("objection-1"),
            record_key: key.as_str().to_owned(),
            version: 1,
            disputed_fields: vec!["status".into(), "property_unit_number".into()],
            note: "已于2024年迁出 (moved out in 2024)".into(),
            person_id: seller.into(),
            min_positions: demo.positions.clone(),
        })
        .await?
        .into_inner()
        .case
        .ok_or_else(|| anyhow::anyhow!("FileObjection answered without the case"))?;
    let task = case.steps.first().cloned().unwrap_or_default();
    let due = task.due_on.unwrap_or_default();
    writeln!(
        demo.out,
        "   objection {} filed against {} version 1: step {} for public-security, due {}-{:02}-{:02} ({} working days)",
        case.case_id,
        key.as_str(),
        task.step_id,
        due.year,
        due.month,
        due.day,
        task.working_days
    )?;

    let answer = demo
        .resolver(WINDOW, None)?
        .check_property_transfer(proto::CheckPropertyTransferRequest {
            unit_number: unit.into(),
            seller_ids: vec![seller.into()],
            buyer_ids: vec![buyer.into()],
            purpose: "property-transfer".into(),
            case_id: String::new(),
            min_positions: demo.positions.clone(),
        })
        .await?
        .into_inner();
    let disputed = answer
        .blockers
        .iter()
        .find(|b| b.code == "SELLER_HOUSEHOLD_AT_UNIT");
    if let Some(b) = disputed {
        writeln!(
            demo.out,
            "   the window's check: blocked: {}, disputed by objection {}",
            b.code, b.objection_id
        )?;
    }
    expect(
        !answer.eligible && disputed.is_some_and(|b| b.objection_id == case.case_id),
        "the check should say the household record is disputed, naming the objection",
    )?;
    demo.receive_task(POLICE_SYSTEM, &task.step_id).await?;
    Ok(case.case_id)
}

/// The seller's portal shows objection `objection_id` done by the corrected record.
pub(super) async fn seller_sees_it_closed(
    demo: &mut Demo<'_>,
    seller: &str,
    objection_id: &str,
) -> anyhow::Result<()> {
    let citizen = ResidentId::parse(seller)?;
    let portal = Requester::parse(PORTAL).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut cases = CasesClient::with_interceptor(
        demo.link.channel(&portal)?,
        AsRequester::new(&portal, Some(&citizen)),
    );
    let until = Instant::now() + TASK_PATIENCE;
    let case = loop {
        let listed = cases
            .list_cases(proto::ListCasesRequest {
                kind: proto::CaseKind::DataObjection as i32,
                ..Default::default()
            })
            .await?
            .into_inner();
        let found = listed.cases.into_iter().find(|c| c.case_id == objection_id);
        if let Some(case) = found.filter(|c| c.state() == CaseState::Completed) {
            break case;
        }
        expect(
            Instant::now() < until,
            "the objection should close with the corrected record",
        )?;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    if let Some(step::CompletedBy::Record(proof)) =
        case.steps.first().and_then(|s| s.completed_by.as_ref())
    {
        writeln!(
            demo.out,
            "   the seller's portal lists objection {objection_id}: done by the record {} version {}",
            proof.record_key, proof.version
        )?;
        return Ok(());
    }
    expect(
        false,
        "the objection should be done by the corrected record",
    )
}
