//! The `govlink` command: parses the command line and configuration, sets up logging and
//! signals, and hands over to the roles (`app`), the tools, the benchmarks or the demo.
//! `src/main.rs` only calls [`main`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

mod tools;

use crate::app::{App, Role};
use crate::config::Settings;
use crate::proto::Agency;
use crate::reach::ReachError;
use tools::{AuditCommand, BenchArgs, CertsCommand, DlqCommand, PolicyCommand, TopicsCommand};
use tracing_subscriber::EnvFilter;

/// govlink: a data-sharing gateway between government agencies.
#[derive(Parser)]
#[command(name = "govlink", version)]
pub struct Cli {
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
        kind: crate::demo::Story,
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
    Bench(BenchArgs),
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

/// Runs the command line's command; how the process exits.
pub async fn main() -> ExitCode {
    crate::tls::install_process_provider();
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
        } => return tools::policy_check(file),
        Command::Certs { command } => return tools::certs(command),
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
            return crate::demo::run(&settings, kind, tls.as_deref(), &mut stdout).await;
        }
        Command::Rebuild { cases: false } => return tools::rebuild(&settings).await,
        Command::Rebuild { cases: true } => return tools::rebuild_cases(&settings).await,
        Command::Bench(args) => return tools::bench(&settings, args).await,
        Command::Audit { command } => return tools::audit(&settings, command).await,
        Command::Topics { command } => return tools::topics(&settings, command).await,
        Command::Dlq { command } => return tools::dlq(&settings, command).await,
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
