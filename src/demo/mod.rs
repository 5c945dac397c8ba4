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
    self, HouseholdStatus, ListSubjectRecordsRequest, LoanStatus, Position, PublishAck,
    RecordEvent, SubjectKind, record_event::Payload,
};
use records::UNIT;

/// Runs the scenario against an app built from `settings` (embedded broker and in-memory
/// store unless `kafka`/`redis` are set), writing the narration to `out`.
pub async fn run(settings: &Settings, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    settings.grpc_addr = ([127, 0, 0, 1], 0).into();
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
    demo.window_asks_about_the_flat().await?;
    demo.seller_settles_and_moves_out().await?;
    demo.late_duplicate_changes_nothing().await?;
    demo.mistyped_id_is_refused().await?;
    demo.buyer_across_agencies().await?;
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
    /// The service window's client.
    resolver: ResolverClient<Channel>,
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
        Ok(Self {
            police: PublicSecurityAdapterClient::new(channel.clone()),
            housing: HousingAdapterClient::new(channel.clone()),
            fund: ProvidentFundAdapterClient::new(channel.clone()),
            social: SocialSecurityAdapterClient::new(channel.clone()),
            resolver: ResolverClient::new(channel),
            seller: records::person("11010519800312001"),
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

        let request = records::sale_contract(&self.seller, &self.buyer);
        let ack = self
            .housing
            .publish_sale_contract(request)
            .await?
            .into_inner();
        self.say("housing", "the signed sale contract", &ack)
    }

    /// Step 2: the resolver brings the four agencies' records on the flat together.
    async fn window_asks_about_the_flat(&mut self) -> anyhow::Result<()> {
        self.heading(
            "2. The service window asks the resolver what every agency knows about the flat:",
        )?;
        let records = self.records_of(SubjectKind::PropertyUnit, UNIT).await?;
        self.describe(&records)?;
        expect(
            records.len() == 4,
            "the flat should have four records (household, title, contract, loan)",
        )
    }

    /// Step 3: newer versions of the loan and the household registration clear the way.
    async fn seller_settles_and_moves_out(&mut self) -> anyhow::Result<()> {
        self.heading("3. The seller settles the loan and moves the household registration out:")?;

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
        self.say("public security", what, &ack)
    }

    /// Step 4: version 1 of the household registration arrives again, after version 2,
    /// and the resolver must keep version 2.
    async fn late_duplicate_changes_nothing(&mut self) -> anyhow::Result<()> {
        self.heading(
            "4. A late, duplicated delivery of the old household record (version 1) arrives:",
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
        self.heading("5. An agency system sends a record with a mistyped ID number:")?;
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

    /// Step 6: one lookup finds the buyer's records from two agencies.
    async fn buyer_across_agencies(&mut self) -> anyhow::Result<()> {
        self.heading("6. Everything govlink knows about the buyer, across agencies:")?;
        let buyer = self.buyer.clone();
        let records = self.records_of(SubjectKind::Person, &buyer).await?;
        self.describe(&records)?;
        expect(
            records.len() == 2,
            "the buyer should have a pension enrollment and a contract",
        )
    }

    /// The closing line, written only when every step passed.
    fn conclude(&mut self) -> anyhow::Result<()> {
        self.heading(
            "Done: every record was acknowledged by the broker, materialized, and read back.",
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
            .resolver
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
