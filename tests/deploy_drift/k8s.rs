//! deploy/k8s/: every role runs as a Deployment that starts with what the code needs,
//! mutual TLS from the Secret govlink-tls included, listens, is probed and scraped where
//! the code serves; Services, disruption budgets and the resolver's autoscaler point at
//! those Deployments; the kustomization says how to make the Secret for trying it out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use govlink::admin::paths;
use govlink::cases::calendar::WorkCalendar;
use govlink::config::Settings;
use govlink::resolver::policy::Policy;
use serde_yaml_ng::Value;

use crate::code::{
    Role, admin_port, assert_container_listeners, assert_settings_variables, grpc_port,
    load_settings,
};
use crate::dockerfile::image_env;
use crate::files::{items, k8s_files, read, scalar, string, yaml, yaml_documents};
use crate::tls::{
    FILE_SETTINGS, Scratch, after, certs_init, certs_init_out, certs_layout, server_files,
    server_names, shell_words,
};

const DIR: &str = "deploy/k8s";
const KUSTOMIZATION: &str = "deploy/k8s/kustomization.yaml";

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
    let kustomization = yaml(KUSTOMIZATION);
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
    let secret = tls_secret();
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
        }
        let policy = settings
            .policy
            .as_deref()
            .unwrap_or_else(|| panic!("{whose}: {role:?} needs a policy"));
        let text = files
            .get(policy)
            .unwrap_or_else(|| panic!("{whose}: policy {policy} is no mounted file"));
        Policy::parse(text).unwrap_or_else(|e| panic!("{whose}: {policy}: {e}"));
        assert_eq!(
            text.trim_end(),
            read("deploy/policy.toml").trim_end(),
            "{whose}: the policy the ConfigMap mounts must be deploy/policy.toml's text"
        );
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
            assert_probe_waits_for_the_answer(container, probe, &whose);
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

        let mut declared = env.clone();
        declared.extend(from_secrets.iter().map(|k| (k.clone(), String::new())));
        assert_serves_mutual_tls(pod, container, &settings, &declared, &secret, &whose);

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

/// Asserts that `probe` of `container` sets its `timeoutSeconds` and, for readiness, sets
/// it above the bound of each readiness check (they run side by side): a probe that
/// times out before `/readyz` answers fails without the body that names what is down.
fn assert_probe_waits_for_the_answer(container: &Value, probe: &str, whose: &str) {
    let timeout_s = container[probe]["timeoutSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("{whose}: {probe} must set timeoutSeconds"));
    if probe == "readinessProbe" {
        let bound = govlink::admin::sample::READY_CHECK_TIMEOUT;
        assert!(
            u128::from(timeout_s) * 1000 > bound.as_millis(),
            "{whose}: {probe} timeoutSeconds ({timeout_s} s) must exceed the readiness \
             checks' bound ({bound:?}), or the probe gives up before /readyz says why"
        );
    }
}

/// The Secret govlink-tls as the kustomization's comment makes it from a `govlink certs
/// init` directory.
struct TlsSecret {
    /// The `certs init --out` directory.
    dir: String,
    /// The `-n` of the `kubectl create secret`.
    namespace: Option<String>,
    /// Key → the file it is made from.
    keys: BTreeMap<String, String>,
}

/// The commands in the comments of kustomization.yaml, continuation lines joined.
fn kustomization_commands() -> Vec<String> {
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in read(KUSTOMIZATION).lines() {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        let comment = comment.trim();
        match comment.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(comment);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

fn tls_secret() -> TlsSecret {
    let commands = kustomization_commands();
    let dir = commands
        .iter()
        .find_map(|c| certs_init_out(c))
        .unwrap_or_else(|| {
            panic!("{KUSTOMIZATION}: no `govlink certs init --out DIR` for trying it out")
        });
    let create = commands
        .iter()
        .find(|c| c.contains("create secret generic govlink-tls"))
        .unwrap_or_else(|| {
            panic!("{KUSTOMIZATION}: no `kubectl create secret generic govlink-tls` command")
        });
    let words = shell_words(create);
    let keys = words
        .iter()
        .filter_map(|w| w.strip_prefix("--from-file="))
        .map(|pair| {
            let (key, file) = pair.split_once('=').unwrap_or_else(|| {
                panic!("{KUSTOMIZATION}: --from-file={pair} must name its key (KEY=FILE)")
            });
            (key.to_owned(), file.to_owned())
        })
        .collect();
    TlsSecret {
        dir,
        namespace: after(&words, "-n")
            .or_else(|| after(&words, "--namespace"))
            .map(str::to_owned),
        keys,
    }
}

/// Mode bits as Kubernetes reads them from YAML: `0440` is octal, `288` decimal.
fn file_mode(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        _ => None,
    }
}

/// Asserts that a pod's server starts with mutual TLS, from the files of the Secret
/// govlink-tls that the kustomization's command fills from `certs init`.
fn assert_serves_mutual_tls(
    pod: &Value,
    container: &Value,
    settings: &Settings,
    env: &BTreeMap<String, String>,
    secret: &TlsSecret,
    whose: &str,
) {
    let files = server_files(settings, env, whose);
    let volume = items(&pod["volumes"])
        .iter()
        .find(|v| v["secret"]["secretName"].as_str() == Some("govlink-tls"))
        .unwrap_or_else(|| panic!("{whose}: the Secret govlink-tls as a volume"));
    assert_ne!(
        volume["secret"]["optional"].as_bool(),
        Some(true),
        "{whose}: govlink-tls must not be optional: the server refuses to start without it"
    );
    if let Some(mode) = file_mode(&volume["secret"]["defaultMode"]) {
        let fs_group = !pod["securityContext"]["fsGroup"].is_null();
        assert!(
            mode & 0o004 != 0 || (mode & 0o040 != 0 && fs_group),
            "{whose}: govlink-tls defaultMode {mode:o}: the files belong to root, so the \
             non-root server reads them by group (with fsGroup) or not at all"
        );
    }
    let mount = items(&container["volumeMounts"])
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap_or_else(|| panic!("{whose}: govlink-tls must be mounted"));
    assert!(
        mount["subPath"].is_null(),
        "{whose}: govlink-tls by subPath would never see an updated Secret (a new CRL)"
    );
    assert_eq!(
        mount["readOnly"].as_bool(),
        Some(true),
        "{whose}: govlink-tls read-only"
    );
    let at = string(&mount["mountPath"], whose).trim_end_matches('/');
    let layout = certs_layout(Path::new(&secret.dir));
    for (setting, variable) in FILE_SETTINGS {
        let file = &files[setting];
        let key = file
            .strip_prefix(&format!("{at}/"))
            .filter(|key| !key.contains('/'))
            .unwrap_or_else(|| {
                panic!("{whose}: {variable}={file} is no file of govlink-tls, mounted at {at}")
            });
        let source = secret.keys.get(key).unwrap_or_else(|| {
            panic!(
                "{whose}: {variable} reads the key {key} of govlink-tls, which the command in \
                 {KUSTOMIZATION} does not create (it creates {:?})",
                secret.keys.keys()
            )
        });
        let expected = layout[setting].display().to_string();
        assert_eq!(
            *source, expected,
            "{whose}: {variable} reads the key {key}, which {KUSTOMIZATION} makes from \
             {source}; `certs init` writes that file as {expected}"
        );
    }
}

#[test]
fn the_kustomization_says_how_to_make_govlink_tls_from_certs_init() {
    let secret = tls_secret();
    let kustomization = yaml(KUSTOMIZATION);
    assert_eq!(
        secret.namespace.as_deref(),
        kustomization["namespace"].as_str(),
        "{KUSTOMIZATION}: the Secret is made in the namespace of the Deployments"
    );
    let scratch = Scratch::new("k8s");
    let out = scratch.path().join(&secret.dir);
    certs_init(&out, KUSTOMIZATION);
    for (key, file) in &secret.keys {
        assert!(
            scratch.path().join(file).exists(),
            "{KUSTOMIZATION}: --from-file={key}={file}, which `certs init --out {}` does not write",
            secret.dir
        );
    }
}

#[test]
fn the_development_server_certificate_names_every_service() {
    let objects = objects();
    let scratch = Scratch::new("k8s-names");
    let out = scratch.path().join("certs");
    certs_init(&out, KUSTOMIZATION);
    let names = server_names(&out);
    let namespace = yaml(KUSTOMIZATION)["namespace"]
        .as_str()
        .expect("namespace")
        .to_owned();
    for svc in of_kind(&objects, "Service") {
        let svc = name(svc);
        for name in [svc.to_owned(), format!("{svc}.{namespace}.svc")] {
            assert!(
                names.contains(&name),
                "{DIR}: clients call the Service {svc} as {name}, which the server certificate \
                 of `govlink certs init` does not name ({names:?})"
            );
        }
    }
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
            if target == Some(grpc_port()) {
                assert_ne!(
                    port["appProtocol"].as_str(),
                    Some("kubernetes.io/h2c"),
                    "{whose}: the gRPC port serves TLS, not cleartext HTTP/2"
                );
            }
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
