//! deploy/Dockerfile and deploy/healthcheck.sh: the image listens where the manifests
//! expect, its health check asks the admin server's path, and its build copies every file
//! the crate compiles in.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use govlink::admin::paths;

use crate::code::{
    admin_port, assert_container_listeners, assert_settings_variables, grpc_port, load_settings,
};
use crate::files::{normalize, read, repo};
use crate::tls::after;

/// One build stage: its instructions (keyword in upper case, arguments).
pub(crate) struct Stage {
    instructions: Vec<(String, String)>,
}

impl Stage {
    fn arguments<'s>(&'s self, keyword: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.instructions
            .iter()
            .filter(move |(k, _)| k == keyword)
            .map(|(_, args)| args.as_str())
    }

    /// The stage's `ENV` variables.
    pub(crate) fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for args in self.arguments("ENV") {
            let words: Vec<&str> = args.split_whitespace().collect();
            if words.first().is_some_and(|w| w.contains('=')) {
                for pair in words {
                    let (k, v) = pair.split_once('=').expect("ENV key=value");
                    env.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            } else if let Some((k, v)) = args.trim().split_once(char::is_whitespace) {
                env.insert(k.to_owned(), v.trim().to_owned());
            }
        }
        env
    }

    /// `COPY` instructions as (sources, destination, copied from another stage).
    fn copies(&self) -> Vec<(Vec<String>, String, bool)> {
        self.arguments("COPY")
            .map(|args| {
                let from_stage = args.contains("--from=");
                let mut words: Vec<String> = args
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .map(str::to_owned)
                    .collect();
                let destination = words.pop().expect("COPY has a destination");
                (words, destination, from_stage)
            })
            .collect()
    }
}

/// The stages of a Dockerfile, in order (continuation lines joined, comments dropped).
pub(crate) fn stages(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
                continue;
            }
            None => pending.push_str(trimmed),
        }
        let instruction = std::mem::take(&mut pending);
        let (keyword, args) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stages.push(Stage {
                instructions: Vec::new(),
            });
        }
        stages
            .last_mut()
            .expect("FROM first")
            .instructions
            .push((keyword, args.trim().to_owned()));
    }
    stages
}

/// Checks that the runtime stage creates `dir` (`install -d -o OWNER ... DIR`) owned by
/// the user it runs as (`USER uid`, or the name `useradd --uid uid` gives it): a fresh
/// volume mounted there takes that owner. Says what is wrong otherwise.
pub(crate) fn runtime_directory_of_its_user(dir: &str) -> Result<(), String> {
    let stages = stages(&read("deploy/Dockerfile"));
    let runtime = stages.last().expect("a runtime stage");
    let uid = runtime
        .arguments("USER")
        .last()
        .and_then(|user| user.split(':').next())
        .ok_or("deploy/Dockerfile has no USER")?
        .to_owned();
    let commands: Vec<Vec<&str>> = runtime
        .arguments("RUN")
        .flat_map(|run| run.split("&&"))
        .map(|command| command.split_whitespace().collect())
        .collect();
    let mut names = vec![uid.clone()];
    for words in commands.iter().filter(|w| w.first() == Some(&"useradd")) {
        let given = after(words, "--uid").or_else(|| after(words, "-u"));
        if given == Some(uid.as_str()) {
            names.extend(words.last().map(|name| (*name).to_owned()));
        }
    }
    let owner = commands
        .iter()
        .filter(|w| w.first() == Some(&"install") && w.contains(&"-d") && w.last() == Some(&dir))
        .find_map(|words| after(words, "-o"))
        .ok_or_else(|| format!("deploy/Dockerfile does not create {dir} with `install -d -o`"))?;
    if names.iter().any(|name| name == owner) {
        Ok(())
    } else {
        Err(format!(
            "deploy/Dockerfile creates {dir} owned by {owner}, but runs as {uid} ({names:?})"
        ))
    }
}

/// The runtime stage's environment: what every container starts with.
pub(crate) fn image_env() -> BTreeMap<String, String> {
    stages(&read("deploy/Dockerfile"))
        .last()
        .expect("a stage")
        .env()
}

#[test]
fn the_image_listens_on_the_ports_it_exposes_and_checks_its_health_on_the_admin_port() {
    let stages = stages(&read("deploy/Dockerfile"));
    let runtime = stages.last().expect("a runtime stage");
    let env = runtime.env();
    assert_settings_variables(env.keys(), "deploy/Dockerfile ENV");
    let settings = load_settings(None, &env, "the image's environment");
    assert_container_listeners(&settings, "deploy/Dockerfile ENV");

    let exposed: BTreeSet<u16> = runtime
        .arguments("EXPOSE")
        .flat_map(str::split_whitespace)
        .map(|port| port.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
        .collect();
    assert_eq!(
        exposed,
        BTreeSet::from([grpc_port(), admin_port()]),
        "deploy/Dockerfile EXPOSE: gRPC and admin ports"
    );

    let healthcheck: Vec<&str> = runtime.arguments("HEALTHCHECK").collect();
    assert_eq!(healthcheck.len(), 1, "deploy/Dockerfile: one HEALTHCHECK");
    let command = healthcheck[0]
        .split_once("CMD")
        .map(|(_, command)| command.trim())
        .expect("HEALTHCHECK ... CMD [...]");
    let command: Vec<String> = serde_json::from_str(command).expect("HEALTHCHECK CMD in exec form");
    assert_eq!(
        command,
        ["govlink-healthcheck", paths::HEALTHZ],
        "deploy/Dockerfile HEALTHCHECK: alive is the admin server's {}",
        paths::HEALTHZ
    );
    assert!(
        runtime.copies().iter().any(|(sources, destination, _)| {
            sources == &["deploy/healthcheck.sh"]
                && destination == "/usr/local/bin/govlink-healthcheck"
        }),
        "deploy/Dockerfile: deploy/healthcheck.sh must be installed as govlink-healthcheck"
    );

    let user: Vec<&str> = runtime.arguments("USER").collect();
    let uid = user
        .last()
        .expect("deploy/Dockerfile: a USER")
        .split(':')
        .next();
    assert!(
        !matches!(uid, Some("0" | "root")),
        "deploy/Dockerfile: the runtime user must not be root"
    );
}

#[test]
fn the_image_build_copies_every_file_the_crate_compiles_in() {
    let stages = stages(&read("deploy/Dockerfile"));
    let builder = stages.first().expect("a build stage");
    let copied: Vec<String> = builder
        .copies()
        .into_iter()
        .filter(|(_, _, from_stage)| !from_stage)
        .flat_map(|(sources, _, _)| sources)
        .collect();
    let covered = |path: &Path| copied.iter().any(|source| path.starts_with(source));

    let mut needed = vec![
        "Cargo.toml".into(),
        "Cargo.lock".into(),
        "build.rs".into(),
        "proto".into(),
    ];
    needed.extend(compiled_in_files(&repo().join("src")));
    for path in needed {
        assert!(
            covered(&path),
            "deploy/Dockerfile: the build needs {} but no COPY of the build stage brings it \
             (copied: {copied:?})",
            path.display()
        );
    }
}

/// Files that `include_str!`/`include_bytes!` under `dir` read, relative to the repository.
fn compiled_in_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(compiled_in_files(&path));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source file");
        for macro_call in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_call) {
                let rest = &text[at + macro_call.len()..];
                let literal = &rest[..rest.find('"').expect("closing quote")];
                let file = normalize(&path.parent().expect("parent").join(literal));
                let relative = file.strip_prefix(repo()).expect("inside the repository");
                found.push(relative.to_owned());
            }
        }
    }
    found
}

/// Answers two HTTP requests on a loopback port the way the admin server would: 200 on
/// the alive path, 503 with a reason on the ready path.
fn fake_admin_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let mut stream = stream.expect("connection");
            // The whole request head, as an HTTP server reads it before answering.
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            reader.read_line(&mut request).expect("request line");
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let answer = if request.starts_with(&format!("GET {} ", paths::HEALTHZ)) {
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            } else {
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 25\r\nconnection: close\r\n\r\nrecord store: rebuilding\n"
            };
            stream.write_all(answer.as_bytes()).expect("answer");
        }
    });
    (port, server)
}

fn healthcheck(admin_addr: &str, path: &str) -> std::process::Output {
    Command::new("bash")
        .arg(repo().join("deploy/healthcheck.sh"))
        .arg(path)
        .env("GOVLINK_ADMIN_ADDR", admin_addr)
        .output()
        .expect("running bash")
}

#[test]
fn the_health_check_succeeds_only_on_200_from_the_admin_port() {
    let (port, server) = fake_admin_server();
    let addr = format!("0.0.0.0:{port}");
    let alive = healthcheck(&addr, paths::HEALTHZ);
    assert!(
        alive.status.success(),
        "{:?}: {}",
        alive.status,
        String::from_utf8_lossy(&alive.stderr)
    );
    let ready = healthcheck(&addr, paths::READYZ);
    let said = String::from_utf8_lossy(&ready.stderr);
    assert!(!ready.status.success(), "a 503 is not healthy");
    assert!(
        said.contains("503") && said.contains("record store: rebuilding"),
        "the check says why: {said} ({:?}, {})",
        ready.status,
        String::from_utf8_lossy(&ready.stdout)
    );
    server.join().expect("server");

    // Nothing listening, and the admin server turned off: both fail, saying so.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let refused = healthcheck(&format!("0.0.0.0:{port}"), paths::HEALTHZ);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing listens"));
    let off = healthcheck("", paths::HEALTHZ);
    assert!(!off.status.success());
    assert!(String::from_utf8_lossy(&off.stderr).contains("admin server is off"));
}
