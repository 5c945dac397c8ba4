//! `govlink bench`: each hot path of govlink measured side by side with its raw baseline
//! (rdkafka or Redis wired by hand) in one run, on the same broker and the same store,
//! rounds interleaved (govlink, baseline, govlink, …) so the noise of a shared machine
//! falls on both. On embedded defaults it runs on the mock cluster and the in-memory
//! store; with `kafka` / `redis` set, on real ones.

mod chart;
mod env;
mod freshness;
mod lookup;
mod measure;
mod memory;
mod people;
mod publish;
mod rebuild;
mod report;

pub use report::{Comparison, Side, Target, table};

use std::io::Write;
use std::path::PathBuf;

use crate::config::Settings;
use env::Env;

/// Which path to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A gRPC publish through an adapter against a raw rdkafka producer.
    Publish,
    /// A batch publish of 100 against the same records through rdkafka.
    PublishBatch,
    /// `GetPersonProfile` on cache hits against a raw store read of the same keys.
    Lookup,
    /// Publish, then `GetRecord` at the ack's position, against raw produce → consume.
    Freshness,
    /// `govlink rebuild` of the store from the topics against a raw read of the topics.
    Rebuild,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 5] = [
        Scenario::Publish,
        Scenario::PublishBatch,
        Scenario::Lookup,
        Scenario::Freshness,
        Scenario::Rebuild,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Publish => "publish",
            Scenario::PublishBatch => "publish-batch",
            Scenario::Lookup => "lookup",
            Scenario::Freshness => "freshness",
            Scenario::Rebuild => "rebuild",
        }
    }
}

impl Scenario {
    /// Why the scenario cannot run on `settings`, if it cannot.
    pub fn cannot_run(self, settings: &Settings) -> Option<&'static str> {
        match self {
            Scenario::Rebuild if settings.redis.is_none() => {
                Some("it rebuilds a Redis store; run with --redis")
            }
            _ => None,
        }
    }
}

/// How much to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Operations per side per round (records for publishes, lookups for lookups).
    pub records: u64,
    /// Concurrent clients per side.
    pub concurrency: usize,
    /// Rounds; each runs govlink's path, then the baseline.
    pub rounds: u32,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Where to write the latency chart (SVG).
    pub chart: Option<PathBuf>,
    /// The govlink executable the memory report runs as a resolver (None: this one).
    pub govlink_exe: Option<PathBuf>,
}

impl BenchOptions {
    /// A few seconds in all: enough to prove every scenario runs and yields numbers.
    pub fn quick() -> BenchOptions {
        BenchOptions {
            records: 200,
            concurrency: 4,
            rounds: 1,
            json: None,
            chart: None,
            govlink_exe: None,
        }
    }
}

/// Runs `scenarios` against an app built from `settings`, narrating to `out`; returns the
/// comparisons (also printed as a table, and written as JSON when asked).
pub async fn run(
    settings: &Settings,
    scenarios: &[Scenario],
    options: &BenchOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Vec<Comparison>> {
    let env = Env::start(settings).await?;
    writeln!(
        out,
        "govlink bench: {} on {}, {} records x {} rounds, concurrency {}",
        scenarios
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        env.describe(),
        options.records,
        options.rounds,
        options.concurrency
    )?;
    let mut results = Vec::new();
    for scenario in scenarios {
        if let Some(reason) = scenario.cannot_run(settings) {
            writeln!(out, "skipped {}: {reason}", scenario.name())?;
            continue;
        }
        let result = match scenario {
            Scenario::Publish => publish::single(&env, options).await,
            Scenario::PublishBatch => publish::batch(&env, options).await,
            Scenario::Lookup => lookup::run(&env, options).await,
            Scenario::Freshness => freshness::run(&env, options).await,
            Scenario::Rebuild => rebuild::run(&env, options).await,
        };
        results.push(result?);
    }
    env.stop().await?;
    write!(out, "{}", table(&results))?;
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&results)?)?;
        writeln!(out, "report written to {}", path.display())?;
    }
    if let Some(path) = &options.chart {
        std::fs::write(path, chart::svg(&results)?)?;
        writeln!(out, "chart written to {}", path.display())?;
    }
    let silent: Vec<&str> = results
        .iter()
        .filter(|r| r.govlink.ops == 0 || r.baseline.ops == 0)
        .map(|r| r.scenario)
        .collect();
    anyhow::ensure!(
        silent.is_empty(),
        "no measurements for: {}",
        silent.join(", ")
    );
    Ok(results)
}

/// A progress bar over `len` steps for one scenario, on stderr when it is a terminal.
fn progress(scenario: Scenario, len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(scenario.name());
    bar
}
