//! The flat sale: four agencies publish, the transfer window finds what blocks the sale
//! and opens a case; the seller objects to the household record, which the check then
//! calls disputed; public security moves the seller's household out (a record event
//! completes that step and the objection), the provident fund's system completes its task from its stream,
//! housing files the contract and registers the title to the buyer, and the case
//! completes; the buyer's provident-fund loan is checked and approved online. Then what
//! guards the data: a late duplicate, a mistyped ID number, a profile read under policy,
//! the seller's view of who looked, and what the portal watching the seller's data told
//! them as it happened.

use std::io::Write;

use tokio::time::Instant;
use tonic::{Code, Request};

use super::records::{self, Run};
use super::timeline::Timeline;
use super::told;
use super::{Cases, Demo, Link, Resolver, expect};
use crate::domain::ResidentId;
use crate::proto::{
    self, Agency, CaseParams, HouseholdStatus, LoanStatus, PropertyTransferParams, StepKind,
    SubjectKind, case_event::Body, case_params, record_event::Payload,
};
use crate::records::agency_slug;
/// Who acts in the story (`agency/service`).
const WINDOW: &str = "housing/transfer-window";
const PORTAL: &str = "public-security/citizen-portal";
const FUND_SYSTEM: &str = "provident-fund/records";
const HOUSING_SYSTEM: &str = "housing/records";

/// Tells the story to `out`, against the app over `link`.
pub(super) async fn tell(
    link: &Link,
    run: Run,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let demo = Demo::connect(link, run, out).await?;
    let seller = run.person("11010519800312001");
    let mut sale = Sale {
        window: demo.resolver(WINDOW, None)?,
        portal: demo.resolver(PORTAL, Some(&seller))?,
        demo,
        seller,
        buyer: run.person("31010419900521002"),
        unit: run.unit(),
        case_id: String::new(),
    };
    sale.introduce()?;
    let mut watch = told::watch(&mut sale.demo, &mut sale.portal, &sale.seller).await?;
    sale.agencies_publish().await?;
    sale.window_checks_the_sale(false).await?;
    let (mut cases, mut timeline) = sale.window_opens_the_case().await?;
    let objection =
        super::objection::seller_objects(&mut sale.demo, &sale.seller, &sale.buyer, &sale.unit)
            .await?;
    sale.household_moves_out(&mut timeline).await?;
    super::objection::seller_sees_it_closed(&mut sale.demo, &sale.seller, &objection).await?;
    sale.fund_settles_the_loan(&mut timeline).await?;
    sale.contract_is_filed(&mut timeline).await?;
    sale.window_checks_the_sale(true).await?;
    sale.title_is_registered(&mut timeline).await?;
    sale.timeline(&mut cases, &timeline).await?;
    super::loan::buyer_borrows(&mut sale.demo, &sale.buyer, &sale.unit).await?;
    sale.late_duplicate_changes_nothing().await?;
    sale.mistyped_id_is_refused().await?;
    if link.is_secured() {
        sale.another_agency_cannot_publish().await?;
    }
    sale.window_reads_the_buyer().await?;
    sale.citizen_sees_who_looked().await?;
    told::tell(&mut sale.demo, &mut watch).await?;
    sale.demo.line(
        "Done: every record was acknowledged by the broker and materialized, the case moved \
         on with each record and task completion until the flat was the buyer's, every \
         answer followed the policy, and every lookup and case action is in the audit trail.",
    )
}

/// The sale's cast and its case.
struct Sale<'o> {
    demo: Demo<'o>,
    /// The housing bureau's transfer window, asking the resolver.
    window: Resolver,
    /// The citizen portal, acting for the seller.
    portal: Resolver,
    /// Full resident ID numbers: they go into records, never into the narration.
    seller: String,
    buyer: String,
    /// The flat's unit number.
    unit: String,
    /// The case, once opened.
    case_id: String,
}

impl Sale<'_> {
    /// Names the flat and the two people, masked.
    fn introduce(&mut self) -> anyhow::Result<()> {
        let seller_masked = ResidentId::parse(&self.seller)?.masked();
        let buyer_masked = ResidentId::parse(&self.buyer)?.masked();
        let out = &mut self.demo.out;
        writeln!(out, "govlink demo: a second-hand flat changes hands")?;
        writeln!(
            out,
            "  flat {}; seller {seller_masked}; buyer {buyer_masked}",
            self.unit
        )?;
        self.demo.tagged()
    }

    /// Each agency publishes its records through its own adapter.
    async fn agencies_publish(&mut self) -> anyhow::Result<()> {
        let demo = &mut self.demo;
        demo.step("Each agency publishes what it knows, through its own adapter:")?;

        let run = demo.run;
        let request = records::identity(&run, &self.seller, "person-1");
        let ack = demo.police.publish_identity(request).await?.into_inner();
        demo.say("public security", "the seller's identity", &ack)?;

        let request = records::household(&run, &self.seller, 1, HouseholdStatus::Registered);
        let ack = demo
            .police
            .publish_household_registration(request)
            .await?
            .into_inner();
        let what = "the seller's household registration, at the flat";
        demo.say("public security", what, &ack)?;

        let request = records::title(&run, &self.seller, 1);
        let ack = demo
            .housing
            .publish_property_title(request)
            .await?
            .into_inner();
        demo.say("housing", "the flat's title, one owner, mortgaged", &ack)?;

        let request = records::loan(&run, &self.seller, 1, LoanStatus::Repaying, 12_345_600);
        let ack = demo.fund.publish_loan(request).await?.into_inner();
        let what = "the seller's loan on the flat, still repaying";
        demo.say("provident fund", what, &ack)?;

        let request = records::pension(&run, &self.buyer);
        let ack = demo.social.publish_enrollment(request).await?.into_inner();
        let what = "the buyer's pension enrollment in Beijing";
        demo.say("social security", what, &ack)?;

        self.publish_contract(
            1,
            proto::SaleContractStatus::Signed,
            "the signed sale contract",
        )
        .await
    }

    /// Housing publishes version `version` of the sale contract, with `status`.
    async fn publish_contract(
        &mut self,
        version: u64,
        status: proto::SaleContractStatus,
        what: &str,
    ) -> anyhow::Result<()> {
        let run = &self.demo.run;
        let request = records::sale_contract(run, &self.seller, &self.buyer, version, status);
        let ack = self
            .demo
            .housing
            .publish_sale_contract(request)
            .await?
            .into_inner();
        self.demo.say("housing", what, &ack)
    }

    /// The housing bureau's window asks whether the flat may change owner. The first time
    /// the answer lists what blocks it, agency by agency; once the agencies acted, the
    /// same check (waiting for their publishes) says it may.
    async fn window_checks_the_sale(&mut self, expect_eligible: bool) -> anyhow::Result<()> {
        if expect_eligible {
            self.demo
                .step("The window checks again, right after those publishes:")?;
        } else {
            self.demo
                .step("The transfer window asks: may this flat change owner?")?;
        }
        let request = proto::CheckPropertyTransferRequest {
            unit_number: self.unit.clone(),
            seller_ids: vec![self.seller.clone()],
            buyer_ids: vec![self.buyer.clone()],
            purpose: "property-transfer".into(),
            case_id: self.case_id.clone(),
            min_positions: self.demo.positions.clone(),
        };
        let answer = self
            .window
            .check_property_transfer(request)
            .await?
            .into_inner();
        let out = &mut self.demo.out;
        if answer.eligible {
            writeln!(out, "   Eligible: nothing blocks the transfer.")?;
        }
        for b in &answer.blockers {
            let agency = agency_slug(Agency::try_from(b.agency).unwrap_or(Agency::Unspecified));
            writeln!(out, "   blocked: {} (cleared by {agency})", b.code)?;
            writeln!(out, "      {}", b.action_zh)?;
            writeln!(out, "      {}", b.action_en)?;
        }
        if expect_eligible {
            return expect(answer.eligible, "the sale should be eligible once cleared");
        }
        let codes: Vec<&str> = answer.blockers.iter().map(|b| b.code.as_str()).collect();
        expect(
            codes.contains(&"SELLER_HOUSEHOLD_AT_UNIT")
                && codes.contains(&"PROVIDENT_FUND_LOAN_UNSETTLED")
                && codes.contains(&"SALE_CONTRACT_WRONG_STATUS"),
            "the first check should name the household, the loan and the unfiled contract",
        )
    }

    /// The window opens the transfer case: every step open, each with its agency and
    /// working-day deadline, except the title, which waits for the other three.
    async fn window_opens_the_case(&mut self) -> anyhow::Result<(Cases, Timeline)> {
        self.demo.step(
            "Instead of sending the seller to three offices, the window opens a transfer case:",
        )?;
        let request = proto::OpenCaseRequest {
            request_id: self.demo.run.id("demo-sale-1"),
            purpose: "property-transfer".into(),
            params: Some(CaseParams {
                kind: Some(case_params::Kind::PropertyTransfer(
                    PropertyTransferParams {
                        unit_number: self.unit.clone(),
                        contract_number: self.demo.run.contract(),
                        seller_ids: vec![self.seller.clone()],
                        buyer_ids: vec![self.buyer.clone()],
                    },
                )),
            }),
            // Planned on what the agencies published so far (read-your-writes).
            min_positions: self.demo.positions.clone(),
        };
        let (case, asked, mut cases) = self.demo.open_case(WINDOW, request).await?;
        self.case_id.clone_from(&case.case_id);
        let timeline = Timeline::follow(&mut cases, &case.case_id, asked).await?;
        let open = case
            .steps
            .iter()
            .filter(|s| s.state() == proto::StepState::Open)
            .count();
        expect(
            open == 3,
            "the household, the loan and the contract should be open steps",
        )?;
        Ok((cases, timeline))
    }

    /// Public security moves the household out; the record event completes the step.
    async fn household_moves_out(&mut self, timeline: &mut Timeline) -> anyhow::Result<()> {
        self.demo
            .step("Public security moves the seller's household out of the flat:")?;
        let acted = Instant::now();
        let run = &self.demo.run;
        let request = records::household(run, &self.seller, 2, HouseholdStatus::MovedOut);
        let ack = self
            .demo
            .police
            .publish_household_registration(request)
            .await?
            .into_inner();
        let what = "the household registration, moved out to Shanghai";
        self.demo.say("public security", what, &ack)?;
        let took = timeline
            .step_done(StepKind::SellerHouseholdMovedOut, acted)
            .await?;
        writeln!(
            self.demo.out,
            "   the record completed step seller_household_moved_out {:.2}s after the publish began",
            took.as_secs_f64()
        )?;
        Ok(())
    }

    /// The provident fund's loan desk takes its task from its stream, settles the loan
    /// and completes the task; the fund's records say so too.
    async fn fund_settles_the_loan(&mut self, timeline: &mut Timeline) -> anyhow::Result<()> {
        self.demo.step(
            "The provident fund's loan desk gets its task, the seller settles, the desk completes it:",
        )?;
        let task = self.demo.receive_task(FUND_SYSTEM, "loan_settled").await?;
        let acted = Instant::now();
        self.demo
            .tasks(FUND_SYSTEM)?
            .complete(proto::CompleteTaskRequest {
                task_id: task.task_id.clone(),
                outcome: "settled".into(),
                note: "repaid in full at the counter".into(),
            })
            .await?;
        let took = timeline.step_done(StepKind::LoanSettled, acted).await?;
        writeln!(
            self.demo.out,
            "   the completion reached the case in {:.2}s",
            took.as_secs_f64()
        )?;
        let request = records::loan(&self.demo.run, &self.seller, 2, LoanStatus::Settled, 0);
        let ack = self.demo.fund.publish_loan(request).await?.into_inner();
        self.demo
            .say("provident fund", "the loan, now settled", &ack)
    }

    /// Housing files the contract; the record completes the step.
    async fn contract_is_filed(&mut self, timeline: &mut Timeline) -> anyhow::Result<()> {
        self.demo.step("Housing files the sale contract:")?;
        let acted = Instant::now();
        self.publish_contract(
            2,
            proto::SaleContractStatus::Filed,
            "the sale contract, now filed",
        )
        .await?;
        let took = timeline
            .step_done(StepKind::SaleContractFiled, acted)
            .await?;
        writeln!(
            self.demo.out,
            "   the record completed step sale_contract_filed {:.2}s after the publish began",
            took.as_secs_f64()
        )?;
        Ok(())
    }

    /// With the other three done, the title step opens; housing's registration desk gets
    /// it and registers the title to the buyer, and the case completes.
    async fn title_is_registered(&mut self, timeline: &mut Timeline) -> anyhow::Result<()> {
        self.demo.step(
            "The title step opens; housing's registration desk registers the flat to the buyer:",
        )?;
        self.demo
            .receive_task(HOUSING_SYSTEM, "title_registered")
            .await?;
        let acted = Instant::now();
        let request = records::title(&self.demo.run, &self.buyer, 2);
        let ack = self
            .demo
            .housing
            .publish_property_title(request)
            .await?
            .into_inner();
        let what = "the flat's title, now the buyer's, mortgage released";
        self.demo.say("housing", what, &ack)?;
        timeline.step_done(StepKind::TitleRegistered, acted).await?;
        timeline
            .until("its completion", |b| matches!(b, Body::Completed(_)))
            .await?;
        writeln!(
            self.demo.out,
            "   The case is complete: the flat is the buyer's."
        )?;
        Ok(())
    }

    /// The case as it ended, and its timeline.
    async fn timeline(&mut self, cases: &mut Cases, timeline: &Timeline) -> anyhow::Result<()> {
        self.demo
            .step("The case's timeline, from the window's request:")?;
        let case = cases
            .get_case(proto::GetCaseRequest {
                case_id: self.case_id.clone(),
            })
            .await?
            .into_inner();
        timeline.print(&case, self.demo.out)?;
        expect(
            case.state() == proto::CaseState::Completed,
            "the case should be completed",
        )
    }

    /// Version 1 of the household registration arrives again, after version 2, and the
    /// resolver must keep version 2.
    async fn late_duplicate_changes_nothing(&mut self) -> anyhow::Result<()> {
        self.demo
            .step("A late, duplicated delivery of the old household record (version 1) arrives:")?;
        let run = &self.demo.run;
        let request = records::household(run, &self.seller, 1, HouseholdStatus::Registered);
        let ack = self
            .demo
            .police
            .publish_household_registration(request)
            .await?
            .into_inner();
        self.demo
            .say("public security", "the old household record again", &ack)?;

        // Public security's own system reads its records at the flat (raw records are their
        // agency's own; everyone else reads through the policy).
        let mut registry = self.demo.resolver("public-security/records", None)?;
        let records = self
            .demo
            .records_of(&mut registry, SubjectKind::PropertyUnit, &self.unit)
            .await?;
        self.demo.describe(&records)?;
        let household_now = records.iter().find_map(|r| match &r.payload {
            Some(Payload::HouseholdRegistration(h)) => Some((r.version, h.status)),
            _ => None,
        });
        expect(
            household_now == Some((2, HouseholdStatus::MovedOut as i32)),
            "the resolver should keep version 2 (moved out) despite the late version 1",
        )?;
        writeln!(
            self.demo.out,
            "   The resolver kept version 2: older versions never overwrite newer ones."
        )?;
        Ok(())
    }

    /// The adapter refuses an ID number whose check character is wrong.
    async fn mistyped_id_is_refused(&mut self) -> anyhow::Result<()> {
        self.demo
            .step("An agency system sends a record with a mistyped ID number:")?;
        let mistyped = records::mistyped(&self.seller);
        let request = records::identity(&self.demo.run, &mistyped, "person-2");
        match self
            .demo
            .police
            .publish_identity(Request::new(request))
            .await
        {
            Err(status) if status.code() == Code::InvalidArgument => {
                writeln!(
                    self.demo.out,
                    "   refused with INVALID_ARGUMENT: {}",
                    status.message()
                )?;
                Ok(())
            }
            other => anyhow::bail!("a mistyped ID number should be refused, got {other:?}"),
        }
    }

    /// Over mutual TLS: housing's records system, with its own valid certificate, tries
    /// to publish a household record through public security's adapter.
    async fn another_agency_cannot_publish(&mut self) -> anyhow::Result<()> {
        self.demo.step(
            "Housing's record system, with its own valid certificate, tries to publish a \
             household record through public security's adapter:",
        )?;
        let housing = crate::identity::Requester::new(Agency::Housing, "records");
        let mut police = proto::public_security_adapter_client::PublicSecurityAdapterClient::new(
            self.demo.link.channel(&housing)?,
        );
        let request =
            records::household(&self.demo.run, &self.seller, 3, HouseholdStatus::MovedOut);
        match police
            .publish_household_registration(Request::new(request))
            .await
        {
            Err(status) if status.code() == Code::PermissionDenied => {
                writeln!(
                    self.demo.out,
                    "   refused with PERMISSION_DENIED: {}\n   (the attempt is in the audit trail)",
                    status.message()
                )?;
                Ok(())
            }
            other => anyhow::bail!("another agency's publish should be refused, got {other:?}"),
        }
    }

    /// The window reads the buyer's profile: only what its grant allows, masked, and told
    /// which sections it may not see.
    async fn window_reads_the_buyer(&mut self) -> anyhow::Result<()> {
        self.demo
            .step("The window reads the buyer's profile, as its policy grant allows:")?;
        let request = proto::GetPersonProfileRequest {
            person_id: self.buyer.clone(),
            purpose: "property-transfer".into(),
            case_id: self.case_id.clone(),
            min_positions: self.demo.positions.clone(),
        };
        let profile = self.window.get_person_profile(request).await?.into_inner();
        let out = &mut self.demo.out;
        if let Some(identity) = profile.identity.as_ref().and_then(|s| s.identity.as_ref()) {
            writeln!(
                out,
                "   identity: {} {} (masked by policy)",
                identity.person_id, identity.name
            )?;
        }
        let titles = profile.property.as_ref().map_or(0, |p| p.titles.len());
        writeln!(out, "   property: {titles} title(s)")?;
        writeln!(
            out,
            "   withheld from this window: {}",
            profile.withheld_sections.join(", ")
        )?;
        expect(
            profile.withheld_sections == ["social-security"] && titles == 1,
            "the window should see the buyer's new title and be told social security is withheld",
        )
    }

    /// The seller asks the citizen portal who looked at their data.
    async fn citizen_sees_who_looked(&mut self) -> anyhow::Result<()> {
        self.demo
            .step("The seller asks the citizen portal: who looked at my data?")?;
        // The access index follows the audit trail within moments; give it a few. Each
        // listing is itself a look at the seller's data, and is listed too.
        let listing = "ListDataAccesses";
        let mut accesses = Vec::new();
        for _ in 0..50 {
            let request = proto::ListDataAccessesRequest {
                person_id: self.seller.clone(),
                purpose: "self-view".into(),
                limit: 0,
                page_token: String::new(),
            };
            accesses = self
                .portal
                .list_data_accesses(request)
                .await?
                .into_inner()
                .accesses;
            if accesses.iter().filter(|a| a.method != listing).count() >= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (own, others): (Vec<_>, Vec<_>) = accesses.iter().partition(|a| a.method == listing);
        let out = &mut self.demo.out;
        for a in &others {
            let agency = Agency::try_from(a.requester_agency).unwrap_or(Agency::Unspecified);
            let decision = match proto::AccessDecision::try_from(a.decision) {
                Ok(proto::AccessDecision::Allowed) => "allowed",
                Ok(proto::AccessDecision::Denied) => "denied",
                _ => "unknown",
            };
            let sections = if a.sections.is_empty() {
                String::new()
            } else {
                format!(" — {}", a.sections.join(", "))
            };
            let case = if a.case_id.is_empty() {
                String::new()
            } else {
                format!(" (case {})", a.case_id)
            };
            writeln!(
                out,
                "   - {}/{} for {}{case}: {}{sections} [{decision}]",
                agency_slug(agency),
                a.requester_service,
                a.purpose,
                a.method,
            )?;
        }
        writeln!(
            out,
            "   (and {} look(s) by the portal itself, for this list)",
            own.len()
        )?;
        expect(
            others.len() >= 3,
            "the seller should see the window's two checks and its case",
        )
    }
}
