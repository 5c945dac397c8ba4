//! Reading the repository's files: text, YAML (with `<<` merge keys applied, as compose
//! applies them) and multi-document YAML.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

/// The repository root.
pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, by its path from the root.
pub(crate) fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One YAML document, merge keys applied.
pub(crate) fn yaml(path: &str) -> Value {
    let mut value: Value =
        serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    merge_keys(&mut value, path);
    value
}

/// Applies `<<` merge keys, also those of a merged mapping that merges another (which
/// `Value::apply_merge` leaves in place): keys of the mapping itself win, then those of
/// what it merges, nearest first.
fn merge_keys(value: &mut Value, path: &str) {
    match value {
        Value::Mapping(mapping) => {
            while let Some(merged) = mapping.remove("<<") {
                let sources = match merged {
                    Value::Mapping(source) => vec![source],
                    Value::Sequence(list) => list
                        .into_iter()
                        .map(|item| match item {
                            Value::Mapping(source) => source,
                            other => panic!("{path}: cannot merge {other:?}"),
                        })
                        .collect(),
                    other => panic!("{path}: cannot merge {other:?}"),
                };
                for source in sources {
                    for (key, item) in source {
                        mapping.entry(key).or_insert(item);
                    }
                }
            }
            for item in mapping.values_mut() {
                merge_keys(item, path);
            }
        }
        Value::Sequence(list) => list.iter_mut().for_each(|item| merge_keys(item, path)),
        _ => {}
    }
}

/// Every non-empty document of a multi-document YAML file.
pub(crate) fn yaml_documents(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = Value::deserialize(document).unwrap_or_else(|e| panic!("{path}: {e}"));
            merge_keys(&mut value, path);
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// Every text file of the repository's sources, tests, scripts, deployment files and
/// documentation, by its path from the root, sorted.
pub(crate) fn text_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    for dir in [
        "src", "tests", "benches", "scripts", "deploy", "docs", ".github",
    ] {
        walk(&repo().join(dir), &mut paths);
    }
    paths.extend(["README.md", "Cargo.toml"].map(|file| repo().join(file)));
    let mut files: Vec<String> = paths
        .into_iter()
        // Text only (a PNG of the docs is not read).
        .filter(|path| std::fs::read_to_string(path).is_ok())
        .map(|path| {
            let relative = path.strip_prefix(repo()).expect("under the repository");
            relative.to_string_lossy().into_owned()
        })
        .collect();
    files.sort();
    files
}

/// The YAML files of deploy/k8s/, by name, sorted.
pub(crate) fn k8s_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("deploy/k8s"))
        .expect("deploy/k8s")
        .map(|entry| entry.expect("deploy/k8s entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

/// `path` with `.` and `..` resolved lexically.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A string of a YAML value, panicking with `what` when it is not one.
pub(crate) fn string<'v>(value: &'v Value, what: &str) -> &'v str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, found {value:?}"))
}

/// A scalar as text (YAML numbers and booleans as written, e.g. `1`, `true`).
pub(crate) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The items of a YAML sequence (none when absent).
pub(crate) fn items(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or_default()
}
