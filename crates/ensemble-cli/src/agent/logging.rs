//! The agent's logs on stderr: their level (`--log-level`, `ENSEMBLE_LOG_LEVEL`, config key
//! `log_level`, else `RUST_LOG`, else info) and format (`--log-format text|json`), the level
//! read again from the config file on SIGHUP, and the monitors' layer (`log_stream`).

use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use tracing::info;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use super::settings::FileSettings;
use super::AgentArgs;
use crate::log_stream::LogHub;

/// Longest log level directive accepted, in bytes.
const MAX_DIRECTIVE: usize = 1024;
/// The level when nothing sets one.
const DEFAULT_LEVEL: &str = "info";

/// How the agent logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per line: timestamp, level, target, message and the event's fields.
    Json,
}

/// The log settings from the flags, the environment and the config file.
#[derive(Debug)]
pub struct LogSettings {
    /// The filter directive (`info`, `info,ensemble::transport=debug`...).
    pub level: String,
    /// The level comes from `--log-level` or `ENSEMBLE_LOG_LEVEL`, which the config file
    /// cannot override, not even on SIGHUP.
    pub level_from_flag: bool,
    pub format: LogFormat,
}

/// Checks a level directive: a level name or an EnvFilter directive, bounded in size.
pub fn check_level(what: &str, level: &str) -> Result<EnvFilter> {
    if level.len() > MAX_DIRECTIVE {
        bail!("{what}: at most {MAX_DIRECTIVE} bytes");
    }
    let names = ["error", "warn", "info", "debug", "trace", "off"];
    let single_word = !level.contains(['=', ',', '[', ':']);
    // A single word is a target to EnvFilter: a misspelt level would silently log nothing.
    if single_word && !names.iter().any(|n| n.eq_ignore_ascii_case(level.trim())) {
        bail!(
            "{what} {level:?}: expected error, warn, info, debug or trace, or a directive \
             such as info,ensemble::transport=debug"
        );
    }
    EnvFilter::builder().parse(level).with_context(|| {
        format!(
            "{what} {level:?}: expected error, warn, info, debug or trace, or a directive \
                 such as info,ensemble::transport=debug"
        )
    })
}

/// The level of the config file `file`, else `RUST_LOG`, else info.
fn level_without_flag(file: Option<&FileSettings>) -> Result<String> {
    if let Some(l) = file.and_then(|f| f.log_level.clone()) {
        check_level("log_level in the config file", &l)?;
        return Ok(l);
    }
    // RUST_LOG as before: ignored when it does not parse.
    Ok(std::env::var("RUST_LOG")
        .ok()
        .filter(|l| check_level("RUST_LOG", l).is_ok())
        .unwrap_or_else(|| DEFAULT_LEVEL.to_owned()))
}

/// The log settings of `args` and the config file `file`, checked.
pub fn settings(args: &AgentArgs, file: Option<&FileSettings>) -> Result<LogSettings> {
    let (level, level_from_flag) = match &args.log_level {
        Some(l) => {
            check_level("--log-level (ENSEMBLE_LOG_LEVEL)", l)?;
            (l.clone(), true)
        }
        None => (level_without_flag(file)?, false),
    };
    let format = match args
        .log_format
        .as_deref()
        .or(file.and_then(|f| f.log_format.as_deref()))
    {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => bail!(
            "--log-format {other:?} (ENSEMBLE_LOG_FORMAT, config key log_format): use text or json"
        ),
    };
    Ok(LogSettings {
        level,
        level_from_flag,
        format,
    })
}

/// The installed logging: what SIGHUP needs to change the level.
pub struct Logging {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
    level_from_flag: bool,
}

/// Installs the agent's logging on stderr and the monitors' layer of `hub`.
pub fn init(s: &LogSettings, hub: &LogHub) -> Logging {
    let filter = check_level("log level", &s.level).expect("checked by settings()");
    let (filter, handle) = reload::Layer::new(filter);
    let stderr = match s.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(hub.layer())
        .init();
    Logging {
        handle,
        current: Mutex::new(s.level.clone()),
        level_from_flag: s.level_from_flag,
    }
}

impl Logging {
    /// SIGHUP: the level of the config file `file` (else `RUST_LOG`, else info), unless
    /// `--log-level` set it; logs what changed.
    pub fn reload(&self, file: &FileSettings) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if self.level_from_flag {
            info!(
                level = %current,
                "SIGHUP: the log level stays {current} (--log-level or ENSEMBLE_LOG_LEVEL \
                 overrides the config file)"
            );
            return;
        }
        let level = match level_without_flag(Some(file)) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("SIGHUP: kept the log level as it was: {e:#}");
                return;
            }
        };
        if *current == level {
            tracing::debug!("SIGHUP: the log level is unchanged ({level})");
            return;
        }
        // Said at the old level if it shows info lines, else at the new one.
        let said_before = tracing::enabled!(tracing::Level::INFO);
        let say = |current: &str| info!(old = %current, new = %level, "SIGHUP: log level {current} -> {level}");
        if said_before {
            say(&current);
        }
        let filter = check_level("log level", &level).expect("checked above");
        if let Err(e) = self.handle.reload(filter) {
            tracing::warn!("SIGHUP: kept the log level as it was: {e}");
            return;
        }
        if !said_before {
            say(&current);
        }
        *current = level;
    }
}
