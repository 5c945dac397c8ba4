//! The house rules, checked on the source. Every module of the crate sits on a layer of
//! [`LAYERS`] — the one place the layering is written — and imports (`crate::<module>`)
//! only modules of its own layer or lower ones, and no chain of imports between modules
//! comes back to where it started.
//!
//! `cargo test --test layering -- --nocapture` also prints the module graph's figures:
//! modules, cycles, imports that run upwards, the largest modules and the longest
//! functions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// The layers, from the bottom. A module may import its own layer and those below.
const LAYERS: &[&[&str]] = &[
    // Pure values: validated identifiers, secrets that never print, token buckets, the
    // generated wire types.
    &["domain", "secret", "limits", "proto", "toml_lines"],
    // What every service speaks of: records, who is calling, what is counted and logged.
    &["records", "identity", "telemetry"],
    // Links to the outside: the broker, Redis, TLS, and how an unreachable one is said.
    &["reach", "kafka", "redis_link", "tls"],
    // The gRPC boundary and the audit trail every service writes.
    &["grpc", "audit"],
    // The services.
    &["adapters", "resolver", "cases"],
    // What wires them: the admin port, the settings that build the links.
    &["admin", "config"],
    &["app"],
    // What runs the app or beside it.
    &["tools", "bench", "demo"],
    // The command line, over all of the above.
    &["cli"],
];

/// One file of the crate: its module path from the crate root and its text.
struct Source {
    /// E.g. `resolver/query/mod.rs`.
    path: String,
    text: String,
}

/// A broken house rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Violation {
    /// A module the layer table does not place.
    Unplaced { module: String },
    /// A module in the table that the crate does not have.
    Missing { module: String },
    /// `from` (on a lower layer) imports `to` (on a higher one), at `file:line`.
    Upward {
        from: String,
        to: String,
        at: String,
    },
    /// Modules that import each other, directly or through others: one cycle through
    /// them, and every module of the knot it is part of.
    Cycle {
        modules: Vec<String>,
        knot: Vec<String>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Unplaced { module } => {
                write!(f, "module {module} is on no layer: add it to LAYERS")
            }
            Violation::Missing { module } => {
                write!(f, "LAYERS names {module}, which the crate does not have")
            }
            Violation::Upward { from, to, at } => write!(
                f,
                "{at}: {from} imports {to}, a higher layer (move the item down, or pass it in)"
            ),
            Violation::Cycle { modules, knot } => write!(
                f,
                "modules import each other: {} (a knot of {}: {})",
                modules.join(" -> "),
                knot.len(),
                knot.join(", ")
            ),
        }
    }
}

/// The module a file belongs to: its first path segment (`resolver/query/mod.rs` →
/// `resolver`, `config.rs` → `config`); `None` for the crate root.
fn module_of(path: &str) -> Option<String> {
    let first = path.split('/').next()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (module != "lib" && module != "main").then(|| module.to_owned())
}

/// Every `crate::<module>` a text names, with its 1-based line; comments left out.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let boundary = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            if boundary && !name.is_empty() {
                found.push((i + 1, name));
            }
            rest = after;
        }
    }
    found
}

/// The module graph: who imports whom, and where first.
struct Graph {
    modules: BTreeSet<String>,
    /// (from, to) → the first `file:line` of such an import.
    edges: BTreeMap<(String, String), String>,
}

impl Graph {
    fn of(sources: &[Source]) -> Graph {
        let mut modules = BTreeSet::new();
        let mut edges = BTreeMap::new();
        for source in sources {
            let Some(from) = module_of(&source.path) else {
                continue;
            };
            modules.insert(from.clone());
            for (line, to) in imports(&source.text) {
                if to != from {
                    edges
                        .entry((from.clone(), to))
                        .or_insert_with(|| format!("src/{}:{line}", source.path));
                }
            }
        }
        Graph { modules, edges }
    }

    fn imported_by(&self, from: &str) -> impl Iterator<Item = &str> {
        self.edges
            .keys()
            .filter(move |(f, _)| f == from)
            .map(|(_, t)| t.as_str())
    }

    /// The strongly connected groups of two or more modules (Tarjan), each as a cycle
    /// path through it and its members.
    fn cycles(&self) -> Vec<(Vec<String>, Vec<String>)> {
        let mut groups = Vec::new();
        let mut state = Tarjan::default();
        for module in &self.modules {
            if !state.index.contains_key(module.as_str()) {
                state.visit(self, module, &mut groups);
            }
        }
        groups
            .into_iter()
            .filter(|g: &Vec<String>| g.len() > 1)
            .map(|mut g| {
                g.sort();
                (self.cycle_through(&g), g)
            })
            .collect()
    }

    /// A path from the group's first module back to itself inside the group.
    fn cycle_through(&self, group: &[String]) -> Vec<String> {
        let inside: BTreeSet<&str> = group.iter().map(String::as_str).collect();
        let start = group.iter().min().expect("a non-empty group").as_str();
        // Breadth-first from `start` to any module that imports `start`.
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(at) = queue.pop_front() {
            for next in self.imported_by(at).filter(|m| inside.contains(m)) {
                if next == start {
                    let mut back = Vec::new();
                    let mut walk = at;
                    while walk != start {
                        back.push(walk.to_owned());
                        walk = previous[walk];
                    }
                    back.reverse();
                    let mut path = vec![start.to_owned()];
                    path.extend(back);
                    path.push(start.to_owned());
                    return path;
                }
                if !previous.contains_key(next) && next != start {
                    previous.insert(next, at);
                    queue.push_back(next);
                }
            }
        }
        group.to_vec()
    }
}

#[derive(Default)]
struct Tarjan<'g> {
    next: usize,
    index: BTreeMap<&'g str, usize>,
    low: BTreeMap<&'g str, usize>,
    stack: Vec<&'g str>,
    on_stack: BTreeSet<&'g str>,
}

impl<'g> Tarjan<'g> {
    fn visit(&mut self, graph: &'g Graph, module: &'g str, groups: &mut Vec<Vec<String>>) {
        self.index.insert(module, self.next);
        self.low.insert(module, self.next);
        self.next += 1;
        self.stack.push(module);
        self.on_stack.insert(module);
        for next in graph.imported_by(module) {
            if !graph.modules.contains(next) {
                continue;
            }
            if !self.index.contains_key(next) {
                self.visit(graph, next, groups);
                let low = self.low[module].min(self.low[next]);
                self.low.insert(module, low);
            } else if self.on_stack.contains(next) {
                let low = self.low[module].min(self.index[next]);
                self.low.insert(module, low);
            }
        }
        if self.low[module] == self.index[module] {
            let mut group = Vec::new();
            while let Some(top) = self.stack.pop() {
                self.on_stack.remove(top);
                group.push(top.to_owned());
                if top == module {
                    break;
                }
            }
            groups.push(group);
        }
    }
}

/// Every broken rule of `sources` under `layers`.
fn check(sources: &[Source], layers: &[&[&str]]) -> Vec<Violation> {
    let graph = Graph::of(sources);
    let layer_of: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (*n, i)))
        .collect();
    let mut violations = Vec::new();
    for module in &graph.modules {
        if !layer_of.contains_key(module.as_str()) {
            violations.push(Violation::Unplaced {
                module: module.clone(),
            });
        }
    }
    for name in layer_of.keys() {
        // `proto` lives in the crate root, not in a file of its own.
        if *name != "proto" && !graph.modules.contains(*name) {
            violations.push(Violation::Missing {
                module: (*name).to_owned(),
            });
        }
    }
    for ((from, to), at) in &graph.edges {
        if let (Some(f), Some(t)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
            && t > f
        {
            violations.push(Violation::Upward {
                from: from.clone(),
                to: to.clone(),
                at: at.clone(),
            });
        }
    }
    for (modules, knot) in graph.cycles() {
        violations.push(Violation::Cycle { modules, knot });
    }
    violations.sort();
    violations
}

/// Every `.rs` file under `dir`, its path relative to `root`.
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(Source {
                path: path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
                text: std::fs::read_to_string(&path).unwrap(),
            });
        }
    }
}

fn crate_sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_tree(&root, &root, &mut sources);
    sources
}

/// Functions longer than `over` lines: (lines, `file:line name`), longest first. A
/// function runs from its `fn` line to the first line that closes at its indentation.
fn long_functions(sources: &[Source], over: usize) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for source in sources {
        let lines: Vec<&str> = source.text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let signature = ["fn ", "pub fn ", "async fn ", "pub async fn ", "const fn "]
                .iter()
                .any(|p| trimmed.starts_with(p))
                || (trimmed.starts_with("pub(") && trimmed.contains(" fn "));
            if !signature || trimmed.ends_with(';') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let close = format!("{}}}", " ".repeat(indent));
            if let Some(end) = lines[i..].iter().position(|l| l.starts_with(&close)) {
                let length = end + 1;
                if length > over {
                    let name: String = trimmed
                        .split("fn ")
                        .nth(1)
                        .unwrap_or_default()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    found.push((length, format!("src/{}:{} {name}", source.path, i + 1)));
                }
            }
        }
    }
    found.sort_by(|a, b| b.cmp(a));
    found
}

#[test]
fn the_crate_keeps_its_layers_and_has_no_cycles() {
    let sources = crate_sources();
    let graph = Graph::of(&sources);
    let violations = check(&sources, LAYERS);

    // The figures, for a reader of --nocapture.
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for source in &sources {
        if let Some(module) = module_of(&source.path) {
            *sizes.entry(module).or_default() += source.text.lines().count();
        }
    }
    let two_way = graph
        .edges
        .keys()
        .filter(|(f, t)| f < t && graph.edges.contains_key(&(t.clone(), f.clone())))
        .count();
    println!(
        "{} modules on {} layers; {} cycles; {} two-way module pairs; {} upward imports",
        graph.modules.len(),
        LAYERS.len(),
        violations
            .iter()
            .filter(|v| matches!(v, Violation::Cycle { .. }))
            .count(),
        two_way,
        violations
            .iter()
            .filter(|v| matches!(v, Violation::Upward { .. }))
            .count(),
    );
    let mut files: Vec<(usize, &str)> = sources
        .iter()
        .map(|s| (s.text.lines().count(), s.path.as_str()))
        .collect();
    files.sort_by(|a, b| b.cmp(a));
    println!("largest files: {:?}", &files[..5.min(files.len())]);
    let mut modules: Vec<(usize, &String)> = sizes.iter().map(|(m, n)| (*n, m)).collect();
    modules.sort_by(|a, b| b.cmp(a));
    println!(
        "largest modules (lines): {:?}",
        &modules[..5.min(modules.len())]
    );
    println!(
        "functions over 80 lines: {:?}",
        long_functions(&sources, 80)
    );
    for violation in &violations {
        println!("{violation}");
    }
    assert!(
        violations.is_empty(),
        "{} broken house rules:\n{}",
        violations.len(),
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn tree(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(path, text)| Source {
            path: (*path).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

const SMALL: &[&[&str]] = &[&["domain"], &["kafka", "tls"], &["app"]];

#[test]
fn a_clean_tree_passes() {
    let sources = tree(&[
        ("lib.rs", "pub mod app;"),
        ("domain/mod.rs", "// crate::app is named in a comment only"),
        ("kafka.rs", "use crate::domain::X;\nuse crate::tls::Y;"),
        ("tls/mod.rs", "use crate::domain::Z;"),
        (
            "app/mod.rs",
            "use crate::kafka::K; fn f() { crate::tls::go(); }",
        ),
    ]);
    assert_eq!(check(&sources, SMALL), []);
}

#[test]
fn an_import_from_a_lower_layer_to_a_higher_one_fails() {
    let sources = tree(&[
        ("domain/mod.rs", ""),
        ("kafka.rs", ""),
        ("tls/mod.rs", "\n    let _ = crate::app::App::build;"),
        ("app/mod.rs", ""),
    ]);
    assert_eq!(
        check(&sources, SMALL),
        [Violation::Upward {
            from: "tls".into(),
            to: "app".into(),
            at: "src/tls/mod.rs:2".into(),
        }]
    );
}

#[test]
fn modules_of_one_layer_importing_each_other_fail() {
    let sources = tree(&[
        ("domain/mod.rs", ""),
        ("kafka.rs", "use crate::tls::Peer;"),
        ("tls/mod.rs", "use crate::kafka::link::Link;"),
        ("app/mod.rs", ""),
    ]);
    assert_eq!(
        check(&sources, SMALL),
        [Violation::Cycle {
            modules: vec!["kafka".into(), "tls".into(), "kafka".into()],
            knot: vec!["kafka".into(), "tls".into()],
        }]
    );
}

#[test]
fn a_cycle_through_a_higher_layer_is_named_with_its_upward_import() {
    let sources = tree(&[
        ("domain/mod.rs", "use crate::app::Settings;"),
        ("kafka.rs", "use crate::domain::Id;"),
        ("tls/mod.rs", ""),
        ("app/mod.rs", "use crate::kafka::Link;"),
    ]);
    let found = check(&sources, SMALL);
    assert!(found.contains(&Violation::Cycle {
        modules: vec!["app".into(), "kafka".into(), "domain".into(), "app".into()],
        knot: vec!["app".into(), "domain".into(), "kafka".into()],
    }));
    assert!(found.contains(&Violation::Upward {
        from: "domain".into(),
        to: "app".into(),
        at: "src/domain/mod.rs:1".into(),
    }));
}

#[test]
fn a_module_on_no_layer_and_a_layer_naming_none_fail() {
    let sources = tree(&[
        ("domain/mod.rs", ""),
        ("kafka.rs", ""),
        ("ops/mod.rs", ""),
        ("app/mod.rs", ""),
    ]);
    assert_eq!(
        check(&sources, SMALL),
        [
            Violation::Unplaced {
                module: "ops".into()
            },
            Violation::Missing {
                module: "tls".into()
            },
        ]
    );
}
