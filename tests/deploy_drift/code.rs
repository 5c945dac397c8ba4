//! What the code defines that deployment files must agree with: listen ports, settings
//! and their variables, the roles a process starts in, metric families and topic names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::Command;

use govlink::config::{DEFAULT_ADMIN_ADDR, Settings};
use govlink::records::{AGENCIES, agency_slug};
use govlink::telemetry::metrics::NAMES;

/// The gRPC port every server listens on unless configured otherwise.
pub(crate) fn grpc_port() -> u16 {
    Settings::default().grpc_addr.port()
}

/// The admin HTTP port (metrics, health, status page).
pub(crate) fn admin_port() -> u16 {
    DEFAULT_ADMIN_ADDR
        .parse::<SocketAddr>()
        .expect("DEFAULT_ADMIN_ADDR is host:port")
        .port()
}

/// `GOVLINK_<FIELD>` for every field of `Settings`, and `GOVLINK_CONFIG` (the settings
/// file, a flag of the binary).
pub(crate) fn setting_variables() -> BTreeSet<String> {
    // JSON keeps the options that are unset by default (as null); TOML would drop them.
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    let fields = defaults.as_object().expect("settings are a struct");
    assert!(
        fields.contains_key("kafka") && fields.contains_key("policy"),
        "unset options must be listed too: {fields:?}"
    );
    fields
        .keys()
        .map(|field| format!("GOVLINK_{}", field.to_ascii_uppercase()))
        .chain(["GOVLINK_CONFIG".to_owned()])
        .collect()
}

/// Settings as a process would load them from `file` and `env`; panics naming `whose`.
pub(crate) fn load_settings(
    file: Option<&str>,
    env: &BTreeMap<String, String>,
    whose: &str,
) -> Settings {
    let env: HashMap<String, String> = env.clone().into_iter().collect();
    Settings::load(file, &env).unwrap_or_else(|e| panic!("{whose}: {e}"))
}

/// Asserts that every name is a setting's variable (or GOVLINK_CONFIG).
pub(crate) fn assert_settings_variables<'a>(
    names: impl IntoIterator<Item = &'a String>,
    whose: &str,
) {
    let known = setting_variables();
    for name in names.into_iter().filter(|n| n.starts_with("GOVLINK_")) {
        assert!(
            known.contains(name),
            "{whose}: {name} is not a setting's variable; the settings are {known:?}"
        );
    }
}

/// Asserts that a containerized process listens on every interface, on the ports the
/// manifests publish, probe and scrape.
pub(crate) fn assert_container_listeners(settings: &Settings, whose: &str) {
    let grpc = settings.grpc_addr;
    assert_eq!(
        grpc.port(),
        grpc_port(),
        "{whose}: gRPC listens on {grpc}, the manifests expect port {}",
        grpc_port()
    );
    assert!(
        grpc.ip().is_unspecified(),
        "{whose}: gRPC listens on {grpc}; in a container it must listen on every interface \
         (0.0.0.0), or nothing outside can reach it"
    );
    let admin = settings
        .admin_addr()
        .unwrap_or_else(|e| panic!("{whose}: {e}"))
        .unwrap_or_else(|| {
            panic!("{whose}: admin_addr is empty (the admin server is off): health checks and Prometheus need it")
        });
    assert_eq!(
        admin.port(),
        admin_port(),
        "{whose}: the admin server listens on {admin}, the manifests expect port {}",
        admin_port()
    );
    assert!(
        admin.ip().is_unspecified(),
        "{whose}: the admin server listens on {admin}; in a container it must listen on every \
         interface (0.0.0.0)"
    );
}

/// What a server process is started as.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    /// `adapter --agency <slug>`.
    Adapter(String),
    /// `resolver`.
    Resolver,
    /// `cases`.
    Cases,
}

impl Role {
    /// The role of a server's arguments (after the `govlink` entrypoint).
    pub(crate) fn parse(args: &[String], whose: &str) -> Role {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let agencies: Vec<&str> = AGENCIES.iter().map(|a| agency_slug(*a)).collect();
        let role = match args.as_slice() {
            ["adapter", "--agency", agency] => Role::Adapter((*agency).to_owned()),
            ["resolver"] => Role::Resolver,
            ["cases"] => Role::Cases,
            other => panic!(
                "{whose}: {other:?} is not a server role; the roles are `adapter --agency A`, \
                 `resolver` and `cases`"
            ),
        };
        if let Role::Adapter(agency) = &role {
            assert!(
                agencies.contains(&agency.as_str()),
                "{whose}: no agency {agency:?}; the agencies are {agencies:?}"
            );
        }
        assert_cli_accepts(&args, whose);
        role
    }

    /// Every role a full deployment runs: one adapter per agency, the resolver, the case
    /// engine.
    pub(crate) fn all() -> BTreeSet<Role> {
        AGENCIES
            .iter()
            .map(|a| Role::Adapter(agency_slug(*a).to_owned()))
            .chain([Role::Resolver, Role::Cases])
            .collect()
    }

    /// Whether the role keeps state in Redis (see src/app: the resolver and the case
    /// engine refuse to start without it; every role needs the access policy).
    pub(crate) fn is_stateful(&self) -> bool {
        !matches!(self, Role::Adapter(_))
    }
}

/// Asserts that the binary's command line accepts `args` (with `--help` appended, so it
/// only parses them).
fn assert_cli_accepts(args: &[&str], whose: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_govlink"))
        .args(args)
        .arg("--help")
        .output()
        .expect("running govlink");
    assert!(
        output.status.success(),
        "{whose}: `govlink {}` is refused by the command line: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The metric family a series belongs to: a name of `NAMES`, or a histogram's
/// `_bucket`, `_sum` or `_count` series.
pub(crate) fn metric_family(series: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|family| {
        series == *family
            || (is_histogram(family)
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| series.strip_suffix(suffix) == Some(family)))
    })
}

/// Histograms are the families measured in seconds (govlink's durations); counters end in
/// `_total`, and the rest are gauges.
pub(crate) fn is_histogram(family: &str) -> bool {
    family.ends_with("_seconds")
}

/// Maximal runs of `[A-Za-z0-9_]` that start with `prefix` and are longer than it.
fn words(text: &str, prefix: &str, in_word: impl Fn(char) -> bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(prefix) {
        let start = from + at;
        let end = text[start..]
            .find(|c: char| !in_word(c))
            .map_or(text.len(), |len| start + len);
        let starts_a_word = !text[..start].chars().next_back().is_some_and(&in_word);
        if starts_a_word && end > start + prefix.len() {
            found.insert(text[start..end].to_owned());
        }
        from = end.max(start + prefix.len());
    }
    found
}

/// Every `GOVLINK_*` variable named in `text`.
pub(crate) fn variables_in(text: &str) -> BTreeSet<String> {
    words(text, "GOVLINK_", |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
    })
}

/// Every `govlink_*` metric series named in `text`.
pub(crate) fn metrics_in(text: &str) -> BTreeSet<String> {
    words(text, "govlink_", |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
    })
}

/// Every versioned topic name (`govlink.<name>.v<N>`) in `text`. (`govlink.v1` alone is
/// the protobuf package.)
pub(crate) fn topics_in(text: &str) -> BTreeSet<String> {
    words(text, "govlink.", |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
    })
    .into_iter()
    .map(|word| word.trim_end_matches('.').to_owned())
    .filter(|word| {
        word.rsplit_once(".v").is_some_and(|(name, n)| {
            name != "govlink" && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
        })
    })
    .collect()
}
