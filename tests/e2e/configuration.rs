//! The binary stops at start-up on a configuration mistake, naming it: a value of the
//! wrong type or an unknown key with the file's line, a `GOVLINK_` variable that names no
//! setting with the nearest one.

use std::process::{Command, Output};

use crate::helpers::unique;

/// `govlink topics list` with `configure` applied, against a broker nobody listens at (a
/// configuration error stops it before any connection).
fn govlink_topics_list(configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_govlink"));
    command
        .args(["topics", "list"])
        .env("GOVLINK_KAFKA", "127.0.0.1:9")
        .env("RUST_BACKTRACE", "0");
    configure(&mut command);
    command.output().expect("running govlink")
}

/// The stderr of a run that must have failed.
fn refused(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "started: {stderr}");
    stderr
}

#[test]
fn a_mistake_in_the_config_file_stops_start_up_naming_the_file_line_and_key() {
    let file = std::env::temp_dir().join(format!("{}.toml", unique("config")));
    for (text, says) in [
        (
            "kafka = \"127.0.0.1:9\"\n\npartitions = \"six\"\n",
            "line 3: partitions: expected an integer, found a string \"six\"",
        ),
        (
            "kafka = \"127.0.0.1:9\"\npartitons = 6\n",
            "line 2: unknown key `partitons`; did you mean `partitions`?",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let stderr = refused(&govlink_topics_list(|c| {
            c.arg("--config").arg(&file);
        }));
        let says = format!("{}: {says}", file.display());
        assert!(stderr.contains(&says), "wanted {says:?} in {stderr}");
    }
    std::fs::remove_file(file).unwrap();
}

#[test]
fn a_govlink_variable_that_names_no_setting_stops_start_up_naming_it() {
    let stderr = refused(&govlink_topics_list(|c| {
        c.env("GOVLINK_PARTITONS", "6");
    }));
    assert!(
        stderr.contains(
            "the environment variable GOVLINK_PARTITONS names no setting; did you mean \
             GOVLINK_PARTITIONS?"
        ),
        "{stderr}"
    );
}
