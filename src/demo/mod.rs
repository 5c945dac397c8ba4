//! `govlink demo`: a case carried to completion online, told in plain words. The
//! agencies publish what they know through their adapters and act on the tasks their
//! systems receive (real gRPC calls, as their systems would make them); the resolver
//! brings the records together; the case engine moves the case on as records and task
//! completions arrive. Every step checks its outcome, so the demo fails loudly if the
//! system does not behave as promised.
//!
//! Two stories ([`Story`]): a second-hand flat changes hands (`sale.rs`), after which the
//! buyer's provident-fund loan is checked and approved online (`loan.rs`), and a pension
//! account moves from Beijing to Shanghai (`transfer.rs`).

mod loan;
mod objection;
mod records;
mod sale;
mod timeline;
mod told;
mod transfer;

use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::{Instant, timeout};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::app::{App, Role};
use crate::config::Settings;
use crate::domain::ResidentId;
use crate::identity::AsRequester;
use crate::identity::Requester;
use crate::proto::Agency;
use crate::proto::cases_client::CasesClient;
use crate::proto::housing_adapter_client::HousingAdapterClient;
use crate::proto::provident_fund_adapter_client::ProvidentFundAdapterClient;
use crate::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use crate::proto::resolver_client::ResolverClient;
use crate::proto::social_security_adapter_client::SocialSecurityAdapterClient;
use crate::proto::tasks_client::TasksClient;
use crate::proto::{
    self, HouseholdStatus, ListSubjectRecordsRequest, LoanStatus, Position, PublishAck,
    RecordEvent, SubjectKind, record_event::Payload,
};
use crate::tls::client::ClientTls;
use records::Run;

/// A resolver client calling as one requester.
type Resolver = ResolverClient<InterceptedService<Channel, AsRequester>>;
/// A `Cases` client calling as one requester.
type Cases = CasesClient<InterceptedService<Channel, AsRequester>>;
/// A `Tasks` client calling as one agency system.
type Tasks = TasksClient<InterceptedService<Channel, AsRequester>>;

/// The longest the demo waits for an agency's task to reach its system.
const TASK_PATIENCE: Duration = Duration::from_secs(30);

/// Which story the demo tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Story {
    /// A second-hand flat is sold: the seller's household moves out, the provident-fund
    /// loan is settled, the contract is filed and the title registered to the buyer.
    #[default]
    PropertyTransfer,
    /// A pension account moves from Beijing to Shanghai.
    SocialSecurityTransfer,
}

impl Story {
    /// Every story, by its name on the command line.
    pub const ALL: [(Story, &'static str); 2] = [
        (Story::PropertyTransfer, "property-transfer"),
        (Story::SocialSecurityTransfer, "social-security-transfer"),
    ];
}

impl FromStr for Story {
    type Err = String;

    fn from_str(name: &str) -> Result<Story, String> {
        Story::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(story, _)| *story)
            .ok_or_else(|| {
                let names: Vec<&str> = Story::ALL.iter().map(|(_, n)| *n).collect();
                format!(
                    "no demo of kind {name:?}; the kinds are {}",
                    names.join(", ")
                )
            })
    }
}

/// Runs `story` against an app built from `settings` (embedded broker and in-memory
/// stores unless `kafka`/`redis` are set), writing the narration to `out`.
pub async fn run(
    settings: &Settings,
    story: Story,
    tls: Option<&Path>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    settings.grpc_addr = ([127, 0, 0, 1], 0).into();
    // A port of its own is not needed, and the default one may be taken.
    settings.admin_addr = String::new();
    // The demo plays the windows, the portal and the agencies' systems itself: each
    // calls with its own certificate of `tls`, or without TLS names itself in a header.
    let tls = match tls {
        Some(dir) => {
            settings = settings.with_certs_dir(dir);
            Some(ClientTls::new(dir))
        }
        None => {
            // The TLS files an operator's configuration names are for its servers; this
            // one is the demo's own, and its callers (the demo) speak plaintext.
            settings.tls_cert = None;
            settings.tls_key = None;
            settings.tls_client_ca = None;
            settings.tls_crl = None;
            settings.insecure_requester_header = true;
            None
        }
    };
    let app = App::build(&settings, Role::Dev).await?;
    let addr = app.grpc_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));

    let link = Link { addr, tls };
    // A broker or Redis of the operator's keeps what earlier runs left there.
    let run = if settings.kafka.is_some() || settings.redis.is_some() {
        Run::fresh()
    } else {
        Run::own()
    };
    let result = match story {
        Story::PropertyTransfer => sale::tell(&link, run, out).await,
        Story::SocialSecurityTransfer => transfer::tell(&link, run, out).await,
    };
    stop.cancel();
    server.await??;
    result
}

/// How the demo reaches the in-process app.
struct Link {
    addr: std::net::SocketAddr,
    /// The certificates each caller presents; plaintext without.
    tls: Option<ClientTls>,
}

impl Link {
    /// Whether callers are identified by their certificates.
    fn is_secured(&self) -> bool {
        self.tls.is_some()
    }

    /// A channel for calls as `requester` (its own connection and certificate over TLS).
    fn channel(&self, requester: &Requester) -> anyhow::Result<Channel> {
        let addr = self.addr.to_string();
        match &self.tls {
            Some(tls) => tls.lazy(&addr, requester),
            None => Ok(Channel::from_shared(format!("http://{addr}"))?.connect_lazy()),
        }
    }
}

/// What a story carries from step to step.
struct Demo<'o> {
    link: &'o Link,
    /// One client per agency adapter, each calling as that agency's record system, since
    /// the demo plays every agency's system at once.
    police: PublicSecurityAdapterClient<Channel>,
    housing: HousingAdapterClient<Channel>,
    fund: ProvidentFundAdapterClient<Channel>,
    social: SocialSecurityAdapterClient<Channel>,
    /// Every position acknowledged so far; lookups pass them so the resolver answers only
    /// once it has materialized everything the demo published (read-your-writes).
    positions: Vec<Position>,
    /// The number of the next step of the story.
    next_step: u32,
    /// Whose flat, people and record ids this run uses.
    run: Run,
    /// Where the narration goes.
    out: &'o mut (dyn Write + Send),
}

impl<'o> Demo<'o> {
    /// Connects the agencies' clients over `link`, for `run`.
    async fn connect(
        link: &'o Link,
        run: Run,
        out: &'o mut (dyn Write + Send),
    ) -> anyhow::Result<Self> {
        let system = |agency| link.channel(&Requester::new(agency, "records"));
        Ok(Self {
            police: PublicSecurityAdapterClient::new(system(Agency::PublicSecurity)?),
            housing: HousingAdapterClient::new(system(Agency::Housing)?),
            fund: ProvidentFundAdapterClient::new(system(Agency::ProvidentFund)?),
            social: SocialSecurityAdapterClient::new(system(Agency::SocialSecurity)?),
            link,
            positions: Vec::new(),
            next_step: 1,
            run,
            out,
        })
    }

    /// A resolver client calling as `requester` (`agency/service`), for `citizen` if set.
    fn resolver(&self, requester: &str, citizen: Option<&str>) -> anyhow::Result<Resolver> {
        let (requester, citizen) = identify(requester, citizen)?;
        Ok(ResolverClient::with_interceptor(
            self.link.channel(&requester)?,
            AsRequester::new(&requester, citizen.as_ref()),
        ))
    }

    /// A `Cases` client calling as `requester`.
    fn cases(&self, requester: &str) -> anyhow::Result<Cases> {
        let (requester, _) = identify(requester, None)?;
        Ok(CasesClient::with_interceptor(
            self.link.channel(&requester)?,
            AsRequester::new(&requester, None),
        ))
    }

    /// A `Tasks` client calling as the agency system `system` (`agency/service`).
    fn tasks(&self, system: &str) -> anyhow::Result<Tasks> {
        let (requester, _) = identify(system, None)?;
        Ok(TasksClient::with_interceptor(
            self.link.channel(&requester)?,
            AsRequester::new(&requester, None),
        ))
    }

    /// Opens a case as `requester` and prints its plan; the case and when it was asked
    /// for.
    async fn open_case(
        &mut self,
        requester: &str,
        request: proto::OpenCaseRequest,
    ) -> anyhow::Result<(proto::Case, Instant, Cases)> {
        let mut cases = self.cases(requester)?;
        let asked = Instant::now();
        let case = cases
            .open_case(request)
            .await?
            .into_inner()
            .case
            .ok_or_else(|| anyhow::anyhow!("OpenCase answered without the case"))?;
        writeln!(
            self.out,
            "   case {} opened in {:.2}s; its plan, from the records as they stand:",
            case.case_id,
            asked.elapsed().as_secs_f64()
        )?;
        timeline::plan(&case, self.out)?;
        Ok((case, asked, cases))
    }

    /// The task for step `step_id` from the task stream of `system` (`agency/service`),
    /// acknowledged, as the agency's system receives it.
    async fn receive_task(&mut self, system: &str, step_id: &str) -> anyhow::Result<proto::Task> {
        let mut tasks = self.tasks(system)?;
        let mut stream = tasks
            .stream(proto::StreamTasksRequest {})
            .await?
            .into_inner();
        let task = timeout(TASK_PATIENCE, async {
            while let Some(task) = stream.message().await? {
                if task.step_id == step_id {
                    return Ok(task);
                }
            }
            anyhow::bail!("the task stream of {system} ended")
        })
        .await
        .map_err(|_| anyhow::anyhow!("demo check failed: no {step_id} task reached {system}"))??;
        tasks
            .ack(proto::AckTaskRequest {
                task_id: task.task_id.clone(),
            })
            .await?;
        writeln!(
            self.out,
            "   {system} received task {} from its stream and acknowledged it",
            task.task_id
        )?;
        Ok(task)
    }

    /// A subject's records, once the resolver has materialized every position so far, as
    /// `reader` may see them.
    async fn records_of(
        &mut self,
        reader: &mut Resolver,
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
        Ok(reader
            .list_subject_records(request)
            .await?
            .into_inner()
            .records)
    }

    /// Says which tag this run's record and request ids carry, when they carry one.
    fn tagged(&mut self) -> anyhow::Result<()> {
        if let Some(tag) = self.run.tag() {
            writeln!(
                self.out,
                "  everything this run publishes and opens is its own (ids ending in \
                 -{tag}), so it can be told again on the same broker and Redis"
            )?;
        }
        Ok(())
    }

    /// Starts the next numbered step of the story after a blank line.
    fn step(&mut self, text: &str) -> anyhow::Result<()> {
        writeln!(self.out)?;
        writeln!(self.out, "{}. {text}", self.next_step)?;
        self.next_step += 1;
        Ok(())
    }

    /// A line of the story that is not a step (the title, the closing line).
    fn line(&mut self, text: &str) -> anyhow::Result<()> {
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

/// The requester `agency/service`, and the citizen a portal acts for.
fn identify(
    requester: &str,
    citizen: Option<&str>,
) -> anyhow::Result<(Requester, Option<ResidentId>)> {
    let requester = Requester::parse(requester).map_err(|e| anyhow::anyhow!("{e}"))?;
    let citizen = citizen.map(ResidentId::parse).transpose()?;
    Ok((requester, citizen))
}

/// Fails the demo with `what` unless `ok`.
fn expect(ok: bool, what: &str) -> anyhow::Result<()> {
    if ok {
        Ok(())
    } else {
        anyhow::bail!("demo check failed: {what}")
    }
}
