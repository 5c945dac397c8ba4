//! The operator tools' commands: topics, dead letters, certificates, the audit trail, the
//! policy, the rebuilds and the benchmarks. Each parses its arguments and prints what the
//! library's tool returns.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::config::Settings;

#[derive(Subcommand)]
pub(super) enum TopicsCommand {
    /// Every govlink topic: partitions, end offsets (sum of high watermarks), cleanup
    /// policy, retention and min ISR; a missing topic says so.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print a topic's messages decoded to JSON (identifiers masked), then stop at its end.
    Tail(crate::tools::topics::TailOptions),
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
pub(super) enum DlqCommand {
    /// Every dead letter: reason, original topic/partition/offset, time, replays it went
    /// through and its status (sent, pending, held); then the count by reason.
    List {
        /// Only letters of this reason: undecodable, invalid, wrong-key,
        /// not-a-record-topic, store-refused or other.
        #[arg(long)]
        reason: Option<crate::resolver::dead_letter::DeadLetterKind>,
        /// One JSON object per line (the letter decoded), then a summary line.
        #[arg(long)]
        json: bool,
    },
    /// Send the letters no earlier replay sent back to their record topic (original key
    /// and bytes) and remember how far it got; prints the count by reason. A letter
    /// whose event was replayed before and failed again is held (see `--again`).
    Replay(crate::tools::dlq::ReplayOptions),
}

/// `govlink topics ...`: the logic is in `crate::tools::topics`.
pub(super) async fn topics(settings: &Settings, command: TopicsCommand) -> anyhow::Result<()> {
    use crate::tools::topics;
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

/// `govlink dlq ...`: the logic is in `crate::tools::dlq`.
pub(super) async fn dlq(settings: &Settings, command: DlqCommand) -> anyhow::Result<()> {
    use crate::tools::dlq;
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
pub(super) enum CertsCommand {
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

/// `govlink certs ...`: the logic is in `crate::tls::certs`.
pub(super) fn certs(command: &CertsCommand) -> anyhow::Result<()> {
    use crate::tls::certs::CertsDir;
    match command {
        CertsCommand::Init { out } => {
            let dir = CertsDir::new(out);
            dir.init()?;
            println!(
                "wrote a development CA, the server certificate, {} client certificates and an \
                 empty CRL to {}",
                crate::tls::certs::DEV_IDENTITIES.len(),
                out.display()
            );
            println!("run secured: govlink dev --tls {}", out.display());
        }
        CertsCommand::Issue {
            dir,
            requester,
            days,
        } => {
            let requester = crate::identity::Requester::parse(requester)
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
pub(super) enum AuditCommand {
    /// Verify every chain of the audit trail against its hashes and checkpoints; prints
    /// one line per chain and exits non-zero if any failed.
    Verify {
        /// Skip entries before this RFC 3339 time (chains are verified from there on).
        #[arg(long, value_parser = crate::audit::verify::parse_time)]
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
pub(super) enum PolicyCommand {
    /// Validate a policy file and print who may see what; exits non-zero naming the
    /// line of the first problem.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
}

/// `govlink bench`'s arguments.
#[derive(Args)]
pub(super) struct BenchArgs {
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
}

/// `govlink bench`: the report on stdout.
pub(super) async fn bench(settings: &Settings, args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        scenario,
        records,
        concurrency,
        rounds,
        quick,
        json,
        chart,
    } = args;
    let options = if quick {
        crate::bench::BenchOptions {
            json,
            chart,
            ..crate::bench::BenchOptions::quick()
        }
    } else {
        crate::bench::BenchOptions {
            records,
            concurrency,
            rounds,
            json,
            chart,
            govlink_exe: None,
        }
    };
    let mut stdout = std::io::stdout();
    crate::bench::run(settings, &scenario.scenarios(), &options, &mut stdout).await?;
    Ok(())
}

/// `govlink audit verify`: the report on stdout; an error if the trail failed.
pub(super) async fn audit(settings: &Settings, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify {
        from,
        json,
        ca,
        allow_unsigned,
    } = command;
    let mut stdout = std::io::stdout();
    let signatures = crate::tools::audit_verify::SignatureCheck { ca, allow_unsigned };
    let report =
        crate::tools::audit_verify::run(settings, from, &signatures, json, &mut stdout).await?;
    if !report.is_clean() {
        anyhow::bail!("the audit trail failed verification");
    }
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum BenchArg {
    Publish,
    PublishBatch,
    Lookup,
    Freshness,
    Rebuild,
    All,
}

impl BenchArg {
    fn scenarios(self) -> Vec<crate::bench::Scenario> {
        use crate::bench::Scenario;
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

/// `govlink policy check FILE`: one line, compiler style, on a problem.
pub(super) fn policy_check(file: &std::path::Path) -> anyhow::Result<()> {
    match crate::resolver::policy::Policy::load(file) {
        Ok(policy) => print!("{}", policy.table()),
        // A read error names the file already.
        Err(e) if e.line().is_none() => anyhow::bail!("{e}"),
        Err(e) => anyhow::bail!("{}: {e}", file.display()),
    }
    Ok(())
}

/// `govlink rebuild` with a progress bar on stderr and a final count on stdout.
pub(super) async fn rebuild(settings: &Settings) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta}) {msg}",
        )?
        .progress_chars("=> "),
    );
    let report = crate::tools::rebuild::rebuild(settings, |done, total| {
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
pub(super) async fn rebuild_cases(settings: &Settings) -> anyhow::Result<()> {
    let bar =
        indicatif::ProgressBar::new_spinner().with_style(indicatif::ProgressStyle::with_template(
            "{spinner} reading the case topic: {pos} events ({per_sec})",
        )?);
    let report =
        crate::tools::rebuild_cases::rebuild(settings, |events| bar.set_position(events)).await;
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
