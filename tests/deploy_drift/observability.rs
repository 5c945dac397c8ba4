//! Prometheus and Grafana of deploy/docker-compose.yml: Prometheus scrapes every govlink
//! container's metrics path on the admin port; the dashboard reads metric families govlink
//! exposes, through the datasource Grafana is given.

use std::collections::BTreeSet;

use govlink::admin::paths;
use govlink::telemetry::metrics::NAMES;

use crate::code::{admin_port, is_histogram, metric_family, metrics_in};
use crate::compose::{self, FILE, service, services};
use crate::files::{items, read, string, yaml};

const PROMETHEUS: &str = "deploy/prometheus/prometheus.yml";
const DATASOURCES: &str = "deploy/grafana/provisioning/datasources/prometheus.yml";
const PROVIDERS: &str = "deploy/grafana/provisioning/dashboards/govlink.yml";
const DASHBOARD: &str = "deploy/grafana/dashboards/govlink.json";

#[test]
fn prometheus_scrapes_every_govlink_container_on_its_metrics_path() {
    let compose = compose::compose();
    let services = services(&compose);
    let prometheus = service(&services, "prometheus");
    assert_eq!(
        prometheus
            .mounted_file("/etc/prometheus/prometheus.yml")
            .as_deref(),
        Some(PROMETHEUS),
        "{FILE}: prometheus must be given {PROMETHEUS}"
    );
    let govlink: BTreeSet<String> = services
        .iter()
        .filter(|s| s.is_server())
        .map(|s| s.name.clone())
        .collect();

    let config = yaml(PROMETHEUS);
    let mut scraped = BTreeSet::new();
    for job in items(&config["scrape_configs"]) {
        let name = string(&job["job_name"], PROMETHEUS);
        for target in items(&job["static_configs"])
            .iter()
            .flat_map(|c| items(&c["targets"]))
        {
            let target = string(target, PROMETHEUS);
            let (host, port) = target.rsplit_once(':').expect("host:port");
            if !govlink.contains(host) {
                continue;
            }
            assert_eq!(
                port,
                admin_port().to_string(),
                "{PROMETHEUS} job {name}: {target} is not the admin port"
            );
            assert_eq!(
                job["metrics_path"].as_str(),
                Some(paths::METRICS),
                "{PROMETHEUS} job {name}: metrics_path must be {}",
                paths::METRICS
            );
            scraped.insert(host.to_owned());
        }
    }
    assert_eq!(
        scraped, govlink,
        "{PROMETHEUS}: every govlink service of {FILE}, and only those"
    );
}

#[test]
fn grafana_is_given_the_prometheus_datasource_and_the_dashboard_directory() {
    let compose = compose::compose();
    let services = services(&compose);
    let grafana = service(&services, "grafana");
    let volumes = grafana.volumes();
    assert!(
        volumes.contains(&(
            "./grafana/provisioning".into(),
            "/etc/grafana/provisioning".into()
        )),
        "{FILE}: grafana must be given deploy/grafana/provisioning ({volumes:?})"
    );

    let datasources = yaml(DATASOURCES);
    let prometheus = items(&datasources["datasources"])
        .iter()
        .find(|d| d["type"].as_str() == Some("prometheus"))
        .expect("a prometheus datasource");
    let url = string(&prometheus["url"], DATASOURCES);
    let (host, port) = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .split_once(':')
        .expect("http://host:port");
    let port: u16 = port.parse().expect("port");
    assert!(
        service(&services, host)
            .ports()
            .iter()
            .any(|(_, container)| *container == port),
        "{DATASOURCES}: {url} is not the prometheus service's port"
    );

    let providers = yaml(PROVIDERS);
    for provider in items(&providers["providers"]) {
        let path = string(&provider["options"]["path"], PROVIDERS);
        let mounted = volumes.iter().find(|(_, target)| target == path);
        assert_eq!(
            mounted.map(|(source, _)| source.as_str()),
            Some("./grafana/dashboards"),
            "{PROVIDERS}: {path} must be where {FILE} mounts deploy/grafana/dashboards"
        );
    }
}

/// Every panel of a dashboard, rows' panels included.
fn panels(value: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut found = Vec::new();
    for panel in value["panels"].as_array().into_iter().flatten() {
        found.push(panel);
        found.extend(panels(panel));
    }
    found
}

#[test]
fn the_dashboard_graphs_every_metric_family_by_its_real_name() {
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).expect(DASHBOARD);
    let datasources = yaml(DATASOURCES);
    let uids: BTreeSet<&str> = items(&datasources["datasources"])
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    let mut graphed = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        let whose = format!("{DASHBOARD} panel {title:?}");
        for datasource in std::iter::once(&panel["datasource"]).chain(
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| &t["datasource"]),
        ) {
            if let Some(uid) = datasource["uid"].as_str() {
                assert!(
                    uids.contains(uid),
                    "{whose}: datasource {uid:?} is not provisioned ({uids:?})"
                );
            }
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            for series in metrics_in(expr) {
                let family = metric_family(&series).unwrap_or_else(|| {
                    panic!(
                        "{whose}: {series} is not a metric govlink exposes; the families are \
                         {NAMES:?} (histograms also as _bucket, _sum, _count)"
                    )
                });
                graphed.insert(family);
                check_usage(&series, family, expr, &whose);
            }
        }
    }
    let missing: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|family| !graphed.contains(family))
        .collect();
    assert!(
        missing.is_empty(),
        "{DASHBOARD}: no panel shows {missing:?}; give each metric family a panel"
    );
}

/// A counter only makes sense as a rate or an increase, and a histogram's buckets only
/// under histogram_quantile.
fn check_usage(series: &str, family: &str, expr: &str, whose: &str) {
    for (at, _) in expr.match_indices(series) {
        let before = expr[..at].trim_end();
        if family.ends_with("_total") {
            assert!(
                ["rate(", "irate(", "increase("]
                    .iter()
                    .any(|f| before.ends_with(f)),
                "{whose}: the counter {series} must be read through rate() or increase(): {expr}"
            );
        }
    }
    if is_histogram(family) && series.ends_with("_bucket") {
        assert!(
            expr.contains("histogram_quantile("),
            "{whose}: {series} belongs under histogram_quantile(): {expr}"
        );
    }
}
