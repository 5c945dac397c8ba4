//! `govlink demo`: a second-hand flat changes hands. Four agencies publish what they
//! know through their adapters (real gRPC calls), the resolver brings it together, and
//! the narration says what happened in plain words. Every step checks its outcome, so the
//! demo fails loudly if the system does not behave as promised.

mod records;

use std::io::Write;

use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::app::{App, Role};
use crate::config::Settings;
use crate::domain::ResidentId;
use crate::proto::housing_adapter_client::HousingAdapterClient;
use crate::proto::provident_fund_adapter_client::ProvidentFundAdapterClient;
use crate::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use crate::proto::resolver_client::ResolverClient;
use crate::proto::social_security_adapter_client::SocialSecurityAdapterClient;
use crate::proto::{
    self, Agency, HouseholdStatus, ListSubjectRecordsRequest, LoanStatus, Position, PublishAck,
    RecordEvent, SubjectKind, record_event::Payload,
};
use crate::resolver::policy::{Requester, agency_name};
use crate::resolver::query::AsRequester;
use records::UNIT;

/// A resolver client calling as one requester.
type Resolver =
    ResolverClient<tonic::service::interceptor::InterceptedService<Channel, AsRequester>>;

/// Runs the scenario against an app built from `settings` (embedded broker and in-memory
/// store unless `kafka`/`redis` are set), writing the narration to `out`.
pub async fn run(settings: &Settings, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    settings.grpc_addr = ([127, 0, 0, 1], 0).into();
    // The demo plays the windows and the portal itself, naming them in a header.
    settings.insecure_requester_header = true;
    let app = App::build(&settings, Role::Dev).await?;
    let addr = app.grpc_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));

    let result = scenario(&format!("http://{addr}"), out).await;
    stop.cancel();
    server.await??;
    result
}

/// The story, one narrated step after another; the first failed step ends it.
async fn scenario(endpoint: &str, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let mut demo = Demo::connect(endpoint, out).await?;
    demo.introduce()?;
    demo.agencies_publish().await?;
    demo.window_checks_the_sale(false).await?;
    demo.seller_settles_and_moves_out().await?;
    demo.window_checks_the_sale(true).await?;
    demo.late_duplicate_changes_nothing().await?;
    demo.mistyped_id_is_refused().await?;
    demo.window_reads_the_seller().await?;
    demo.citizen_sees_who_looked().await?;
    demo.conclude()
}

/// What the scenario carries from step to step.
struct Demo<'o> {
    /// One client per agency adapter, all over one channel to the in-process app, since
    /// the demo plays every agency's system at once.
    police: PublicSecurityAdapterClient<Channel>,
    housing: HousingAdapterClient<Channel>,
    fund: ProvidentFundAdapterClient<Channel>,
    social: SocialSecurityAdapterClient<Channel>,
    /// The housing bureau's transfer window, asking the resolver.
    window: Resolver,
    /// The citizen portal, acting for the seller.
    portal: Resolver,
    /// Full resident ID numbers: they go into records, never into the narration.
    seller: String,
    buyer: String,
    /// Every position acknowledged so far; lookups pass them so the resolver answers only
    /// once it has materialized everything the demo published (read-your-writes).
    positions: Vec<Position>,
    /// Where the narration goes.
    out: &'o mut (dyn Write + Send),
}

impl<'o> Demo<'o> {
    /// Connects the clients to `endpoint` and casts the seller and the buyer.
    async fn connect(endpoint: &str, out: &'o mut (dyn Write + Send)) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(endpoint.to_owned())?.connect().await?;
        let seller = records::person("11010519800312001");
        Ok(Self {
            police: PublicSecurityAdapterClient::new(channel.clone()),
            housing: HousingAdapterClient::new(channel.clone()),
            fund: ProvidentFundAdapterClient::new(channel.clone()),
            social: SocialSecurityAdapterClient::new(channel.clone()),
            window: ResolverClient::with_interceptor(
                channel.clone(),
                AsRequester::new(&Requester::new(Agency::Housing, "transfer-window"), None),
            ),
            portal: ResolverClient::with_interceptor(
                channel,
                AsRequester::new(
                    &Requester::new(Agency::PublicSecurity, "citizen-portal"),
                    Some(&ResidentId::parse(&seller)?),
                ),
            ),
            seller,
            buyer: records::person("31010419900521002"),
            positions: Vec::new(),
            out,
        })
    }

    /// Names the flat and the two people, masked.
    fn introduce(&mut self) -> anyhow::Result<()> {
        let seller_masked = ResidentId::parse(&self.seller)?.masked();
        let buyer_masked = ResidentId::parse(&self.buyer)?.masked();
        writeln!(self.out, "govlink demo: a second-hand flat changes hands")?;
        writeln!(
            self.out,
            "  flat {UNIT}; seller {seller_masked}; buyer {buyer_masked}"
        )?;
        Ok(())
    }

    /// Step 1: each agency publishes its records through its own adapter.
    async fn agencies_publish(&mut self) -> anyhow::Result<()> {
        self.heading("1. Each agency publishes what it knows, through its own adapter:")?;

        let request = records::identity(&self.seller, "person-1");
        let ack = self.police.publish_identity(request).await?.into_inner();
        self.say("public security", "the seller's identity", &ack)?;

        let request = records::household(&self.seller, 1, HouseholdStatus::Registered);
        let ack = self
            .police
            .publish_household_registration(request)
            .await?
            .into_inner();
        let what = "the seller's household registration, at the flat";
        self.say("public security", what, &ack)?;

        let request = records::title(&self.seller);
        let ack = self
            .housing
            .publish_property_title(request)
            .await?
            .into_inner();
        self.say("housing", "the flat's title, one owner, mortgaged", &ack)?;

        let request = records::loan(&self.seller, 1, LoanStatus::Repaying, 12_345_600);
        let ack = self.fund.publish_loan(request).await?.into_inner();
        let what = "the seller's loan on the flat, still repaying";
        self.say("provident fund", what, &ack)?;

        let request = records::pension(&self.buyer);
        let ack = self.social.publish_enrollment(request).await?.into_inner();
        let what = "the buyer's pension enrollment in Beijing";
        self.say("social security", what, &ack)?;

        let request = records::sale_contract(
            &self.seller,
            &self.buyer,
            1,
            proto::SaleContractStatus::Signed,
        );
        let ack = self
            .housing
            .publish_sale_contract(request)
            .await?
            .into_inner();
        self.say("housing", "the signed sale contract", &ack)
    }

    /// Steps 2 and 4: the housing bureau's window asks whether the flat may change owner.
    /// The first time the answer lists what blocks it, agency by agency; after the seller
    /// acted, the same check (waiting for those publishes) says it may.
    async fn window_checks_the_sale(&mut self, expect_eligible: bool) -> anyhow::Result<()> {
        if expect_eligible {
            self.heading("4. The window checks again, right after those publishes:")?;
        } else {
            self.heading("2. The transfer window asks: may this flat change owner?")?;
        }
        let request = proto::CheckPropertyTransferRequest {
            unit_number: UNIT.into(),
            seller_ids: vec![self.seller.clone()],
            buyer_ids: vec![self.buyer.clone()],
            purpose: "property-transfer".into(),
            case_id: "DEMO-SALE-1".into(),
            min_positions: self.positions.clone(),
        };
        let answer = self
            .window
            .check_property_transfer(request)
            .await?
            .into_inner();
        if answer.eligible {
            writeln!(self.out, "   Eligible: nothing blocks the transfer.")?;
        }
        for b in &answer.blockers {
            let agency = agency_name(Agency::try_from(b.agency).unwrap_or(Agency::Unspecified));
            writeln!(self.out, "   blocked: {} (cleared by {agency})", b.code)?;
            writeln!(self.out, "      {}", b.action_zh)?;
            writeln!(self.out, "      {}", b.action_en)?;
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

    /// Step 3: newer versions of the loan and the household registration clear the way.
    async fn seller_settles_and_moves_out(&mut self) -> anyhow::Result<()> {
        self.heading(
            "3. The seller settles the loan and moves the household out; the contract is filed:",
        )?;

        let request = records::loan(&self.seller, 2, LoanStatus::Settled, 0);
        let ack = self.fund.publish_loan(request).await?.into_inner();
        self.say("provident fund", "the loan, now settled", &ack)?;

        let request = records::household(&self.seller, 2, HouseholdStatus::MovedOut);
        let ack = self
            .police
            .publish_household_registration(request)
            .await?
            .into_inner();
        let what = "the household registration, moved out to Shanghai";
        self.say("public security", what, &ack)?;

        let request = records::sale_contract(
            &self.seller,
            &self.buyer,
            2,
            proto::SaleContractStatus::Filed,
        );
        let ack = self
            .housing
            .publish_sale_contract(request)
            .await?
            .into_inner();
        self.say("housing", "the sale contract, now filed", &ack)
    }

    /// Step 4: version 1 of the household registration arrives again, after version 2,
    /// and the resolver must keep version 2.
    async fn late_duplicate_changes_nothing(&mut self) -> anyhow::Result<()> {
        self.heading(
            "5. A late, duplicated delivery of the old household record (version 1) arrives:",
        )?;
        let request = records::household(&self.seller, 1, HouseholdStatus::Registered);
        let ack = self
            .police
            .publish_household_registration(request)
            .await?
            .into_inner();
        self.say("public security", "the old household record again", &ack)?;

        let records = self.records_of(SubjectKind::PropertyUnit, UNIT).await?;
        self.describe(&records)?;
        let household_now = records.iter().find_map(|r| match &r.payload {
            Some(Payload::HouseholdRegistration(h)) => Some((r.version, h.status)),
            _ => None,
        });
        expect(
            household_now == Some((2, HouseholdStatus::MovedOut as i32)),
            "the resolver should keep version 2 (moved out) despite the late version 1",
        )?;
        writeln!(
            self.out,
            "   The resolver kept version 2: older versions never overwrite newer ones."
        )?;
        Ok(())
    }

    /// Step 5: the adapter refuses an ID number whose check character is wrong.
    async fn mistyped_id_is_refused(&mut self) -> anyhow::Result<()> {
        self.heading("6. An agency system sends a record with a mistyped ID number:")?;
        let request = records::identity(&records::mistyped(&self.seller), "person-2");
        match self.police.publish_identity(Request::new(request)).await {
            Err(status) if status.code() == Code::InvalidArgument => {
                writeln!(
                    self.out,
                    "   refused with INVALID_ARGUMENT: {}",
                    status.message()
                )?;
                Ok(())
            }
            other => anyhow::bail!("a mistyped ID number should be refused, got {other:?}"),
        }
    }

    /// Step 7: the window reads the seller's profile: only what its grant allows, masked,
    /// and told which sections it may not see.
    async fn window_reads_the_seller(&mut self) -> anyhow::Result<()> {
        self.heading("7. The window reads the seller's profile, as its policy grant allows:")?;
        let request = proto::GetPersonProfileRequest {
            person_id: self.seller.clone(),
            purpose: "property-transfer".into(),
            case_id: "DEMO-SALE-1".into(),
            min_positions: self.positions.clone(),
        };
        let profile = self.window.get_person_profile(request).await?.into_inner();
        if let Some(identity) = profile.identity.as_ref().and_then(|s| s.identity.as_ref()) {
            writeln!(
                self.out,
                "   identity: {} {} (masked by policy)",
                identity.person_id, identity.name
            )?;
        }
        let titles = profile.property.as_ref().map_or(0, |p| p.titles.len());
        writeln!(self.out, "   property: {titles} title(s)")?;
        writeln!(
            self.out,
            "   withheld from this window: {}",
            profile.withheld_sections.join(", ")
        )?;
        expect(
            profile.withheld_sections == ["social-security"] && titles == 1,
            "the window should see the title and be told social security is withheld",
        )
    }

    /// Step 8: the seller asks the citizen portal who looked at their data.
    async fn citizen_sees_who_looked(&mut self) -> anyhow::Result<()> {
        self.heading("8. The seller asks the citizen portal: who looked at my data?")?;
        let seller = self.seller.clone();
        // The access index follows the audit trail within moments; give it a few. Each
        // listing is itself a look at the seller's data, and is listed too.
        let listing = "ListDataAccesses";
        let mut accesses = Vec::new();
        for _ in 0..50 {
            let request = proto::ListDataAccessesRequest {
                person_id: seller.clone(),
                purpose: "self-view".into(),
                limit: 0,
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
        for a in &others {
            let agency = Agency::try_from(a.requester_agency).unwrap_or(Agency::Unspecified);
            let decision = match proto::AccessDecision::try_from(a.decision) {
                Ok(proto::AccessDecision::Allowed) => "allowed",
                Ok(proto::AccessDecision::Denied) => "denied",
                _ => "unknown",
            };
            writeln!(
                self.out,
                "   - {}/{} for {} (case {}): {} — {} [{decision}]",
                agency_name(agency),
                a.requester_service,
                a.purpose,
                a.case_id,
                a.method,
                a.sections.join(", "),
            )?;
        }
        writeln!(
            self.out,
            "   (and {} look(s) by the portal itself, for this list)",
            own.len()
        )?;
        expect(
            others.len() >= 3,
            "the seller should see the window's two checks and its profile lookup",
        )
    }

    /// The closing line, written only when every step passed.
    fn conclude(&mut self) -> anyhow::Result<()> {
        self.heading(
            "Done: every record was acknowledged by the broker and materialized, every answer \
             followed the policy, and every lookup is in the audit trail.",
        )
    }

    /// A subject's records, once the resolver has materialized every position so far.
    async fn records_of(
        &mut self,
        kind: SubjectKind,
        id: &str,
    ) -> anyhow::Result<Vec<RecordEvent>> {
        let request = ListSubjectRecordsRequest {
            subject: Some(proto::Subject {
                kind: kind as i32,
                id: id.into(),
            }),
            min_positions: self.positions.clone(),
        };
        Ok(self
            .window
            .list_subject_records(request)
            .await?
            .into_inner()
            .records)
    }

    /// Starts a step (or the closing line) after a blank line.
    fn heading(&mut self, text: &str) -> anyhow::Result<()> {
        writeln!(self.out)?;
        writeln!(self.out, "{text}")?;
        Ok(())
    }

    /// Narrates an acknowledged publish and remembers its position for later lookups.
    fn say(&mut self, agency: &str, what: &str, ack: &PublishAck) -> anyhow::Result<()> {
        let position = ack
            .position
            .clone()
            .ok_or_else(|| anyhow::anyhow!("an ack without a position"))?;
        writeln!(
            self.out,
            "   {agency:>15}: {what} — version {}, acknowledged at partition {} offset {}",
            ack.version, position.partition, position.offset
        )?;
        self.positions.push(position);
        Ok(())
    }

    /// One line per record, in words, without resident IDs or names.
    fn describe(&mut self, records: &[RecordEvent]) -> anyhow::Result<()> {
        for r in records {
            writeln!(self.out, "   - {} (version {})", summary(r), r.version)?;
        }
        Ok(())
    }
}

/// What a record says, in a few words.
fn summary(r: &RecordEvent) -> String {
    match &r.payload {
        Some(Payload::PropertyTitle(t)) => format!(
            "housing: title {}, {} owner(s), {} encumbrance(s)",
            t.certificate_number,
            t.owners.len(),
            t.encumbrances.len()
        ),
        Some(Payload::SaleContract(c)) => format!(
            "housing: sale contract {}, price {} yuan, {}",
            c.contract_number,
            c.price_fen / 100,
            enum_name(proto::SaleContractStatus::try_from(c.status).map(|s| s.as_str_name()))
        ),
        Some(Payload::ProvidentFundLoan(l)) => format!(
            "provident fund: loan {}, outstanding {} yuan, {}",
            l.loan_contract_number,
            l.outstanding_principal_fen / 100,
            enum_name(LoanStatus::try_from(l.status).map(|s| s.as_str_name()))
        ),
        Some(Payload::HouseholdRegistration(h)) => format!(
            "public security: household registration {}",
            enum_name(HouseholdStatus::try_from(h.status).map(|s| s.as_str_name()))
        ),
        Some(Payload::Enrollment(e)) => format!(
            "social security: {} enrollment in {}, {}",
            enum_name(proto::InsuranceType::try_from(e.insurance_type).map(|s| s.as_str_name())),
            e.region_code,
            enum_name(proto::EnrollmentStatus::try_from(e.status).map(|s| s.as_str_name()))
        ),
        Some(other) => format!("{other:?}"),
        None => "deleted".into(),
    }
}

/// A proto enum's name, or `UNKNOWN` for a number this build does not know.
fn enum_name<E>(name: Result<&'static str, E>) -> &'static str {
    name.unwrap_or("UNKNOWN")
}

/// Fails the demo with `what` unless `ok`.
fn expect(ok: bool, what: &str) -> anyhow::Result<()> {
    if ok {
        Ok(())
    } else {
        anyhow::bail!("demo check failed: {what}")
    }
}
