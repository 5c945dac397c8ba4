//! deploy/k8s/: every role runs as a Deployment that starts with what the code needs,
//! listens, is probed and scraped where the code serves; Services, disruption budgets and
//! the resolver's autoscaler point at those Deployments.

use std::collections::{BTreeMap, BTreeSet};

use govlink::cases::calendar::WorkCalendar;
use govlink::ops::paths;
use govlink::resolver::policy::Policy;
use serde_yaml_ng::Value;

use crate::code::{
    Role, admin_port, assert_container_listeners, assert_settings_variables, grpc_port,
    load_settings,
};
use crate::dockerfile::image_env;
use crate::files::{items, k8s_files, scalar, string, yaml, yaml_documents};

const DIR: &str = "deploy/k8s";

/// Every object of the manifests, with the file it is in.
fn objects() -> Vec<(String, Value)> {
    k8s_files()
        .into_iter()
        .filter(|name| name != "kustomization.yaml")
        .flat_map(|name| {
            yaml_documents(&format!("{DIR}/{name}"))
                .into_iter()
                .map(move |object| (name.clone(), object))
        })
        .collect()
}

fn of_kind<'o>(objects: &'o [(String, Value)], kind: &str) -> Vec<&'o Value> {
    objects
        .iter()
        .filter(|(_, o)| o["kind"].as_str() == Some(kind))
        .map(|(_, o)| o)
        .collect()
}

fn name(object: &Value) -> &str {
    string(&object["metadata"]["name"], "metadata.name")
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every label of `selector` is among `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let kustomization = yaml(&format!("{DIR}/kustomization.yaml"));
    let listed: BTreeSet<String> = items(&kustomization["resources"])
        .iter()
        .map(|r| string(r, "resources").to_owned())
        .collect();
    let present: BTreeSet<String> = k8s_files()
        .into_iter()
        .filter(|name| name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "{DIR}/kustomization.yaml resources");
    let images: BTreeSet<&str> = items(&kustomization["images"])
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    for (file, deployment) in objects()
        .iter()
        .filter(|(_, o)| o["kind"].as_str() == Some("Deployment"))
    {
        for container in items(&deployment["spec"]["template"]["spec"]["containers"]) {
            let image = string(&container["image"], file);
            assert!(
                images.contains(image),
                "{DIR}/{file}: image {image} is not set by the kustomization's images"
            );
        }
    }
}

/// A pod's files from ConfigMap volumes: path → content.
fn configmap_files(
    pod: &Value,
    container: &Value,
    configmaps: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for mount in items(&container["volumeMounts"]) {
        let volume = items(&pod["volumes"])
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("a mount's volume");
        let Some(configmap) = volume["configMap"]["name"].as_str() else {
            continue;
        };
        let dir = string(&mount["mountPath"], "mountPath").trim_end_matches('/');
        for (key, content) in configmaps.get(configmap).into_iter().flatten() {
            files.insert(format!("{dir}/{key}"), content.clone());
        }
    }
    files
}

/// The container port `port` (a name or a number) refers to.
fn container_port(container: &Value, port: &Value) -> Option<u16> {
    items(&container["ports"])
        .iter()
        .find(|p| match port {
            Value::String(name) => p["name"].as_str() == Some(name),
            other => p["containerPort"] == *other,
        })
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

#[test]
fn every_role_runs_as_a_deployment_that_starts_listens_and_is_probed_as_the_code_expects() {
    let objects = objects();
    let configmaps: BTreeMap<String, BTreeMap<String, String>> = of_kind(&objects, "ConfigMap")
        .into_iter()
        .map(|c| (name(c).to_owned(), string_map(&c["data"])))
        .collect();
    let image_env = image_env();
    let mut roles = BTreeSet::new();
    for deployment in of_kind(&objects, "Deployment") {
        let whose = format!("{DIR} Deployment {}", name(deployment));
        let template = &deployment["spec"]["template"];
        let pod = &template["spec"];
        let containers = items(&pod["containers"]);
        assert_eq!(containers.len(), 1, "{whose}: one container");
        let container = &containers[0];

        let args: Vec<String> = items(&container["args"])
            .iter()
            .map(|a| string(a, &whose).to_owned())
            .collect();
        let role = Role::parse(&args, &whose);
        assert!(roles.insert(role.clone()), "{whose}: {role:?} runs twice");

        // The environment: literal values, and variables from Secrets (set when those exist).
        let mut env = BTreeMap::new();
        let mut from_secrets = BTreeSet::new();
        for variable in items(&container["env"]) {
            let key = string(&variable["name"], &whose).to_owned();
            match variable["value"].as_str() {
                Some(value) => {
                    env.insert(key, value.to_owned());
                }
                None => {
                    from_secrets.insert(key);
                }
            }
        }
        assert_settings_variables(env.keys().chain(&from_secrets), &whose);

        let files = configmap_files(pod, container, &configmaps);
        let config_path = env
            .get("GOVLINK_CONFIG")
            .unwrap_or_else(|| panic!("{whose}: GOVLINK_CONFIG names the settings file"));
        let config = files.get(config_path).unwrap_or_else(|| {
            panic!("{whose}: GOVLINK_CONFIG={config_path} is no file of a mounted ConfigMap")
        });
        let table: toml::Table = config.parse().expect("settings file is TOML");
        for overridden in ["grpc_addr", "admin_addr"] {
            assert!(
                !table.contains_key(overridden),
                "{whose}: {config_path} sets {overridden}, which the image's \
                 GOVLINK_{} overrides",
                overridden.to_ascii_uppercase()
            );
        }
        let mut effective = image_env.clone();
        effective.extend(env.clone());
        let settings = load_settings(Some(config), &effective, &whose);
        assert_container_listeners(&settings, &whose);

        // What the role needs to start (src/app).
        assert!(settings.kafka.is_some(), "{whose}: no kafka configured");
        if role.is_stateful() {
            assert!(
                settings.redis.is_some() || from_secrets.contains("GOVLINK_REDIS"),
                "{whose}: {role:?} needs redis"
            );
            let policy = settings
                .policy
                .as_deref()
                .unwrap_or_else(|| panic!("{whose}: {role:?} needs a policy"));
            let text = files
                .get(policy)
                .unwrap_or_else(|| panic!("{whose}: policy {policy} is no mounted file"));
            Policy::parse(text).unwrap_or_else(|e| panic!("{whose}: {policy}: {e}"));
        }
        if let Some(calendar) = settings.calendar.as_deref() {
            let text = files
                .get(calendar)
                .unwrap_or_else(|| panic!("{whose}: calendar {calendar} is no mounted file"));
            WorkCalendar::parse(text).unwrap_or_else(|e| panic!("{whose}: {calendar}: {e}"));
        }

        for (port_name, port) in [("grpc", grpc_port()), ("admin", admin_port())] {
            assert_eq!(
                container_port(container, &Value::String(port_name.into())),
                Some(port),
                "{whose}: container port {port_name} must be {port}"
            );
        }
        for (probe, path) in [
            ("livenessProbe", paths::HEALTHZ),
            ("readinessProbe", paths::READYZ),
            ("startupProbe", paths::HEALTHZ),
        ] {
            let get = &container[probe]["httpGet"];
            assert_eq!(
                get["path"].as_str(),
                Some(path),
                "{whose}: {probe} must ask {path}"
            );
            assert_eq!(
                container_port(container, &get["port"]),
                Some(admin_port()),
                "{whose}: {probe} must ask the admin port"
            );
        }
        let annotations = string_map(&template["metadata"]["annotations"]);
        for (key, value) in [
            ("prometheus.io/scrape", "true".to_owned()),
            ("prometheus.io/port", admin_port().to_string()),
            ("prometheus.io/path", paths::METRICS.to_owned()),
        ] {
            assert_eq!(
                annotations.get(key),
                Some(&value),
                "{whose}: annotation {key}"
            );
        }

        let tls = items(&pod["volumes"])
            .iter()
            .find(|v| v["secret"]["secretName"].as_str() == Some("govlink-tls"))
            .unwrap_or_else(|| panic!("{whose}: the Secret govlink-tls as a volume"));
        assert_eq!(
            tls["secret"]["optional"].as_bool(),
            Some(true),
            "{whose}: govlink-tls is optional until govlink reads certificates"
        );
        assert!(
            items(&container["volumeMounts"])
                .iter()
                .any(|m| m["name"] == tls["name"]),
            "{whose}: govlink-tls must be mounted"
        );

        let grace_s = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        assert!(
            grace_s * 1000 > settings.shutdown_grace_ms,
            "{whose}: terminationGracePeriodSeconds ({grace_s} s) must exceed shutdown_grace_ms \
             ({} ms), or the drain is killed",
            settings.shutdown_grace_ms
        );
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{whose}: runAsNonRoot"
        );
    }
    assert_eq!(roles, Role::all(), "{DIR}: every role, once");
}

#[test]
fn services_budgets_and_the_autoscaler_point_at_the_deployments() {
    let objects = objects();
    let deployments = of_kind(&objects, "Deployment");
    let pod_labels = |d: &Value| string_map(&d["spec"]["template"]["metadata"]["labels"]);
    let selected = |selector: &BTreeMap<String, String>, whose: &str| -> &Value {
        let matching: Vec<&&Value> = deployments
            .iter()
            .filter(|d| selects(selector, &pod_labels(d)))
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{whose}: selector {selector:?} must select the pods of one Deployment"
        );
        matching[0]
    };

    let mut with_service = BTreeSet::new();
    for svc in of_kind(&objects, "Service") {
        let whose = format!("{DIR} Service {}", name(svc));
        let deployment = selected(&string_map(&svc["spec"]["selector"]), &whose);
        with_service.insert(name(deployment).to_owned());
        let container = &items(&deployment["spec"]["template"]["spec"]["containers"])[0];
        for port in items(&svc["spec"]["ports"]) {
            let target = container_port(container, &port["targetPort"]);
            assert!(
                target.is_some(),
                "{whose}: targetPort {:?} is no container port",
                port["targetPort"]
            );
            assert_eq!(
                port["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
                target,
                "{whose}: clients use the port the code listens on"
            );
        }
    }

    let mut with_budget = BTreeMap::new();
    for pdb in of_kind(&objects, "PodDisruptionBudget") {
        let whose = format!("{DIR} PodDisruptionBudget {}", name(pdb));
        let deployment = selected(&string_map(&pdb["spec"]["selector"]["matchLabels"]), &whose);
        let before = with_budget.insert(name(deployment).to_owned(), whose.clone());
        assert!(
            before.is_none(),
            "{whose}: a second budget for one Deployment"
        );
    }

    let names: BTreeSet<String> = deployments.iter().map(|d| name(d).to_owned()).collect();
    assert_eq!(with_service, names, "{DIR}: a Service per Deployment");
    assert_eq!(
        with_budget.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "{DIR}: a PodDisruptionBudget per Deployment"
    );

    let autoscalers = of_kind(&objects, "HorizontalPodAutoscaler");
    assert_eq!(autoscalers.len(), 1, "{DIR}: the resolver's autoscaler");
    let target = &autoscalers[0]["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    let deployment = deployments
        .iter()
        .find(|d| Some(name(d)) == target["name"].as_str())
        .expect("the autoscaler's Deployment");
    let container = &items(&deployment["spec"]["template"]["spec"]["containers"])[0];
    let args: Vec<String> = items(&container["args"])
        .iter()
        .filter_map(scalar)
        .collect();
    assert_eq!(
        args,
        ["resolver"],
        "{DIR}: the autoscaler scales the resolver"
    );
    assert!(
        deployment["spec"]["replicas"].is_null(),
        "{DIR}: the resolver's Deployment must leave replicas to its autoscaler"
    );
    assert!(
        !container["resources"]["requests"]["cpu"].is_null(),
        "{DIR}: CPU utilization needs a CPU request"
    );
}
