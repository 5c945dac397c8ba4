//! The `govlink` binary: parses the command line and configuration, sets up logging and
//! signals, and hands over to the library.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use govlink::app::{App, Role};
use govlink::config::Settings;
use govlink::proto::Agency;
use govlink::reach::ReachError;
use tracing_subscriber::EnvFilter;

/// govlink: a data-sharing gateway between government agencies.
#[derive(Parser)]
#[command(name = "govlink", version)]
struct Cli {
    /// TOML configuration file; `GOVLINK_*` variables and flags override it.
    #[arg(long, global = true, env = "GOVLINK_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides GOVLINK_KAFKA).
    #[arg(long, global = true)]
    kafka: Option<String>,
    /// Redis URL (overrides GOVLINK_REDIS).
    #[arg(long, global = true)]
    redis: Option<String>,
    /// gRPC listen address (overrides GOVLINK_GRPC_ADDR).
    #[arg(long, global = true)]
    grpc_addr: Option<SocketAddr>,
    /// Admin HTTP listen address, empty for none (overrides GOVLINK_ADMIN_ADDR).
    #[arg(long, global = true)]
    admin_addr: Option<String>,
    /// Access policy file (overrides GOVLINK_POLICY).
    #[arg(long, global = true)]
    policy: Option<PathBuf>,
    /// Trust the x-govlink-requester metadata as the caller's identity. Insecure: anyone
    /// who can reach the port can claim any agency. On in `dev` and `demo`.
    #[arg(long, global = true)]
    insecure_requester_header: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one agency's adapter: validate and publish its records.
    Adapter {
        /// The agency this adapter publishes for.
        #[arg(long)]
        agency: AgencyArg,
    },
    /// Materialize the record topics into Redis and serve lookups.
    Resolver,
    /// Run the case engine and serve Cases and Tasks (cases are kept in Redis).
    Cases,
    /// Run everything in one process (embedded broker and in-memory store by default).
    Dev {
        /// Serve mutual TLS with the certificates of this directory (`certs init`):
        /// callers are identified by their client certificates, not a header.
        #[arg(long)]
        tls: Option<PathBuf>,
    },
    /// Run a narrated end-to-end scenario in one process, then exit.
    Demo {
        /// The story: property-transfer (a flat changes hands) or social-security-transfer
        /// (a pension account moves from Beijing to Shanghai).
        #[arg(long, default_value = "property-transfer")]
        kind: govlink::demo::Story,
        /// Run secured: mutual TLS with the certificates of this directory (`certs
        /// init`), each agency system and window calling with its own certificate.
        #[arg(long)]
        tls: Option<PathBuf>,
    },
    /// Certificates for a secured setup (a development CA; see docs/security.md).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Rebuild the record store (Redis) from the topics, with the running resolvers.
    Rebuild {
        /// Rebuild the case store instead, from the case topic (stop the case engines
        /// first: they refuse commands for cases not yet put back).
        #[arg(long)]
        cases: bool,
    },
    /// Measure govlink's hot paths side by side with raw rdkafka / Redis baselines.
    Bench {
        /// publish, publish-batch, lookup, freshness, rebuild, or all.
        scenario: BenchArg,
        /// Operations per side per round.
        #[arg(long, default_value_t = 2000)]
        records: u64,
        /// Concurrent clients per side.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Rounds (govlink, then the baseline, in each).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// A few seconds in all (200 records, 1 round, concurrency 4).
        #[arg(long)]
        quick: bool,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also draw the latency distributions, govlink's beside each baseline's, as SVG.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
    /// Access policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Topic tools: list the topics, print their messages decoded, read consumer lag.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Dead-letter tools: list the events the resolver could not use, send them back.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Every govlink topic: partitions, end offsets (sum of high watermarks), cleanup
    /// policy, retention and min ISR; a missing topic says so.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print a topic's messages decoded to JSON (identifiers masked), then stop at its end.
    Tail(govlink::tools::topics::TailOptions),
    /// Committed offset, end offset and lag per topic-partition of govlink's consumer
    /// groups (materializer and access indexer of the store's generation, case engine,
    /// dead-letter replays), or of the groups given.
    Lag {
        /// A consumer group to look at instead (repeatable).
        #[arg(long)]
        group: Vec<String>,
        /// One JSON object per group and line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Every dead letter: reason, original topic/partition/offset, time, replays it went
    /// through and its status (sent, pending, held); then the count by reason.
    List {
        /// Only letters of this reason: undecodable, invalid, wrong-key,
        /// not-a-record-topic, store-refused or other.
        #[arg(long)]
        reason: Option<govlink::resolver::dead_letter::DeadLetterKind>,
        /// One JSON object per line (the letter decoded), then a summary line.
        #[arg(long)]
        json: bool,
    },
    /// Send the letters no earlier replay sent back to their record topic (original key
    /// and bytes) and remember how far it got; prints the count by reason. A letter
    /// whose event was replayed before and failed again is held (see `--again`).
    Replay(govlink::tools::dlq::ReplayOptions),
}

/// `govlink topics ...`: the logic is in `govlink::tools::topics`.
async fn topics(settings: &Settings, command: TopicsCommand) -> anyhow::Result<()> {
    use govlink::tools::topics;
    let mut stdout = std::io::stdout().lock();
    match command {
        TopicsCommand::List { json } => {
            topics::list(settings, json, &mut stdout).await?;
        }
        TopicsCommand::Tail(options) => {
            topics::tail(settings, &options, &mut stdout).await?;
        }
        TopicsCommand::Lag { group, json } => {
            topics::lag(settings, &group, json, &mut stdout).await?;
        }
    }
    Ok(())
}

/// `govlink dlq ...`: the logic is in `govlink::tools::dlq`.
async fn dlq(settings: &Settings, command: DlqCommand) -> anyhow::Result<()> {
    use govlink::tools::dlq;
    let mut stdout = std::io::stdout().lock();
    match command {
        DlqCommand::List { reason, json } => {
            dlq::list(settings, reason, json, &mut stdout).await?;
        }
        DlqCommand::Replay(options) => {
            dlq::replay(settings, &options, &mut stdout).await?;
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a development CA, a server certificate, one client certificate per agency
    /// system and example requester service, and an empty revocation list.
    Init {
        /// The directory to write (must not hold a CA yet).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a client certificate for a requester (`agency/service`) with the CA of DIR.
    Issue {
        /// A directory written by `certs init`.
        #[arg(long)]
        dir: PathBuf,
        /// The requester, e.g. housing/transfer-window.
        requester: String,
        /// Days of validity, 1 to 3650.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=MAX_DAYS))]
        days: u64,
    },
    /// Revoke a certificate: add it to DIR's CRL and sign a new one. Servers reading
    /// that CRL refuse it from their next reload (SIGHUP, or within a second of the
    /// file changing).
    Revoke {
        /// A directory written by `certs init`.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate to revoke (PEM).
        cert: PathBuf,
    },
}

/// The longest validity `certs issue` gives (ten years): a longer one is a typo more
/// likely than a plan, and a certificate that never expires is never rotated.
const MAX_DAYS: u64 = 3650;

/// `govlink certs ...`: the logic is in `govlink::tls::certs`.
fn certs(command: &CertsCommand) -> anyhow::Result<()> {
    use govlink::tls::certs::CertsDir;
    match command {
        CertsCommand::Init { out } => {
            let dir = CertsDir::new(out);
            dir.init()?;
            println!(
                "wrote a development CA, the server certificate, {} client certificates and an \
                 empty CRL to {}",
                govlink::tls::certs::DEV_IDENTITIES.len(),
                out.display()
            );
            println!("run secured: govlink dev --tls {}", out.display());
        }
        CertsCommand::Issue {
            dir,
            requester,
            days,
        } => {
            let requester = govlink::identity::Requester::parse(requester)
                .map_err(|e| anyhow::anyhow!("requester {requester:?}: {e}"))?;
            let valid = std::time::Duration::from_secs(days.saturating_mul(86_400));
            let issued = CertsDir::new(dir).issue(&requester, valid)?;
            println!("{} {}", issued.cert.display(), issued.key.display());
        }
        CertsCommand::Revoke { dir, cert } => {
            let dir = CertsDir::new(dir);
            dir.revoke(cert)?;
            println!(
                "revoked {}; new CRL: {}",
                cert.display(),
                dir.crl().display()
            );
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify every chain of the audit trail against its hashes and checkpoints; prints
    /// one line per chain and exits non-zero if any failed.
    Verify {
        /// Skip entries before this RFC 3339 time (chains are verified from there on).
        #[arg(long, value_parser = govlink::audit::verify::parse_time)]
        from: Option<std::time::SystemTime>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The CA bundle (PEM) the writers' certificates must chain to; default: the
        /// configured tls_client_ca. Without either, who wrote a chain is not checked.
        #[arg(long, value_name = "FILE")]
        ca: Option<std::path::PathBuf>,
        /// Let unsigned chains pass (a trail written without TLS: dev, demo, or before
        /// chains were signed); they are still marked signature=unsigned.
        #[arg(long)]
        allow_unsigned: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file and print who may see what; exits non-zero naming the
    /// line of the first problem.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchArg {
    Publish,
    PublishBatch,
    Lookup,
    Freshness,
    Rebuild,
    All,
}

impl BenchArg {
    fn scenarios(self) -> Vec<govlink::bench::Scenario> {
        use govlink::bench::Scenario;
        match self {
            BenchArg::Publish => vec![Scenario::Publish],
            BenchArg::PublishBatch => vec![Scenario::PublishBatch],
            BenchArg::Lookup => vec![Scenario::Lookup],
            BenchArg::Freshness => vec![Scenario::Freshness],
            BenchArg::Rebuild => vec![Scenario::Rebuild],
            BenchArg::All => Scenario::ALL.to_vec(),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum AgencyArg {
    SocialSecurity,
    PublicSecurity,
    Housing,
    ProvidentFund,
}

impl From<AgencyArg> for Agency {
    fn from(a: AgencyArg) -> Agency {
        match a {
            AgencyArg::SocialSecurity => Agency::SocialSecurity,
            AgencyArg::PublicSecurity => Agency::PublicSecurity,
            AgencyArg::Housing => Agency::Housing,
            AgencyArg::ProvidentFund => Agency::ProvidentFund,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    govlink::tls::install_process_provider();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints why the command failed. A broker or Redis that cannot be reached is the
/// operator's to fix, not a defect: its one line says what and where, and a cause chain
/// or a backtrace (with `RUST_BACKTRACE` set) would only bury it. Anything else is
/// printed as before: the message, its causes and, when asked for, the backtrace.
fn report(e: &anyhow::Error) {
    match e
        .chain()
        .find_map(|cause| cause.downcast_ref::<ReachError>())
    {
        Some(operational) => eprintln!("Error: {operational}"),
        None => eprintln!("Error: {e:?}"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Tools that need no configuration (a broken config file must not stop them).
    match &cli.command {
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => return policy_check(file),
        Command::Certs { command } => return certs(command),
        _ => {}
    }
    let settings = settings(&cli)?;
    let quiet = matches!(
        cli.command,
        Command::Demo { .. }
            | Command::Rebuild { .. }
            | Command::Audit { .. }
            | Command::Bench { .. }
    );
    init_logging(settings.log_json, if quiet { "warn" } else { "info" });

    let role = match cli.command {
        Command::Demo { kind, tls } => {
            let mut stdout = std::io::stdout();
            return govlink::demo::run(&settings, kind, tls.as_deref(), &mut stdout).await;
        }
        Command::Rebuild { cases: false } => return rebuild(&settings).await,
        Command::Rebuild { cases: true } => return rebuild_cases(&settings).await,
        Command::Bench {
            scenario,
            records,
            concurrency,
            rounds,
            quick,
            json,
            chart,
        } => {
            let options = if quick {
                govlink::bench::BenchOptions {
                    json,
                    chart,
                    ..govlink::bench::BenchOptions::quick()
                }
            } else {
                govlink::bench::BenchOptions {
                    records,
                    concurrency,
                    rounds,
                    json,
                    chart,
                    govlink_exe: None,
                }
            };
            let mut stdout = std::io::stdout();
            govlink::bench::run(&settings, &scenario.scenarios(), &options, &mut stdout).await?;
            return Ok(());
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    from,
                    json,
                    ca,
                    allow_unsigned,
                },
        } => {
            let mut stdout = std::io::stdout();
            let signatures = govlink::tools::audit_verify::SignatureCheck { ca, allow_unsigned };
            let report =
                govlink::tools::audit_verify::run(&settings, from, &signatures, json, &mut stdout)
                    .await?;
            if !report.is_clean() {
                anyhow::bail!("the audit trail failed verification");
            }
            return Ok(());
        }
        Command::Topics { command } => return topics(&settings, command).await,
        Command::Dlq { command } => return dlq(&settings, command).await,
        Command::Adapter { agency } => Role::Adapter(agency.into()),
        Command::Resolver => Role::Resolver,
        Command::Cases => Role::Cases,
        Command::Dev { .. } => Role::Dev,
        Command::Policy { .. } | Command::Certs { .. } => {
            unreachable!("handled before the configuration is loaded")
        }
    };
    let app = App::build(&settings, role).await?;
    tracing::info!(addr = %app.grpc_addr(), "ready");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

/// `govlink rebuild` with a progress bar on stderr and a final count on stdout.
/// `govlink policy check FILE`: one line, compiler style, on a problem.
fn policy_check(file: &std::path::Path) -> anyhow::Result<()> {
    match govlink::resolver::policy::Policy::load(file) {
        Ok(policy) => print!("{}", policy.table()),
        // A read error names the file already.
        Err(e) if e.line().is_none() => anyhow::bail!("{e}"),
        Err(e) => anyhow::bail!("{}: {e}", file.display()),
    }
    Ok(())
}

/// The settings: the config file, then `GOVLINK_*` variables, then flags.
fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut settings = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            Settings::load_file(&path.display().to_string(), &text, &env)?
        }
        None => Settings::load(None, &env)?,
    };
    if let Some(kafka) = &cli.kafka {
        settings.kafka = Some(kafka.clone());
    }
    if let Some(redis) = &cli.redis {
        settings.redis = Some(redis.clone());
    }
    if let Some(addr) = cli.grpc_addr {
        settings.grpc_addr = addr;
    }
    if let Some(addr) = &cli.admin_addr {
        settings.admin_addr = addr.clone();
        settings.admin_addr()?;
    }
    if let Some(policy) = &cli.policy {
        settings.policy = Some(policy.display().to_string());
    }
    let insecure = cli.insecure_requester_header || settings.insecure_requester_header;
    match &cli.command {
        Command::Dev { tls } | Command::Demo { tls, .. } => {
            match tls {
                Some(dir) => {
                    settings = settings.with_certs_dir(dir);
                    settings.tls()?;
                }
                // Without TLS, `dev` and `demo` serve whoever claims to be a requester;
                // they say so at start-up.
                None => settings.insecure_requester_header = true,
            }
        }
        Command::Adapter { .. } | Command::Resolver | Command::Cases if insecure => {
            anyhow::bail!(
                "insecure_requester_header is for `govlink dev` and `demo` only: a server \
                 of an exchange identifies callers by their client certificates (set \
                 tls_cert, tls_key and tls_client_ca; see docs/security.md)"
            );
        }
        _ => settings.insecure_requester_header = insecure,
    }
    Ok(settings)
}

async fn rebuild(settings: &Settings) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta}) {msg}",
        )?
        .progress_chars("=> "),
    );
    let report = govlink::tools::rebuild::rebuild(settings, |done, total| {
        if total == 0 {
            bar.set_message("clearing the store");
        } else {
            bar.set_message("");
            bar.set_length(total);
            bar.set_position(done);
        }
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    println!(
        "rebuilt the record store: {} events from {} partitions in {:.1}s (generation {})",
        report.events,
        report.partitions,
        report.elapsed.as_secs_f64(),
        report.generation
    );
    Ok(())
}

/// `govlink rebuild --cases` with a count of events read on stderr and the outcome on
/// stdout; a case whose history is not whole fails it, named.
async fn rebuild_cases(settings: &Settings) -> anyhow::Result<()> {
    let bar =
        indicatif::ProgressBar::new_spinner().with_style(indicatif::ProgressStyle::with_template(
            "{spinner} reading the case topic: {pos} events ({per_sec})",
        )?);
    let report =
        govlink::tools::rebuild_cases::rebuild(settings, |events| bar.set_position(events)).await;
    bar.finish_and_clear();
    let report = report?;
    println!(
        "rebuilt the case store: {} cases from {} events in {:.1}s ({} put back with {} open tasks, {} already current)",
        report.cases,
        report.events,
        report.elapsed.as_secs_f64(),
        report.restored,
        report.tasks,
        report.current
    );
    for (case_id, why) in &report.broken {
        println!("case {case_id} not rebuilt: {why}");
    }
    anyhow::ensure!(
        report.broken.is_empty(),
        "{} case(s) have a history that is not whole on the case topic",
        report.broken.len()
    );
    Ok(())
}

/// Logs go to stderr; `RUST_LOG` overrides the default level.
fn init_logging(json: bool, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
