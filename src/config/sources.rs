//! Where settings come from, and errors that point at the mistake: a problem in the
//! configuration file names its line and key (toml's spans locate it), an unknown key or
//! `GOVLINK_*` variable names the nearest setting, and a variable's error names the
//! variable.

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};

use super::{ConfigError, Settings};
use crate::toml_lines::Lines;

/// The `GOVLINK_` variables that are not settings, yet are ours: the binary's
/// `--config` (`GOVLINK_CONFIG`), and those the test suite (`scripts/test.sh`, `tests/`)
/// and the benchmarks read. Every other `GOVLINK_` variable must name a setting.
pub const OTHER_VARIABLES: [&str; 9] = [
    "GOVLINK_CONFIG",
    "GOVLINK_TEST_KAFKA",
    "GOVLINK_TEST_REDIS",
    "GOVLINK_TEST_REDIS_CLUSTER",
    "GOVLINK_TEST_TANSU_BIN",
    "GOVLINK_TEST_CHROMIUM",
    "GOVLINK_TEST_ONLY_SERVICES",
    "GOVLINK_TEST_CHILD_LOG",
    "GOVLINK_BENCH_REDIS",
];

/// The prefix of every setting's environment variable.
const PREFIX: &str = "GOVLINK_";

/// The settings of the file's text as a table, after checking that they fit `Settings`;
/// a problem names `name` (the file as the operator gave it) and the line.
pub(super) fn file(name: &str, text: &str) -> Result<toml::Table, ConfigError> {
    let at_line = |e: toml::de::Error| ConfigError::File {
        file: name.to_owned(),
        line: e.span().map_or(1, |span| Lines(text).at(span.start)),
        message: explain_file_error(text, &e),
    };
    // Deserializing from the text (not from a parsed table) keeps each value's span, so
    // the first value that does not fit is found with its line.
    toml::from_str::<Settings>(text).map_err(at_line)?;
    text.parse().map_err(at_line)
}

/// The settings named by `GOVLINK_<SETTING>` variables of `env`, each typed as its setting
/// and checked alone, so a problem names its variable. A `GOVLINK_` variable that is
/// neither a setting nor one of [`OTHER_VARIABLES`] is an error naming the nearest.
pub(super) fn environment(env: &HashMap<String, String>) -> Result<toml::Table, ConfigError> {
    let fields = setting_kinds();
    let mut names: Vec<&String> = env.keys().filter(|n| n.starts_with(PREFIX)).collect();
    // The first problem in name order, whatever the order of the process environment.
    names.sort();
    let mut table = toml::Table::new();
    for name in names {
        if OTHER_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let field = name[PREFIX.len()..].to_ascii_lowercase();
        let Some(kind) = fields.get(&field) else {
            return Err(unknown_variable(name, &fields));
        };
        let value = typed(name, &field, kind, &env[name])?;
        let alone = toml::Table::from_iter([(field.clone(), value.clone())]);
        alone.try_into::<Settings>().map_err(|e: toml::de::Error| {
            let found = Some(env[name].as_str());
            ConfigError::Invalid(format!("{name}: {}", explain(None, e.message(), found)))
        })?;
        table.insert(field, value);
    }
    Ok(table)
}

/// Every setting's name with its default, whose JSON kind says how a variable is typed
/// (JSON, unlike TOML, keeps the options that are unset by default, as null).
fn setting_kinds() -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(fields)) => fields,
        other => unreachable!("settings serialize as a struct, not {other:?}"),
    }
}

/// The value of variable `name` for setting `field`, typed like the setting's default.
fn typed(
    name: &str,
    field: &str,
    default: &serde_json::Value,
    value: &str,
) -> Result<toml::Value, ConfigError> {
    use serde_json::Value as Json;
    let invalid = |expected: &str| {
        ConfigError::Invalid(format!("{name}: expected {expected}, found {value:?}"))
    };
    Ok(match default {
        Json::Number(_) => {
            toml::Value::Integer(value.trim().parse().map_err(|_| invalid("an integer"))?)
        }
        Json::Bool(_) => {
            toml::Value::Boolean(value.trim().parse().map_err(|_| invalid("true or false"))?)
        }
        Json::Object(_) => toml::Value::Table(pairs(name, value)?),
        Json::Array(_) => {
            return Err(ConfigError::Invalid(format!(
                "{name}: {field} is a list of tables; set it in the configuration file"
            )));
        }
        Json::Null | Json::String(_) => toml::Value::String(value.to_owned()),
    })
}

/// A table of whole numbers from an environment variable `name` of the form
/// `key=number,key=number` (spaces around either allowed; empty: an empty table).
fn pairs(name: &str, value: &str) -> Result<toml::Table, ConfigError> {
    let mut table = toml::Table::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let invalid = || {
            ConfigError::Invalid(format!(
                "{name}: {pair:?} is not key=number (the form is key=number,key=number)"
            ))
        };
        let (key, number) = pair.split_once('=').ok_or_else(invalid)?;
        let number: i64 = number.trim().parse().map_err(|_| invalid())?;
        table.insert(key.trim().to_owned(), toml::Value::Integer(number));
    }
    Ok(table)
}

/// The error for a `GOVLINK_` variable that names no setting.
fn unknown_variable(
    name: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> ConfigError {
    // Compared without the prefix every candidate shares, which would make any two
    // names look alike.
    let known = fields
        .keys()
        .cloned()
        .chain(OTHER_VARIABLES.map(|other| other[PREFIX.len()..].to_ascii_lowercase()));
    let hint = match nearest(&name[PREFIX.len()..].to_ascii_lowercase(), known) {
        Some(near) => format!("did you mean {PREFIX}{}?", near.to_ascii_uppercase()),
        None => "the settings and their variables are listed in the README, \
                 \"Configuration\""
            .to_owned(),
    };
    ConfigError::Invalid(format!(
        "the environment variable {name} names no setting; {hint}"
    ))
}

/// The candidate `word` was most likely meant to be: the closest in edit distance if
/// it is a slip of a letter or two (one per four letters, at most three), else the
/// longest candidate `word` extends with `_…` (`redis_url` for `redis`); none if neither.
fn nearest(word: &str, candidates: impl IntoIterator<Item = String>) -> Option<String> {
    let limit = (word.len() / 4).clamp(1, 3);
    let candidates: Vec<String> = candidates.into_iter().collect();
    let slip = candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c);
    let extended = || {
        candidates
            .iter()
            .filter(|c| {
                word.strip_prefix(c.as_str())
                    .is_some_and(|rest| rest.starts_with('_'))
            })
            .max_by_key(|c| c.len())
    };
    slip.or_else(extended).cloned()
}

/// An error of the file, in words: the key it concerns (found from its span), what was
/// expected and what was found.
fn explain_file_error(text: &str, error: &toml::de::Error) -> String {
    let span = error.span();
    let message = error.message();
    let found = span.clone().and_then(|s| text.get(s)).map(str::trim);
    // A syntax error leaves no document to find the key in; its span is the key's.
    if message == "duplicate key" {
        return format!("duplicate key `{}`", found.unwrap_or_default());
    }
    let key = span.and_then(|span| {
        let document = DeTable::parse(text).ok()?;
        key_at(document.get_ref(), span.start, String::new())
    });
    explain(key.as_deref(), message, found)
}

/// A serde message in the words of a settings file: `key: expected …, found …`, an
/// unknown key with the nearest valid one. `found` is the value's text, when known.
fn explain(key: Option<&str>, message: &str, found: Option<&str>) -> String {
    let within = |text: String| match key {
        Some(key) if !text.starts_with(key) => format!("{key}: {text}"),
        _ => text,
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (unknown, expected) = rest.split_once('`').unwrap_or((rest, ""));
        // The valid keys are the ones the message quotes after "expected".
        let valid = expected.split('`').skip(1).step_by(2).map(String::from);
        let hint = nearest(unknown, valid)
            .map(|near| format!("; did you mean `{near}`?"))
            .unwrap_or_default();
        // `key` is the path of the unknown key itself: say which table it is in.
        let table = key.map_or("", |key| {
            key.strip_suffix(unknown)
                .map_or(key, |table| table.trim_end_matches('.'))
        });
        return match table {
            "" => format!("unknown key `{unknown}`{hint}"),
            table => format!("{table}: unknown key `{unknown}`{hint}"),
        };
    }
    if let Some(missing) = message.strip_prefix("missing field ") {
        return within(format!("missing key {missing}"));
    }
    if message == "invalid socket address syntax" {
        let found = found.unwrap_or_default();
        return within(format!(
            "expected an IP address and port such as 127.0.0.1:50051, found {found}"
        ));
    }
    for (prefix, out_of_range) in [("invalid type: ", false), ("invalid value: ", true)] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((unexpected, expected)) = rest.rsplit_once(", expected ") else {
            continue;
        };
        let found = match found {
            Some(text) if out_of_range => text.to_owned(),
            _ => described(unexpected),
        };
        return within(format!(
            "expected {}, found {found}",
            expected_in_words(expected, out_of_range)
        ));
    }
    within(message.to_owned())
}

/// serde's name of the type a setting wants, in words; integers with their range when
/// the value was out of it.
fn expected_in_words(expected: &str, out_of_range: bool) -> String {
    let range = match expected {
        "i8" => Some((i8::MIN.to_string(), i8::MAX.to_string())),
        "i16" => Some((i16::MIN.to_string(), i16::MAX.to_string())),
        "i32" => Some((i32::MIN.to_string(), i32::MAX.to_string())),
        "i64" | "isize" => Some((i64::MIN.to_string(), i64::MAX.to_string())),
        "u8" => Some(("0".into(), u8::MAX.to_string())),
        "u16" => Some(("0".into(), u16::MAX.to_string())),
        "u32" => Some(("0".into(), u32::MAX.to_string())),
        "u64" | "usize" => Some(("0".into(), u64::MAX.to_string())),
        _ => None,
    };
    match (range, out_of_range) {
        (Some((min, max)), true) => format!("an integer from {min} to {max}"),
        (Some(_), false) => "an integer".into(),
        (None, _) => match expected {
            "a boolean" => "true or false".into(),
            "a sequence" => "an array".into(),
            "a map" => "a table".into(),
            struct_ if struct_.starts_with("struct ") => "a table".into(),
            other => other.into(),
        },
    }
}

/// serde's description of a value found (`string "six"`, ``integer `5` ``, `map`) in
/// words: `a string "six"`, `an integer 5`, `a table`.
fn described(unexpected: &str) -> String {
    let (kind, value) = unexpected.split_once(' ').unwrap_or((unexpected, ""));
    let value = value.trim_matches('`');
    match kind {
        "string" => format!("a string {value}"),
        "integer" => format!("an integer {value}"),
        "floating" => format!("a float {}", value.trim_start_matches("point ")),
        "boolean" => format!("a boolean {value}"),
        "map" => "a table".into(),
        "sequence" => "an array".into(),
        _ => unexpected.to_owned(),
    }
}

/// The dotted path (`purchase_rules[0].months_required`) of the innermost key whose
/// name or value holds byte `offset` of the document.
fn key_at(table: &DeTable<'_>, offset: usize, prefix: String) -> Option<String> {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if key.span().contains(&offset) {
            return Some(path);
        }
        if let Some(inner) = value_at(value.get_ref(), offset, &path) {
            return Some(inner);
        }
        if value.span().contains(&offset) {
            return Some(path);
        }
    }
    None
}

/// The path of the key holding `offset` inside `value` (a table or an array of them).
fn value_at(value: &DeValue<'_>, offset: usize, path: &str) -> Option<String> {
    match value {
        DeValue::Table(table) => key_at(table, offset, path.to_owned()),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let path = format!("{path}[{i}]");
            value_at(item.get_ref(), offset, &path)
                .or_else(|| item.span().contains(&offset).then_some(path))
        }),
        _ => None,
    }
}
