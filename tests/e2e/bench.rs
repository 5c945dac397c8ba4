//! `govlink bench`: every scenario runs against the suite's broker and Redis and yields
//! numbers on both sides, in the table and in the JSON report. Timings are not asserted.

use govlink::bench::{BenchOptions, Scenario, run};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn bench_all_quick_measures_every_scenario_on_both_sides() {
    let json = std::env::temp_dir().join(format!("{}.json", unique("bench")));
    let chart = json.with_extension("svg");
    let options = BenchOptions {
        json: Some(json.clone()),
        chart: Some(chart.clone()),
        govlink_exe: Some(env!("CARGO_BIN_EXE_govlink").into()),
        ..BenchOptions::quick()
    };
    let mut out = Vec::new();
    let results = run(&test_settings(), &Scenario::ALL, &options, &mut out)
        .await
        .expect("the bench runs");
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("skipped"), "{text}");

    let names: Vec<&str> = results.iter().map(|r| r.scenario).collect();
    let expected: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names, expected, "{text}");
    for r in &results {
        for side in [&r.govlink, &r.baseline] {
            assert!(
                side.ops > 0,
                "{}: {} measured nothing\n{text}",
                r.scenario,
                side.name
            );
            assert!(
                side.throughput > 0.0,
                "{}: {}\n{text}",
                r.scenario,
                side.name
            );
            assert!(
                side.p50_ms > 0.0 && side.p99_ms >= side.p50_ms,
                "{}: {} percentiles\n{text}",
                r.scenario,
                side.name
            );
        }
        assert!(text.contains(r.scenario), "{text}");
        // Where the time goes, part by part, for every path. Only a rebuild's wait for
        // events may be nothing: its reading can hide entirely behind its writes.
        let may_be_nothing = |part: &str| part.starts_with("waiting for the next event");
        assert!(
            r.breakdown.len() >= 2
                && r.breakdown
                    .iter()
                    .all(|(part, ms)| *ms > 0.0 || (may_be_nothing(part) && *ms == 0.0)),
            "{}: breakdown {:?}\n{text}",
            r.scenario,
            r.breakdown
        );
    }
    let rebuild_parts: Vec<&str> = results[4]
        .breakdown
        .iter()
        .map(|(p, _)| p.as_str())
        .collect();
    assert!(
        rebuild_parts.iter().any(|p| p.starts_with("store writes")),
        "{rebuild_parts:?}"
    );
    let rebuild = results.iter().find(|r| r.scenario == "rebuild").unwrap();
    let note = |prefix: &str| {
        rebuild
            .notes
            .iter()
            .find(|(name, _)| name.starts_with(prefix))
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("no note {prefix}\n{text}"))
    };
    assert!(note("redis bytes per record") > 0.0, "{text}");
    assert!(note("resolver resident MiB") > 0.0, "{text}");
    assert!(note("records materialized") > 0.0, "{text}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).unwrap();
    let _ = std::fs::remove_file(&json);
    let in_json: Vec<&str> = report
        .as_array()
        .expect("a list of comparisons")
        .iter()
        .map(|c| c["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(in_json, expected);
    for c in report.as_array().unwrap() {
        assert!(c["govlink"]["ops"].as_u64().unwrap() > 0, "{c}");
        assert!(c["baseline"]["ops"].as_u64().unwrap() > 0, "{c}");
        assert!(
            !c["govlink"]["distribution"].as_array().unwrap().is_empty(),
            "{c}"
        );
    }

    let svg = std::fs::read_to_string(&chart).expect("the chart");
    let _ = std::fs::remove_file(&chart);
    assert!(svg.starts_with("<svg"), "{svg}");
    for name in expected {
        assert!(svg.contains(&format!("{name}:")), "no panel for {name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scenarios_that_need_redis_are_skipped_with_a_line_on_the_in_memory_store() {
    let settings = govlink::config::Settings {
        redis: None,
        ..test_settings()
    };
    let mut out = Vec::new();
    let results = run(
        &settings,
        &[Scenario::Rebuild],
        &BenchOptions::quick(),
        &mut out,
    )
    .await
    .expect("a skipped scenario is not a failure");
    let text = String::from_utf8(out).unwrap();
    assert!(results.is_empty(), "{text}");
    assert!(text.contains("skipped rebuild: "), "{text}");
}
