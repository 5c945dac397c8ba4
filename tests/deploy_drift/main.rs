//! The deployment files checked against the code, so they cannot drift from it: the
//! Dockerfile and its health check, deploy/docker-compose.yml, the Prometheus and Grafana
//! files, the Kubernetes manifests in deploy/k8s/ and the CI workflow. Each is parsed and
//! compared with what the code defines: ports, `GOVLINK_*` variables and settings files,
//! health and metrics paths, metric families, topic names, the roles processes start in,
//! and the mutual TLS every server is given. Nothing here needs a broker, Redis or Docker.

mod code;
mod compose;
mod dockerfile;
mod files;
mod k8s;
mod observability;
mod tls;
mod workflow;

use code::{metric_family, setting_variables, topics_in, variables_in};
use files::read;

/// Files whose every `GOVLINK_*` variable, topic name and metric name must be real.
const SCANNED: &[&str] = &[
    "deploy/Dockerfile",
    "deploy/healthcheck.sh",
    "deploy/docker-compose.yml",
    "deploy/prometheus/prometheus.yml",
    "deploy/grafana/provisioning/datasources/prometheus.yml",
    "deploy/grafana/provisioning/dashboards/govlink.yml",
    "deploy/grafana/dashboards/govlink.json",
    "deploy/README.md",
    ".github/workflows/ci.yml",
    "docs/operations.md",
];

fn scanned_files() -> Vec<String> {
    let mut files: Vec<String> = SCANNED.iter().map(|f| (*f).to_owned()).collect();
    files.extend(
        files::k8s_files()
            .into_iter()
            .map(|f| format!("deploy/k8s/{f}")),
    );
    files
}

#[test]
fn every_variable_named_in_the_deploy_files_and_docs_is_a_setting_or_a_test_variable() {
    // The test suite's own variables (GOVLINK_TEST_KAFKA, ...) are documented in the
    // script that sets them; anything else must be a setting.
    let mut known = setting_variables();
    known.extend(variables_in(&read("scripts/test.sh")));
    for file in scanned_files() {
        for name in variables_in(&read(&file)) {
            assert!(
                known.contains(&name),
                "{file}: {name} is neither a setting (src/config/mod.rs Settings, read as \
                 GOVLINK_<FIELD>) nor GOVLINK_CONFIG nor a variable of scripts/test.sh"
            );
        }
    }
}

/// govlink refuses to start with a `GOVLINK_` variable that is neither a setting nor one
/// of `OTHER_VARIABLES`; so every variable the repository sets or reads must be one, and
/// that list must name only variables something here uses.
#[test]
fn every_govlink_variable_the_repository_names_is_a_setting_or_one_govlink_lets_pass() {
    use std::collections::BTreeSet;
    let settings = setting_variables();
    let others: BTreeSet<String> = govlink::config::OTHER_VARIABLES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut used_others = BTreeSet::new();
    for file in files::text_files() {
        // The list itself, and the tests of the names it refuses.
        let exempt = [
            "src/config/sources.rs",
            "src/config/tests.rs",
            "tests/e2e/configuration.rs",
        ];
        if exempt.contains(&file.as_str()) {
            continue;
        }
        // `GOVLINK_TEST_*` and the like are prose about several names.
        for name in variables_in(&read(&file))
            .into_iter()
            .filter(|n| !n.ends_with('_'))
        {
            if others.contains(&name) {
                used_others.insert(name);
                continue;
            }
            assert!(
                settings.contains(&name),
                "{file}: {name} is neither a setting nor in govlink::config::OTHER_VARIABLES, \
                 so govlink refuses to start while it is set"
            );
        }
    }
    assert_eq!(
        used_others, others,
        "OTHER_VARIABLES lets pass exactly the variables the repository uses that are not \
         settings"
    );
}

#[test]
fn every_topic_named_in_the_deploy_files_and_docs_is_one_govlink_uses() {
    let known = govlink::kafka::Topics::default().all();
    for file in scanned_files() {
        for topic in topics_in(&read(&file)) {
            assert!(
                known.contains(&topic),
                "{file}: {topic} is not a topic of govlink::kafka::Topics ({known:?})"
            );
        }
    }
}

#[test]
fn every_metric_named_in_the_deploy_files_and_docs_is_one_govlink_exposes() {
    for file in scanned_files() {
        for series in code::metrics_in(&read(&file)) {
            assert!(
                metric_family(&series).is_some(),
                "{file}: {series} is not a metric govlink exposes (govlink::telemetry::metrics::NAMES, \
                 histograms also as _bucket, _sum and _count)"
            );
        }
    }
}
