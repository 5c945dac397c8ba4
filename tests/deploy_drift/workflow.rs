//! .github/workflows/ci.yml: it runs the suite on Tansu and on the compose file's Apache
//! Kafka, with the Tansu that scripts/test.sh pins.

use serde_yaml_ng::Value;

use crate::files::{items, read, string, yaml};

const FILE: &str = ".github/workflows/ci.yml";

/// Every `run` of every job, once per matrix entry with `${{ matrix.KEY }}` filled in.
fn commands(workflow: &Value) -> Vec<String> {
    let mut commands = Vec::new();
    for (_, job) in workflow["jobs"].as_mapping().expect("jobs") {
        let entries: Vec<&Value> = items(&job["strategy"]["matrix"]["include"])
            .iter()
            .collect();
        let none = Value::Null;
        let entries = if entries.is_empty() {
            vec![&none]
        } else {
            entries
        };
        for step in items(&job["steps"]) {
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            for entry in &entries {
                let mut command = run.to_owned();
                for (key, value) in entry.as_mapping().into_iter().flatten() {
                    let key = string(key, FILE);
                    if let Some(value) = value.as_str() {
                        command = command.replace(&format!("${{{{ matrix.{key} }}}}"), value);
                    }
                }
                commands.push(command);
            }
        }
    }
    commands
}

#[test]
fn the_workflow_runs_the_suite_on_tansu_and_on_dockerized_apache_kafka() {
    let workflow = yaml(FILE);
    assert!(
        !workflow["on"].is_null(),
        "{FILE}: `on` (read as a string key)"
    );
    let commands = commands(&workflow);
    let runs = |what: &dyn Fn(&str) -> bool| commands.iter().any(|c| c.lines().any(what));
    assert!(
        runs(&|line| {
            line.trim() == "bash .ci/run"
                || (line.contains("scripts/test.sh") && !line.contains("--docker"))
        }),
        "{FILE}: no step runs the suite on Tansu (.ci/run or scripts/test.sh): {commands:#?}"
    );
    assert!(
        runs(&|line| line.contains("scripts/test.sh --docker")),
        "{FILE}: no step runs `scripts/test.sh --docker`: {commands:#?}"
    );
}

#[test]
fn the_workflow_builds_and_caches_the_tansu_that_test_sh_pins() {
    let script = read("scripts/test.sh");
    let constant = |name: &str| {
        script
            .lines()
            .find_map(|l| l.strip_prefix(&format!("readonly {name}=")))
            .unwrap_or_else(|| panic!("scripts/test.sh: {name}"))
            .to_owned()
    };
    let (version, features) = (constant("TANSU_VERSION"), constant("TANSU_FEATURES"));
    let workflow = read(FILE);
    let installs: Vec<&str> = workflow
        .lines()
        .filter(|l| l.contains("cargo install"))
        .collect();
    assert!(
        installs.iter().any(|l| l.contains("tansu")),
        "{FILE}: Tansu is built once and cached"
    );
    for line in installs {
        assert!(
            line.contains(&format!("--version {version}"))
                && line.contains(&format!("--features {features}")),
            "{FILE}: `{}` must install Tansu {version} with {features}, as scripts/test.sh does",
            line.trim()
        );
    }
    for line in workflow.lines().filter(|l| l.contains("tansu-")) {
        assert!(
            line.contains(&format!("tansu-{version}")),
            "{FILE}: `{}` names another Tansu version than {version}",
            line.trim()
        );
        if line.contains("key:") {
            assert!(
                line.contains(&features.replace(',', "+")),
                "{FILE}: the cache key `{}` must name the features {features}",
                line.trim()
            );
        }
    }
}
