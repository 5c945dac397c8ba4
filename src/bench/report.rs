//! What a bench run reports: per scenario, govlink's path beside its raw baseline, the
//! ratio and whether the target holds; as a table and as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::measure::Samples;

/// A scenario's target, as the performance table states it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Target {
    /// Govlink's throughput at least this fraction of the baseline's (0 when not a target).
    pub min_throughput_ratio: f64,
    /// Govlink's p99 at most `baseline p99 × p99_factor + p99_slack_ms` (None: no p99 target).
    pub p99_factor: Option<f64>,
    /// See `p99_factor`.
    pub p99_slack_ms: f64,
}

/// One side's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// What ran, e.g. "GetPersonProfile" or "raw Redis pipeline".
    pub name: String,
    /// Records per second.
    pub throughput: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Operations measured and failed.
    pub ops: u64,
    pub errors: u64,
    /// The latency distribution: (quantile, ms) at [`QUANTILES`].
    pub distribution: Vec<(f64, f64)>,
}

/// The quantiles a side's distribution is given at: the chart's points.
pub(super) const QUANTILES: [f64; 12] = [
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

impl Side {
    /// The figures of `samples`.
    pub(super) fn of(name: &str, samples: &Samples) -> Side {
        Side {
            name: name.to_owned(),
            throughput: samples.throughput(),
            p50_ms: samples.latency_ms(0.5),
            p99_ms: samples.latency_ms(0.99),
            p999_ms: samples.latency_ms(0.999),
            ops: samples.ops,
            errors: samples.errors,
            distribution: QUANTILES
                .iter()
                .map(|&q| (q, samples.latency_ms(q)))
                .collect(),
        }
    }
}

/// A scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The scenario, e.g. `publish`.
    pub scenario: &'static str,
    pub govlink: Side,
    pub baseline: Side,
    /// Further baselines of the same run, shown under the first with govlink's
    /// throughput over theirs; the target is against `baseline` only.
    pub other_baselines: Vec<Side>,
    /// govlink throughput / baseline throughput.
    pub throughput_ratio: f64,
    pub target: Target,
    /// Whether every target holds.
    pub holds: bool,
    /// Where govlink's time goes, measured part by part: (what, with its basis, e.g.
    /// "store read (p50)"; milliseconds).
    pub breakdown: Vec<(String, f64)>,
    /// Extra figures (memory, records), name → value with its unit in the name.
    pub notes: Vec<(String, f64)>,
}

impl Comparison {
    /// Compares two sides against `target`.
    pub fn new(
        scenario: &'static str,
        govlink: Side,
        baseline: Side,
        target: Target,
    ) -> Comparison {
        let throughput_ratio = if baseline.throughput > 0.0 {
            govlink.throughput / baseline.throughput
        } else {
            0.0
        };
        let throughput_ok = throughput_ratio >= target.min_throughput_ratio;
        let p99_ok = target
            .p99_factor
            .is_none_or(|factor| govlink.p99_ms <= baseline.p99_ms * factor + target.p99_slack_ms);
        Comparison {
            scenario,
            holds: throughput_ok && p99_ok && govlink.ops > 0 && baseline.ops > 0,
            govlink,
            baseline,
            other_baselines: Vec::new(),
            throughput_ratio,
            target,
            breakdown: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The target in words, e.g. `≥ 0.8×, p99 ≤ raw + 2 ms`.
    fn target_text(&self) -> String {
        let t = self.target;
        let mut text = String::new();
        if t.min_throughput_ratio > 0.0 {
            let _ = write!(text, "≥ {:.1}×", t.min_throughput_ratio);
        }
        if let Some(factor) = t.p99_factor {
            if !text.is_empty() {
                text.push_str(", ");
            }
            if factor == 1.0 {
                let _ = write!(text, "p99 ≤ raw + {} ms", t.p99_slack_ms);
            } else {
                let _ = write!(text, "p99 ≤ {factor}× raw + {} ms", t.p99_slack_ms);
            }
        }
        text
    }
}

/// The table printed at the end of a run.
pub fn table(results: &[Comparison]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<28} {:>11} {:>9} {:>9} {:>9} {:>7}  {:<26} holds",
        "scenario", "path", "records/s", "p50 ms", "p99 ms", "p999 ms", "ratio", "target"
    );
    for r in results {
        let others = r.other_baselines.iter().map(|side| {
            let ratio = if side.throughput > 0.0 {
                r.govlink.throughput / side.throughput
            } else {
                0.0
            };
            (side, Some(ratio), false)
        });
        let sides = [
            (&r.govlink, Some(r.throughput_ratio), true),
            (&r.baseline, None, false),
        ];
        for (side, ratio, ours) in sides.into_iter().chain(others) {
            let _ = writeln!(
                out,
                "{:<14} {:<28} {:>11.0} {:>9.2} {:>9.2} {:>9.2} {:>7}  {:<26} {}",
                if ours { r.scenario } else { "" },
                side.name,
                side.throughput,
                side.p50_ms,
                side.p99_ms,
                side.p999_ms,
                ratio.map_or(String::new(), |x| format!("{x:.2}×")),
                if ours { r.target_text() } else { String::new() },
                match (ours, r.holds) {
                    (false, _) => "",
                    (true, true) => "yes",
                    (true, false) => "NO",
                },
            );
        }
        for (part, ms) in &r.breakdown {
            let _ = writeln!(out, "{:<14}   {part}: {ms:.3} ms", "");
        }
        for (name, value) in &r.notes {
            let _ = writeln!(out, "{:<14}   {name}: {value:.1}", "");
        }
    }
    out
}
