//! Settings from a TOML file, under flags and environment variables: a flag wins over its
//! `PORTWAY_*` variable, which wins over the file, which wins over the default.
//!
//! clap reads flags and variables but has no file source, and the crates that layer files
//! under clap (figment, config) want a second, serde-shaped copy of every setting. This does
//! it with clap alone: the file's keys are the flags' long names, and each value the file
//! gives for a flag that was not set on the command line or in the environment is handed to
//! clap as if it had been typed, so it is parsed and checked by the very same rules.
//!
//! ```toml
//! listen = ["0.0.0.0:8080", "[::]:8080"]
//! storage = "durable"
//! max-message-bytes = 8388608
//!
//! [ws]              # a table prefixes its keys: this is --ws-max-calls
//! max-calls = 200
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

/// A settings file that cannot be used; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsFileError(String);

/// Parses `argv` into `T`, with the TOML file named by the flag whose id is `file_arg` (for
/// `portway`, `--config`) layered under flags and environment variables. Errors from clap
/// (including `--help` and `--version`) come back as `clap::Error`, ready for `.exit()`.
pub fn parse<T, I>(argv: I, file_arg: &str) -> Result<T, ParseError>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = OsString>,
{
    let argv: Vec<OsString> = argv.into_iter().collect();
    let command = T::command();
    let matches = command.clone().try_get_matches_from(&argv)?;
    let Some(path) = matches.get_one::<PathBuf>(file_arg).cloned() else {
        return Ok(T::from_arg_matches(&matches)?);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        SettingsFileError(format!("cannot read the settings file {}: {}", path.display(), describe_io(&e)))
    })?;
    let extra = file_arguments(&command, &matches, &path, &text, file_arg)?;
    let mut full = argv;
    full.extend(extra);
    let matches = command.try_get_matches_from(full).map_err(|e| {
        SettingsFileError(format!("in the settings file {}: {}", path.display(), e.render().to_string().trim_end()))
    })?;
    Ok(T::from_arg_matches(&matches)?)
}

/// Why [`parse`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The command line or environment (or `--help`): print it with `clap::Error::exit`.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The settings file.
    #[error(transparent)]
    File(#[from] SettingsFileError),
}

/// The arguments the file adds: `--name=value` for each key whose flag was left at its
/// default.
fn file_arguments(
    command: &Command,
    matches: &ArgMatches,
    path: &Path,
    text: &str,
    file_arg: &str,
) -> Result<Vec<OsString>, SettingsFileError> {
    let file = path.display();
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        SettingsFileError(format!("the settings file {file} is not valid TOML: {}", e.message()))
    })?;
    let mut entries = Vec::new();
    flatten("", table, &mut entries);
    let mut out = Vec::new();
    for (key, value) in entries {
        let long = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && a.get_id() != file_arg)
            .ok_or_else(|| SettingsFileError(format!("the settings file {file} sets `{key}`, which is not a setting (the keys are the long flag names of portway --help, without the dashes)")))?;
        let given =
            |id: &str| matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
        // Set above the file, directly or through a flag that takes its place
        // (`--shutdown-grace` for `--shutdown-grace-ms`): the file's value is not used.
        let conflict =
            |a: &clap::Arg, b: &clap::Arg| command.get_arg_conflicts_with(a).iter().any(|c| c.get_id() == b.get_id());
        if given(arg.get_id().as_str())
            || command
                .get_arguments()
                .any(|other| given(other.get_id().as_str()) && (conflict(arg, other) || conflict(other, arg)))
        {
            continue;
        }
        let flag = matches!(arg.get_action(), ArgAction::SetTrue);
        let values = match value {
            toml::Value::Array(items) => items,
            single => vec![single],
        };
        for value in values {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) if flag => {
                    if b {
                        out.push(OsString::from(format!("--{long}")));
                    }
                    continue;
                }
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(SettingsFileError(format!(
                        "the settings file {file} gives `{key}` a {}, but a setting is a string, a number, a boolean or \
                         an array of them",
                        other.type_str()
                    )));
                }
            };
            if flag {
                return Err(SettingsFileError(format!(
                    "the settings file {file} gives `{key}` the value `{text}`, but it is a switch: write true or false"
                )));
            }
            out.push(OsString::from(format!("--{long}={text}")));
        }
    }
    Ok(out)
}

/// `[ws] max-calls = 1` is `ws-max-calls = 1`.
fn flatten(prefix: &str, table: toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() { key } else { format!("{prefix}-{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&key, inner, out),
            other => out.push((key, other)),
        }
    }
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Args {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, env = "SETTINGS_FILE_TEST_LIMIT", default_value_t = 4)]
        limit: u64,
        #[arg(long, default_value = "/ws")]
        ws_path: String,
        #[arg(long)]
        listen: Vec<String>,
        #[arg(long)]
        interop: bool,
        #[arg(long, conflicts_with = "limit")]
        limit_text: Option<String>,
    }

    fn run(file: &str, argv: &[&str]) -> Result<Args, ParseError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portway.toml");
        std::fs::write(&path, file).unwrap();
        let mut full = vec!["portway".into(), "--config".into(), path.into_os_string()];
        full.extend(argv.iter().map(OsString::from));
        parse::<Args, _>(full, "config")
    }

    #[test]
    fn file_fills_what_flags_leave() {
        let a = run("limit = 9\ninterop = true\nlisten = [\"a:1\", \"b:2\"]\n[ws]\npath = \"/socket\"\n", &[]).unwrap();
        assert_eq!((a.limit, a.interop, a.ws_path.as_str()), (9, true, "/socket"));
        assert_eq!(a.listen, ["a:1", "b:2"]);
    }

    #[test]
    fn flags_win_over_the_file() {
        let a = run("limit = 9\nlisten = [\"a:1\"]", &["--limit", "3", "--listen", "c:3"]).unwrap();
        assert_eq!(a.limit, 3);
        assert_eq!(a.listen, ["c:3"]);
    }

    /// A flag that takes another's place (they conflict) wins over the file's value for the
    /// other; the two together on the command line are refused.
    #[test]
    fn a_flag_in_place_of_another_wins_over_the_file() {
        let a = run("limit = 9", &["--limit-text", "ten"]).unwrap();
        assert_eq!((a.limit, a.limit_text.as_deref()), (4, Some("ten")));
        let e = run("", &["--limit", "3", "--limit-text", "ten"]).unwrap_err().to_string();
        assert!(e.contains("cannot be used with"), "{e}");
    }

    #[test]
    fn mistakes_are_sentences_naming_the_key() {
        let e = run("limt = 9", &[]).unwrap_err().to_string();
        assert!(e.contains("sets `limt`, which is not a setting"), "{e}");
        let e = run("limit = \"many\"", &[]).unwrap_err().to_string();
        assert!(e.contains("in the settings file") && e.contains("many"), "{e}");
        let e = run("limit = ", &[]).unwrap_err().to_string();
        assert!(e.contains("is not valid TOML"), "{e}");
        let e = run("interop = \"yes\"", &[]).unwrap_err().to_string();
        assert!(e.contains("it is a switch"), "{e}");
    }
}
