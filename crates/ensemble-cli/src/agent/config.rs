//! The node's config and the agent's settings, from the flags, the environment and the config
//! file (flags first), with the secret, token and keyring the agent uses: created when missing
//! at start, only read by `ensemble validate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use ensemble::discovery::{Backend, DiscoveryOptions};
use ensemble::{Config, Secret};

use super::event_handler::{self, EventHandler};
use super::settings::{self, FileSettings, SecretEnv, DEFAULT_BIND};
use super::{discovery, keyring, token, AgentArgs};
use crate::http::TablePolicy;
use crate::token::Token;
use crate::views::DEFAULT_HTTP;

/// What building the settings may do with files.
pub enum Files {
    /// Start: the secrets from the environment taken at start; missing secret, token and
    /// keyring files are created.
    Create(SecretEnv),
    /// Check: files are read when they exist, none is created.
    CheckOnly,
}

/// What the agent runs besides the node.
pub struct AgentSettings {
    pub http: String,
    pub keyring_file: Option<PathBuf>,
    pub http_token: crate::token::Token,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub metrics_addr: Option<String>,
    pub table_policy: TablePolicy,
    pub handlers: Vec<(String, String)>,
    /// `--query-handler`s: query name and command.
    pub query_handlers: Vec<(String, String)>,
    /// `--query-handler` alone: on SIGHUP they still win over the config file's.
    pub query_handler_flags: Vec<(String, String)>,
    pub event_handlers: Vec<EventHandler>,
    /// The event handlers come from `--event-handler`, not from the config file.
    pub event_handlers_from_flag: bool,
    pub fault_injection: bool,
    pub backend: Arc<dyn Backend>,
    pub discovery: DiscoveryOptions,
    pub tables: Vec<String>,
    pub singletons: Vec<(String, String)>,
    pub singleton_majority: Vec<(String, usize)>,
    /// `--tags-file`: where the tags persist.
    pub tags_file: Option<PathBuf>,
}

/// The file's `[name] = value` entries, with the flags' entries replacing those of the same name.
fn merged<V: Clone>(
    file: &std::collections::BTreeMap<String, V>,
    flags: &[(String, V)],
) -> Vec<(String, V)> {
    let mut all: Vec<(String, V)> = file.clone().into_iter().collect();
    all.retain(|(n, _)| !flags.iter().any(|(m, _)| m == n));
    all.extend(flags.iter().cloned());
    all
}

/// The query handlers of the config file `file` and of the flags `flags` (which win for a
/// name in both), each name checked.
pub fn query_handlers(
    file: &FileSettings,
    flags: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let handlers = merged(&file.query_handlers, flags);
    for (name, _) in &handlers {
        ensemble::check_query_name(name)
            .with_context(|| format!("--query-handler {name:?} (config table query_handlers)"))?;
    }
    Ok(handlers)
}

/// The node's config and the agent's settings from the flags and the config file. With
/// [`Files::Create`] the secret, token and keyring files that are missing are created, as at
/// start; with [`Files::CheckOnly`] no file is created (`ensemble validate`).
pub fn build_config(args: &AgentArgs, files: Files) -> Result<(Config, AgentSettings)> {
    let file = match &args.config {
        Some(p) => FileSettings::load(p)?,
        None => FileSettings::default(),
    };
    let name = match args.name.clone().or(file.name.clone()) {
        Some(name) => name,
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .context(
                "no member name and no host name: pass --name NAME or set name in the config file",
            )?,
    };
    let bind = args
        .bind
        .as_deref()
        .or(file.bind.as_deref())
        .unwrap_or(DEFAULT_BIND);
    let bind = settings::resolve("bind", bind)?;
    let advertise = match args.advertise.as_deref().or(file.advertise.as_deref()) {
        Some(a) => Some(settings::resolve("advertise", a)?),
        None => None,
    };
    let http = args
        .http
        .clone()
        .or(file.http.clone())
        .unwrap_or(DEFAULT_HTTP.into());
    let keyring_file = args.keyring_file.clone().or(file.keyring_file.clone());
    let (secret, keys, http_token) = match files {
        Files::Create(env) => secrets(args, &file, env, keyring_file.as_deref())?,
        Files::CheckOnly => check_secrets(args, &file, keyring_file.as_deref())?,
    };
    let tls = match (
        args.http_tls_cert.clone().or(file.http_tls_cert.clone()),
        args.http_tls_key.clone().or(file.http_tls_key.clone()),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => anyhow::bail!(
            "HTTPS needs both a certificate and its key: --http-tls-cert and --http-tls-key \
             (config keys http_tls_cert and http_tls_key)"
        ),
    };
    let mut config = Config::new(name, bind, secret);
    config.keys = keys;
    config.advertise = advertise;
    if let Some(c) = args.cluster.clone().or(file.cluster.clone()) {
        config.cluster = c;
    }
    let joins = if args.join.is_empty() {
        &file.join
    } else {
        &args.join
    };
    for j in joins {
        config.seeds.push(settings::resolve("join", j)?);
    }
    // Precedence: the config file's [tags], then --tag, then the tags file.
    config.tags = file.tags.clone();
    config.tags.extend(args.tags.iter().cloned());
    let tags_file = args.tags_file.clone().or(file.tags_file.clone());
    if let Some(path) = &tags_file {
        if let Some(saved) = crate::tags_file::read(path)? {
            config.tags.extend(saved);
        }
    }
    file.membership.apply(&mut config.membership)?;
    if let Some(wait) = file.busy_wait()? {
        config.busy_wait = wait;
    }
    file.accept_limits(&mut config)?;
    config.channels = if args.channels.is_empty() {
        file.channels.clone()
    } else {
        args.channels.clone()
    };
    config.membership.topology = settings::topology(
        args.topology.as_deref().or(file.topology.as_deref()),
        args.role.as_deref().or(file.role.as_deref()),
    )?;
    let event_handlers_from_flag = !args.event_handlers.is_empty();
    let event_handlers = if event_handlers_from_flag {
        event_handler::parse_all(&args.event_handlers, "--event-handler")?
    } else {
        event_handler::parse_all(&file.event_handlers, "config key event_handlers")?
    };
    let query_handlers = query_handlers(&file, &args.query_handlers)?;
    let advertised = config.advertise.unwrap_or(config.bind);
    let (backend, discovery) = discovery::build(
        &args.discovery,
        &file.discovery,
        discovery::Local {
            name: &config.name,
            cluster: &config.cluster,
            addr: advertised,
            joins,
        },
    )?;
    let tables = {
        let mut t = file.tables.clone();
        t.extend(args.tables.iter().cloned());
        t.sort();
        t.dedup();
        t
    };
    for t in &tables {
        ensemble::check_table_name(t)
            .with_context(|| format!("--table {t:?} (config key tables)"))?;
    }
    let max_tables = args
        .max_tables
        .or(file.max_tables)
        .unwrap_or(settings::DEFAULT_MAX_TABLES);
    if tables.len() > max_tables {
        anyhow::bail!(
            "{} tables declared (--table, config key tables) but max_tables is {max_tables}: \
             declare fewer or raise max_tables (--max-tables)",
            tables.len()
        );
    }
    Ok((
        config,
        AgentSettings {
            http,
            keyring_file,
            http_token,
            tls,
            metrics_addr: args.metrics_addr.clone().or(file.metrics_addr.clone()),
            table_policy: TablePolicy {
                declared: tables.iter().cloned().collect(),
                allow_create: args.allow_create_tables || file.allow_create_tables,
                max_tables,
            },
            handlers: merged(&file.handlers, &args.handlers),
            query_handlers,
            query_handler_flags: args.query_handlers.clone(),
            singletons: merged(&file.singletons, &args.singletons),
            singleton_majority: merged(&file.singleton_majority, &args.singleton_majority),
            event_handlers,
            event_handlers_from_flag,
            fault_injection: args.allow_fault_injection || file.allow_fault_injection,
            backend,
            discovery,
            tables,
            tags_file,
        },
    ))
}

/// The cluster key, the other keys of the keyring and the HTTP token, as the agent starts with
/// them (creating the files that are missing).
fn secrets(
    args: &AgentArgs,
    file: &FileSettings,
    env: SecretEnv,
    keyring_file: Option<&Path>,
) -> Result<(Secret, Vec<Secret>, Token)> {
    let load_secret = || {
        settings::load_secret(
            args.secret_file.as_deref(),
            env.secret,
            file.secret_file.as_deref(),
            args.bootstrap || file.bootstrap,
        )
    };
    let (secret, keys) = match keyring_file {
        Some(path) => {
            let ring = keyring::load(path, load_secret)?;
            let (primary, others) = ring.keys().split_first().expect("a keyring has a primary");
            (primary.clone(), others.to_vec())
        }
        None => (load_secret()?, Vec::new()),
    };
    let http_token = token::load(
        args.http_token_file.as_deref(),
        env.http_token,
        file.http_token_file.as_deref(),
    )?;
    Ok((secret, keys, http_token))
}

/// As [`secrets`], but creating nothing: the files named are read (a missing one is an error,
/// except a keyring file, which the agent would create), the environment's secret and token
/// are checked, and a key or token left to a per-user file that does not exist yet is a
/// stand-in.
fn check_secrets(
    args: &AgentArgs,
    file: &FileSettings,
    keyring_file: Option<&Path>,
) -> Result<(Secret, Vec<Secret>, Token)> {
    let env = |var: &str| std::env::var(var).ok();
    let secret = match (&args.secret_file, env("ENSEMBLE_SECRET"), &file.secret_file) {
        (Some(p), _, _) => Secret::from_file(p).context("--secret-file")?,
        (None, Some(s), _) => {
            Secret::new(s.trim().as_bytes().to_vec()).context("ENSEMBLE_SECRET")?
        }
        (None, None, Some(p)) => Secret::from_file(p).context("secret_file in the config file")?,
        (None, None, None) => match Secret::default_path().filter(|p| p.exists()) {
            Some(p) => Secret::from_file(&p)?,
            None => Secret::generate(),
        },
    };
    let (secret, keys) = match keyring_file.filter(|p| p.exists()) {
        Some(path) => {
            let ring = keyring::load(path, || Ok(secret))?;
            let (primary, others) = ring.keys().split_first().expect("a keyring has a primary");
            (primary.clone(), others.to_vec())
        }
        None => (secret, Vec::new()),
    };
    let token = match (
        &args.http_token_file,
        env(crate::token::TOKEN_ENV),
        &file.http_token_file,
    ) {
        (Some(p), _, _) => Token::from_file(p).context("--http-token-file")?,
        (None, Some(t), _) => Token::new(&t).context(crate::token::TOKEN_ENV)?,
        (None, None, Some(p)) => {
            Token::from_file(p).context("http_token_file in the config file")?
        }
        (None, None, None) => Token::generate(),
    };
    Ok((secret, keys, token))
}
