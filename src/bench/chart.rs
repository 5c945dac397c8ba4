//! The bench's latency chart: per scenario, govlink's latency distribution beside its
//! baseline's, as an SVG file (`--chart FILE`).

use plotters::prelude::*;

use super::report::{Comparison, Side};

/// Pixels per scenario panel, and the chart's width.
const PANEL_HEIGHT: u32 = 280;
const WIDTH: u32 = 900;
/// Where the maximum (quantile 1) sits on the x axis: half a nine past p99.99.
const MAX_AT: f64 = 4.5;

/// The x position of quantile `q`: its nines (p90 → 1, p99 → 2, …), the maximum at
/// [`MAX_AT`].
fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        MAX_AT
    } else {
        (-(1.0 - q).log10()).min(MAX_AT)
    }
}

/// The tick label at x position `x`.
fn tick(x: f64) -> String {
    match x {
        x if x >= MAX_AT => "max".into(),
        x if x < 0.01 => "p0".into(),
        x => {
            let q = 100.0 * (1.0 - 10f64.powf(-x));
            format!("p{}", (q * 100.0).round() / 100.0)
        }
    }
}

/// The SVG of `results`' latency distributions, one panel per scenario.
pub(super) fn svg(results: &[Comparison]) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let height = PANEL_HEIGHT * u32::try_from(results.len().max(1))?;
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((results.len().max(1), 1));
        for (panel, result) in panels.iter().zip(results) {
            draw_panel(panel, result)?;
        }
        root.present()?;
    }
    Ok(out)
}

fn draw_panel(
    panel: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    result: &Comparison,
) -> anyhow::Result<()> {
    let highest = [&result.govlink, &result.baseline]
        .iter()
        .flat_map(|side| side.distribution.iter().map(|&(_, ms)| ms))
        .fold(0.0f64, f64::max);
    let mut chart = ChartBuilder::on(panel)
        .caption(
            format!(
                "{}: throughput {:.2}x the baseline",
                result.scenario, result.throughput_ratio
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(56)
        // Headroom above the highest line for the legend.
        .build_cartesian_2d(0.0..MAX_AT, 0.0..(highest * 1.35).max(0.01))?;
    chart
        .configure_mesh()
        // Whole nines: p0, p90, p99, p99.9, p99.99 (the line ends at the maximum).
        .x_labels(5)
        .x_label_formatter(&|x| tick(*x))
        .x_desc("percentile")
        .y_desc("latency, ms")
        .draw()?;
    for (side, colour) in [(&result.govlink, BLUE), (&result.baseline, RED)] {
        chart
            .draw_series(LineSeries::new(points(side), colour.stroke_width(2)))?
            .label(format!("{} (p99 {:.2} ms)", side.name, side.p99_ms))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    Ok(())
}

fn points(side: &Side) -> Vec<(f64, f64)> {
    side.distribution
        .iter()
        .map(|&(q, ms)| (nines(q), ms))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{QUANTILES, Target};

    fn side(name: &str, scale: f64) -> Side {
        Side {
            name: name.into(),
            throughput: 100.0,
            p50_ms: scale,
            p99_ms: 2.0 * scale,
            p999_ms: 3.0 * scale,
            ops: 10,
            errors: 0,
            distribution: QUANTILES.iter().map(|&q| (q, scale * (1.0 + q))).collect(),
        }
    }

    #[test]
    fn the_axis_counts_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0), MAX_AT);
        assert_eq!(tick(0.0), "p0");
        assert_eq!(tick(2.0), "p99");
        assert_eq!(tick(MAX_AT), "max");
    }

    #[test]
    fn every_scenario_gets_a_panel_with_both_sides() {
        let target = Target {
            min_throughput_ratio: 0.8,
            p99_factor: None,
            p99_slack_ms: 0.0,
        };
        let results = vec![
            Comparison::new("publish", side("ours", 2.0), side("raw", 1.0), target),
            Comparison::new(
                "lookup",
                side("lookups", 4.0),
                side("pipeline", 0.5),
                target,
            ),
        ];
        let svg = svg(&results).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "publish:",
            "lookup:",
            "ours (p99 4.00 ms)",
            "pipeline (p99 1.00 ms)",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        // Per panel, a line of 12 points per side, each in its side's colour.
        for colour in ["#0000FF", "#FF0000"] {
            let lines: Vec<&str> = svg
                .split("<polyline")
                .filter(|p| p.contains(&format!(r#"stroke="{colour}" stroke-width="2""#)))
                .collect();
            assert_eq!(lines.len(), 2, "{colour}");
            for line in lines {
                let points = line
                    .split("points=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                assert_eq!(points.split_whitespace().count(), QUANTILES.len());
            }
        }
    }
}
