//! deploy/docker-compose.yml: every role runs once, as the code needs it to start (mutual
//! TLS with the certificates the one-shot `certs` service writes included), on the ports
//! and with the health checks the code defines; and scripts/test.sh --docker finds its
//! Kafka and Redis where the file publishes them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use govlink::admin::paths;
use govlink::cases::calendar::WorkCalendar;
use govlink::config::Settings;
use govlink::resolver::policy::Policy;
use govlink::tls::certs::CertsDir;
use serde_yaml_ng::Value;

use crate::code::{
    Role, admin_port, assert_container_listeners, assert_settings_variables, grpc_port,
    load_settings,
};
use crate::dockerfile::{image_env, runtime_directory_of_its_user};
use crate::files::{items, read, repo, scalar, string, yaml};
use crate::tls::{
    FILE_SETTINGS, Scratch, certs_init, certs_init_out, certs_layout, server_files, server_names,
};

pub(crate) const FILE: &str = "deploy/docker-compose.yml";

/// The one-shot service that writes the development certificates before the servers start.
pub(crate) const CERTS: &str = "certs";

/// A volume of a service.
pub(crate) struct Mount {
    pub(crate) source: String,
    pub(crate) target: String,
    pub(crate) read_only: bool,
}

impl Mount {
    /// Whether it mounts a named volume (not a file or directory of the host).
    fn is_named(&self) -> bool {
        !self.source.is_empty() && !self.source.starts_with(['.', '/', '~'])
    }
}

/// One service of the compose file.
pub(crate) struct Service<'f> {
    pub(crate) name: String,
    pub(crate) spec: &'f Value,
}

impl Service<'_> {
    /// Whether it runs the govlink image.
    pub(crate) fn is_govlink(&self) -> bool {
        self.spec["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("govlink"))
    }

    /// Whether it is a govlink server (every govlink service but the certificates job).
    pub(crate) fn is_server(&self) -> bool {
        self.is_govlink() && self.name != CERTS
    }

    pub(crate) fn env(&self) -> BTreeMap<String, String> {
        let environment = &self.spec["environment"];
        match environment {
            Value::Mapping(map) => map
                .iter()
                .map(|(k, v)| {
                    let k = string(k, &self.name).to_owned();
                    (k, scalar(v).unwrap_or_default())
                })
                .collect(),
            Value::Sequence(list) => list
                .iter()
                .map(|item| {
                    let (k, v) = string(item, &self.name).split_once('=').unwrap_or_default();
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    pub(crate) fn command(&self) -> Vec<String> {
        match &self.spec["command"] {
            Value::String(line) => line.split_whitespace().map(str::to_owned).collect(),
            other => items(other)
                .iter()
                .map(|a| string(a, &self.name).to_owned())
                .collect(),
        }
    }

    /// Published ports as (host port, container port).
    pub(crate) fn ports(&self) -> Vec<(Option<u16>, u16)> {
        items(&self.spec["ports"])
            .iter()
            .map(|port| {
                if let Some(target) = port["target"].as_u64() {
                    let published = scalar(&port["published"]).and_then(|p| p.parse().ok());
                    return (published, u16::try_from(target).expect("port"));
                }
                let text = scalar(port).expect("port mapping");
                let parts: Vec<&str> = text.trim_end_matches("/tcp").rsplitn(3, ':').collect();
                let container = parts[0].parse().expect("container port");
                (parts.get(1).and_then(|p| p.parse().ok()), container)
            })
            .collect()
    }

    /// Volumes as (source, target).
    pub(crate) fn volumes(&self) -> Vec<(String, String)> {
        self.mounts()
            .into_iter()
            .map(|m| (m.source, m.target))
            .collect()
    }

    /// Volumes, in the short (`source:target[:mode]`) or the long syntax.
    pub(crate) fn mounts(&self) -> Vec<Mount> {
        items(&self.spec["volumes"])
            .iter()
            .map(|volume| {
                if let Some(target) = volume["target"].as_str() {
                    return Mount {
                        source: volume["source"].as_str().unwrap_or_default().to_owned(),
                        target: target.to_owned(),
                        read_only: volume["read_only"].as_bool() == Some(true),
                    };
                }
                let text = string(volume, &self.name);
                let mut parts = text.split(':');
                let source = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_default().to_owned();
                let read_only = parts
                    .next()
                    .is_some_and(|mode| mode.split(',').any(|m| m == "ro"));
                Mount {
                    source,
                    target,
                    read_only,
                }
            })
            .collect()
    }

    /// The file of the repository bind-mounted at `target`, if any.
    pub(crate) fn mounted_file(&self, target: &str) -> Option<String> {
        self.volumes()
            .into_iter()
            .find(|(source, t)| t == target && source.starts_with('.'))
            .map(|(source, _)| format!("deploy/{}", source.trim_start_matches("./")))
    }

    fn depends_on(&self) -> BTreeSet<String> {
        match &self.spec["depends_on"] {
            Value::Mapping(map) => map
                .keys()
                .map(|k| string(k, &self.name).to_owned())
                .collect(),
            other => items(other)
                .iter()
                .map(|s| string(s, &self.name).to_owned())
                .collect(),
        }
    }
}

/// The compose file, parsed.
pub(crate) fn compose() -> Value {
    yaml(FILE)
}

pub(crate) fn services(compose: &Value) -> Vec<Service<'_>> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(name, spec)| Service {
            name: string(name, FILE).to_owned(),
            spec,
        })
        .collect()
}

pub(crate) fn service<'f>(services: &'f [Service<'f>], name: &str) -> &'f Service<'f> {
    services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{FILE}: no service {name}"))
}

/// The advertised Kafka listeners of the `kafka` service: listener name → host:port.
fn advertised_listeners(kafka: &Service<'_>) -> BTreeMap<String, String> {
    listeners(&kafka.env()["KAFKA_ADVERTISED_LISTENERS"])
}

fn listeners(list: &str) -> BTreeMap<String, String> {
    list.split(',')
        .filter_map(|l| l.split_once("://"))
        .map(|(name, addr)| (name.to_owned(), addr.to_owned()))
        .collect()
}

#[test]
fn every_role_runs_once_with_what_it_needs_on_the_ports_the_code_listens_on() {
    let compose = compose();
    let services = services(&compose);
    let kafka_addrs = advertised_listeners(service(&services, "kafka"));
    let image_env = image_env();
    let mut roles = BTreeSet::new();
    let certs = certs_job(&compose, &services);
    for service in services.iter().filter(|s| s.is_server()) {
        let whose = format!("{FILE} service {}", service.name);
        let role = Role::parse(&service.command(), &whose);
        assert!(roles.insert(role.clone()), "{whose}: {role:?} runs twice");

        let env = service.env();
        assert_settings_variables(env.keys(), &whose);
        let mut effective = image_env.clone();
        effective.extend(env);
        let settings = load_settings(None, &effective, &whose);
        assert_container_listeners(&settings, &whose);
        assert_serves_mutual_tls(service, &settings, &effective, &certs, &whose);

        let ports = service.ports();
        for (_, container) in &ports {
            assert!(
                [grpc_port(), admin_port()].contains(container),
                "{whose}: publishes container port {container}, which nothing listens on"
            );
        }
        for (port, what) in [(grpc_port(), "gRPC"), (admin_port(), "admin")] {
            assert!(
                ports.iter().any(|(host, c)| *c == port && host.is_some()),
                "{whose}: the {what} port {port} is not published on the host"
            );
        }

        let test: Vec<String> = items(&service.spec["healthcheck"]["test"])
            .iter()
            .filter_map(scalar)
            .collect();
        assert!(
            test.first().is_some_and(|t| t == "CMD")
                && test.get(1).is_some_and(|c| c == "govlink-healthcheck")
                && test
                    .get(2)
                    .is_some_and(|p| p == paths::READYZ || p == paths::HEALTHZ),
            "{whose}: the health check must be [CMD, govlink-healthcheck, {} or {}], not {test:?}",
            paths::READYZ,
            paths::HEALTHZ
        );

        // What the role needs to start (src/app): a broker and the policy; Redis for the
        // resolver and the case engine.
        let depends = service.depends_on();
        let kafka = settings.kafka.as_deref().expect("every role needs kafka");
        assert!(
            kafka_addrs.values().any(|addr| addr == kafka),
            "{whose}: GOVLINK_KAFKA={kafka} is not a listener the kafka service advertises \
             ({kafka_addrs:?})"
        );
        assert!(depends.contains("kafka"), "{whose}: must wait for kafka");
        if role.is_stateful() {
            let redis = settings
                .redis
                .as_deref()
                .unwrap_or_else(|| panic!("{whose}: {role:?} needs GOVLINK_REDIS"));
            // redis://[user:password@]host:port/db
            let authority = redis.trim_start_matches("redis://").split('/').next();
            let host = authority
                .and_then(|a| a.rsplit('@').next())
                .unwrap_or_default();
            assert_eq!(
                host, "redis:6379",
                "{whose}: GOVLINK_REDIS must reach the redis service"
            );
            assert!(depends.contains("redis"), "{whose}: must wait for redis");
        }
        let policy = settings
            .policy
            .as_deref()
            .unwrap_or_else(|| panic!("{whose}: {role:?} needs GOVLINK_POLICY"));
        let file = service.mounted_file(policy).unwrap_or_else(|| {
            panic!("{whose}: GOVLINK_POLICY={policy} but no file is mounted there")
        });
        Policy::load(&repo().join(&file)).unwrap_or_else(|e| panic!("{whose}: {file}: {e}"));
        if let Some(calendar) = settings.calendar.as_deref() {
            let file = service.mounted_file(calendar).unwrap_or_else(|| {
                panic!("{whose}: GOVLINK_CALENDAR={calendar} but no file is mounted there")
            });
            WorkCalendar::load(&repo().join(&file))
                .unwrap_or_else(|e| panic!("{whose}: {file}: {e}"));
        }
    }
    assert_eq!(roles, Role::all(), "{FILE}: every role, once");
}

/// Where the certificates job writes: its volume and the directory it is mounted at.
pub(crate) struct CertsJob {
    volume: String,
    dir: String,
}

/// The certificates job of the compose file, checked: it runs `certs init` into a named
/// volume once (a second `certs init` into the same directory fails), and its directory
/// in the image belongs to the user the image runs as.
pub(crate) fn certs_job(compose: &Value, services: &[Service<'_>]) -> CertsJob {
    let job = service(services, CERTS);
    let whose = format!("{FILE} service {CERTS}");
    assert!(job.is_govlink(), "{whose}: runs the govlink image");
    let entrypoint: Vec<String> = items(&job.spec["entrypoint"])
        .iter()
        .filter_map(scalar)
        .collect();
    assert!(
        entrypoint.is_empty()
            || (entrypoint.len() == 2 && entrypoint[0].ends_with("sh") && entrypoint[1] == "-c"),
        "{whose}: the entrypoint is the image's (govlink) or a shell running the command, not \
         {entrypoint:?}"
    );
    let script = job.command().join(" ");
    let dir = if entrypoint.is_empty() {
        certs_init_out(&format!("govlink {script}"))
    } else {
        certs_init_out(&script)
    }
    .unwrap_or_else(|| panic!("{whose}: must run `govlink certs init --out DIR`, not {script:?}"));
    let ca = CertsDir::new(&dir).ca();
    assert!(
        !entrypoint.is_empty() && script.contains(&format!("-e {}", ca.display())),
        "{whose}: must skip `certs init` when {} exists (init refuses a directory with a CA, \
         and the servers wait for this job to succeed): {script:?}",
        ca.display()
    );
    let restart = job.spec["restart"].as_str().unwrap_or("no");
    assert!(
        restart == "no" || restart.starts_with("on-failure"),
        "{whose}: a one-shot job; restart: {restart} would run it again and again"
    );
    let mount = job
        .mounts()
        .into_iter()
        .find(|m| m.target == dir)
        .unwrap_or_else(|| panic!("{whose}: no volume at {dir}, where certs init writes"));
    assert!(
        mount.is_named() && !mount.read_only,
        "{whose}: {dir} must be a writable named volume, which the servers mount too"
    );
    assert!(
        compose["volumes"]
            .as_mapping()
            .is_some_and(|v| v.contains_key(mount.source.as_str())),
        "{FILE}: the volume {} is not declared under volumes",
        mount.source
    );
    if let Err(problem) = runtime_directory_of_its_user(&dir) {
        panic!(
            "{whose}: a fresh volume takes the owner of the image's {dir}, and the job runs as \
             the image's user: {problem}"
        );
    }
    CertsJob {
        volume: mount.source,
        dir,
    }
}

/// Asserts that a server starts with mutual TLS, its files being the ones the
/// certificates job writes, on its volume mounted read-only, after the job succeeded.
fn assert_serves_mutual_tls(
    service: &Service<'_>,
    settings: &Settings,
    env: &BTreeMap<String, String>,
    certs: &CertsJob,
    whose: &str,
) {
    let files = server_files(settings, env, whose);
    let condition = service.spec["depends_on"][CERTS]["condition"].as_str();
    assert_eq!(
        condition,
        Some("service_completed_successfully"),
        "{whose}: must wait for the {CERTS} service to complete successfully"
    );
    let mount = service
        .mounts()
        .into_iter()
        .find(|m| m.source == certs.volume)
        .unwrap_or_else(|| panic!("{whose}: does not mount the volume {}", certs.volume));
    assert!(
        mount.read_only,
        "{whose}: mounts the volume {} writable; only the {CERTS} job writes it",
        certs.volume
    );
    let layout = certs_layout(Path::new(&mount.target));
    for (setting, variable) in FILE_SETTINGS {
        let expected = layout[setting].display().to_string();
        assert_eq!(
            files[setting], expected,
            "{whose}: {variable} must name the file `certs init --out {}` writes there, on the \
             volume {} mounted at {}",
            certs.dir, certs.volume, mount.target
        );
    }
}

#[test]
fn the_certs_service_writes_what_the_servers_read_and_names_them_in_its_certificate() {
    let compose = compose();
    let services = services(&compose);
    let certs = certs_job(&compose, &services);
    let scratch = Scratch::new("compose");
    let out = scratch.path().join(certs.dir.trim_start_matches('/'));
    certs_init(&out, &format!("{FILE} service {CERTS}"));
    for (setting, file) in certs_layout(&out) {
        assert!(
            file.exists(),
            "certs init wrote no {setting} file {}",
            file.display()
        );
    }
    // Clients on the host call localhost; containers call each other by service name.
    let names = server_names(&out);
    for service in services.iter().filter(|s| s.is_server()) {
        for name in ["localhost", service.name.as_str()] {
            assert!(
                names.iter().any(|n| n == name),
                "the server certificate of `govlink certs init` does not name {name} \
                 ({FILE} service {}); it names {names:?}",
                service.name
            );
        }
    }
}

#[test]
fn host_ports_do_not_collide_and_mounted_files_exist() {
    let compose = compose();
    let mut published = BTreeMap::new();
    for service in services(&compose) {
        for (host, _) in service.ports() {
            if let Some(host) = host {
                let before = published.insert(host, service.name.clone());
                assert!(
                    before.is_none(),
                    "{FILE}: host port {host} published by {} and {}",
                    before.unwrap_or_default(),
                    service.name
                );
            }
        }
        for (source, target) in service.volumes() {
            if source.starts_with('.') {
                let path = repo().join("deploy").join(&source);
                assert!(
                    path.exists(),
                    "{FILE} service {}: mounts {source} at {target}, which does not exist",
                    service.name
                );
            }
        }
    }
}

#[test]
fn kafka_runs_in_kraft_mode_and_creates_no_topics_by_itself() {
    let compose = compose();
    let services = services(&compose);
    let env = service(&services, "kafka").env();
    let roles = env.get("KAFKA_PROCESS_ROLES").cloned().unwrap_or_default();
    assert!(
        roles.contains("broker") && roles.contains("controller"),
        "{FILE}: kafka must be its own KRaft controller, not {roles:?}"
    );
    assert!(
        !env.keys().any(|k| k.contains("ZOOKEEPER")),
        "{FILE}: no ZooKeeper"
    );
    // govlink creates its topics with the settings its guarantees need.
    assert_eq!(
        env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")
            .map(String::as_str),
        Some("false")
    );
}

/// `readonly NAME=value` of scripts/test.sh.
fn script_constant(script: &str, name: &str) -> String {
    let prefix = format!("readonly {name}=");
    script
        .lines()
        .find_map(|line| line.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("scripts/test.sh: no {prefix}"))
        .to_owned()
}

#[test]
fn test_sh_docker_uses_the_kafka_and_redis_this_file_publishes() {
    let script = read("scripts/test.sh");
    assert_eq!(script_constant(&script, "COMPOSE_FILE"), FILE);
    assert!(
        script.contains("kafka redis"),
        "scripts/test.sh starts the services kafka and redis"
    );
    let compose = compose();
    let services = services(&compose);
    let kafka = service(&services, "kafka");

    let address = script_constant(&script, "DOCKER_KAFKA");
    let advertised = advertised_listeners(kafka);
    let (listener, _) = advertised
        .iter()
        .find(|(_, addr)| **addr == address)
        .unwrap_or_else(|| {
            panic!(
                "scripts/test.sh DOCKER_KAFKA={address} is not advertised by kafka ({advertised:?})"
            )
        });
    let bound = listeners(&kafka.env()["KAFKA_LISTENERS"]);
    let container: u16 = bound[listener]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("listener port");
    let host: u16 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(
        kafka.ports().contains(&(Some(host), container)),
        "{FILE}: kafka must publish host port {host} to its {listener} listener's port {container}"
    );

    let redis_url = script_constant(&script, "DOCKER_REDIS");
    let port: u16 = redis_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("redis port");
    assert!(
        service(&services, "redis")
            .ports()
            .contains(&(Some(port), 6379)),
        "{FILE}: redis must publish host port {port} (scripts/test.sh DOCKER_REDIS={redis_url})"
    );
}
