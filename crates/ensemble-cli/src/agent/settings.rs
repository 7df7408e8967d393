//! Agent settings: a TOML file, overridden by command-line flags and the environment.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ensemble::proto::topology::{Role, Topology};
use ensemble::Secret;
use serde::Deserialize;

/// Default address of the cluster listener.
pub const DEFAULT_BIND: &str = "127.0.0.1:7946";

/// The agent's config file. Every key is optional; flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub name: Option<String>,
    pub bind: Option<String>,
    pub advertise: Option<String>,
    pub http: Option<String>,
    pub cluster: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// `--bootstrap`: create the per-user secret file when no secret is given.
    #[serde(default)]
    pub bootstrap: bool,
    /// The keyring file (`--keyring-file`).
    pub keyring_file: Option<PathBuf>,
    /// How long an accepted connection has to send its first frame, in milliseconds.
    pub first_frame_timeout_ms: Option<u64>,
    /// Most handshakes in progress at once from one source address.
    pub handshakes_per_address: Option<usize>,
    /// Most bytes queued per connection before messages are dropped.
    pub send_queue_bytes: Option<usize>,
    /// How long a node alone, refused by every node it reached for its key, waits before it
    /// says its secret is not the cluster's, in milliseconds.
    pub secret_mismatch_warning_ms: Option<u64>,
    #[serde(default)]
    pub join: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The tags file (`--tags-file`).
    pub tags_file: Option<PathBuf>,
    #[serde(default)]
    pub membership: MembershipSettings,
    #[serde(default)]
    pub event_handlers: Vec<String>,
    #[serde(default)]
    pub allow_fault_injection: bool,
    pub topology: Option<String>,
    pub role: Option<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    /// How long the node polls for a reply a caller waits for, in microseconds (the library's
    /// `Config::busy_wait`); 0 turns it off.
    pub busy_wait_us: Option<u64>,
    /// `[handlers]`: name = command.
    #[serde(default)]
    pub handlers: BTreeMap<String, String>,
    /// `[query_handlers]`: query name = command whose output answers it.
    #[serde(default)]
    pub query_handlers: BTreeMap<String, String>,
    /// Replicated tables to host from the start (string keys and values).
    #[serde(default)]
    pub tables: Vec<String>,
    /// `[singletons]`: name = command run while this agent leads it.
    #[serde(default)]
    pub singletons: BTreeMap<String, String>,
    /// `[singleton_majority]`: name = expected number of agents (the majority rule).
    #[serde(default)]
    pub singleton_majority: BTreeMap<String, usize>,
    #[serde(default)]
    pub discovery: super::discovery::DiscoverySettings,
    /// The HTTP API's bearer token file.
    pub http_token_file: Option<PathBuf>,
    /// Where the probes are served without a token, besides the API.
    pub metrics_addr: Option<String>,
    /// The API's TLS certificate chain (PEM).
    pub http_tls_cert: Option<PathBuf>,
    /// The API's TLS private key (PEM).
    pub http_tls_key: Option<PathBuf>,
    /// A put may create a table that was not declared.
    #[serde(default)]
    pub allow_create_tables: bool,
    /// Most tables the agent hosts (Ensemble's own not counted).
    pub max_tables: Option<usize>,
    /// The log level or filter directive (`--log-level`; read again on SIGHUP).
    pub log_level: Option<String>,
    /// `text` or `json` (`--log-format`).
    pub log_format: Option<String>,
}

/// Default `max_tables`.
pub const DEFAULT_MAX_TABLES: usize = 64;

/// The secrets the agent reads from its environment, taken out of it at start (before any
/// thread runs) so that no command it runs (event handlers, message handlers, singletons)
/// inherits them.
#[derive(Default)]
pub struct SecretEnv {
    /// `ENSEMBLE_SECRET`.
    pub secret: Option<String>,
    /// `ENSEMBLE_HTTP_TOKEN`.
    pub http_token: Option<String>,
}

/// The variables [`SecretEnv::take`] removes: the cluster secret and the HTTP token (read
/// here), and the PostgreSQL URL (read by the flag parser before), which may hold a password.
pub const SECRET_VARS: [&str; 3] = [
    "ENSEMBLE_SECRET",
    crate::token::TOKEN_ENV,
    "ENSEMBLE_POSTGRES_URL",
];

impl SecretEnv {
    /// Reads and removes `ENSEMBLE_SECRET` and `ENSEMBLE_HTTP_TOKEN`, and removes
    /// `ENSEMBLE_POSTGRES_URL`. Call it while the process has one thread.
    pub fn take() -> SecretEnv {
        let take = |var: &str| {
            let value = std::env::var(var).ok();
            std::env::remove_var(var);
            value
        };
        let env = SecretEnv {
            secret: take(SECRET_VARS[0]),
            http_token: take(SECRET_VARS[1]),
        };
        take(SECRET_VARS[2]);
        env
    }
}

/// Longest `busy_wait_us` accepted: beyond it, polling costs more than a sleep saves.
pub const MAX_BUSY_WAIT_US: u64 = 10_000;

impl FileSettings {
    /// `first_frame_timeout_ms`, `handshakes_per_address`, `send_queue_bytes` and
    /// `secret_mismatch_warning_ms` into `config` (checked here or by `Config::validate` at
    /// start).
    pub fn accept_limits(&self, config: &mut ensemble::Config) -> Result<()> {
        if let Some(ms) = self.first_frame_timeout_ms {
            if !(50..=10_000).contains(&ms) {
                bail!("first_frame_timeout_ms must be 50 to 10000 (default 500), not {ms}");
            }
            config.first_frame_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = self.handshakes_per_address {
            if !(1..=256).contains(&n) {
                bail!("handshakes_per_address must be 1 to 256 (default 64), not {n}");
            }
            config.handshakes_per_address = n;
        }
        if let Some(n) = self.send_queue_bytes {
            config.send_queue_bytes = n;
        }
        if let Some(ms) = self.secret_mismatch_warning_ms {
            if !(100..=3_600_000).contains(&ms) {
                bail!(
                    "secret_mismatch_warning_ms must be 100 to 3600000 (default 30000), not {ms}"
                );
            }
            config.secret_mismatch_warning = Duration::from_millis(ms);
        }
        Ok(())
    }

    /// `busy_wait_us`, checked; None: the library's default.
    pub fn busy_wait(&self) -> Result<Option<Duration>> {
        match self.busy_wait_us {
            Some(us) if us > MAX_BUSY_WAIT_US => bail!(
                "busy_wait_us must be at most {MAX_BUSY_WAIT_US} (default 30; 0 turns it off), not {us}"
            ),
            us => Ok(us.map(Duration::from_micros)),
        }
    }
}

/// `[membership]`: protocol timings; see docs/MEMBERSHIP.md for what each does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipSettings {
    pub heartbeat_interval_ms: Option<u64>,
    pub phi_threshold: Option<f64>,
    pub acceptable_pause_ms: Option<u64>,
    pub probe_helpers: Option<usize>,
    pub probe_timeout_ms: Option<u64>,
    pub suspicion_timeout_ms: Option<u64>,
    pub suspicion_min_ms: Option<u64>,
    pub monitor_neighbours: Option<usize>,
    pub down_on_refused: Option<bool>,
    pub gossip_fanout: Option<usize>,
    pub sync_interval_ms: Option<u64>,
    pub reconnect_max_ms: Option<u64>,
    pub tombstone_ttl_s: Option<u64>,
    pub servers_per_client: Option<usize>,
}

impl FileSettings {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
    }
}

impl MembershipSettings {
    pub fn apply(&self, c: &mut ensemble::proto::Config) -> Result<()> {
        let ms = Duration::from_millis;
        if let Some(v) = self.heartbeat_interval_ms {
            if v == 0 {
                bail!("membership.heartbeat_interval_ms must be above 0");
            }
            c.heartbeat_interval = ms(v);
            c.detector.expected_interval = ms(v);
        }
        if let Some(v) = self.phi_threshold {
            if !(v > 0.0 && v.is_finite()) {
                bail!("membership.phi_threshold must be a positive number (default 8)");
            }
            c.detector.threshold = v;
        }
        if let Some(v) = self.acceptable_pause_ms {
            c.detector.acceptable_pause = ms(v);
        }
        if let Some(v) = self.probe_helpers {
            c.probe_helpers = v;
        }
        if let Some(v) = self.probe_timeout_ms {
            c.probe_timeout = ms(v.max(1));
        }
        if let Some(v) = self.suspicion_timeout_ms {
            c.suspicion_timeout = ms(v);
        }
        if let Some(v) = self.suspicion_min_ms {
            c.suspicion_min = ms(v);
        }
        if c.suspicion_min > c.suspicion_timeout {
            bail!("membership.suspicion_min_ms must not exceed suspicion_timeout_ms (defaults 200 and 1000)");
        }
        if let Some(v) = self.monitor_neighbours {
            if v > 32 {
                bail!("membership.monitor_neighbours must be at most 32 (default 2; 0 watches every connection)");
            }
            c.monitor_neighbours = v;
        }
        if let Some(v) = self.down_on_refused {
            c.down_on_refused = v;
        }
        if let Some(v) = self.gossip_fanout {
            c.gossip_fanout = v;
        }
        if let Some(v) = self.sync_interval_ms {
            c.sync_interval = ms(v.max(100));
        }
        if let Some(v) = self.reconnect_max_ms {
            c.reconnect_max = ms(v.max(100));
        }
        if let Some(v) = self.tombstone_ttl_s {
            c.tombstone_ttl = Duration::from_secs(v);
        }
        if let Some(v) = self.servers_per_client {
            if v == 0 {
                bail!("membership.servers_per_client must be at least 1 (default 2)");
            }
            c.servers_per_client = v;
        }
        Ok(())
    }
}

/// The topology from `--topology` / `topology` and `--role` / `role`.
pub fn topology(topology: Option<&str>, role: Option<&str>) -> Result<Topology> {
    let role = match role {
        Some(r) => Some(
            r.parse::<Role>()
                .map_err(|e| anyhow::anyhow!("--role: {e}"))?,
        ),
        None => None,
    };
    match (topology.unwrap_or("full-mesh"), role) {
        ("full-mesh", None) => Ok(Topology::FullMesh),
        ("full-mesh", Some(_)) => {
            bail!("--role needs --topology client-server (config key: topology)")
        }
        ("client-server", Some(r)) => Ok(Topology::ClientServer(r)),
        ("client-server", None) => {
            bail!(
                "--topology client-server needs --role server or --role client (config key: role)"
            )
        }
        (other, _) => bail!("--topology {other:?}: use full-mesh or client-server"),
    }
}

/// Resolves `HOST:PORT` (names allowed) to one address; `key` names the setting in errors.
pub fn resolve(key: &str, value: &str) -> Result<SocketAddr> {
    value
        .to_socket_addrs()
        .with_context(|| format!("{key} = {value:?}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("{key} = {value:?}: the name resolves to no address"))
}

/// Parses `KEY=VALUE`.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Where the cluster secret comes from, in order: flag, environment (`env`: what
/// `ENSEMBLE_SECRET` held at start), config file, per-user file. A missing per-user file is
/// created only with `bootstrap` (the first node of a new cluster): otherwise the agent would
/// start with a secret no other node has, and every dial would be refused.
pub fn load_secret(
    flag: Option<&Path>,
    env: Option<String>,
    file: Option<&Path>,
    bootstrap: bool,
) -> Result<Secret> {
    if let Some(p) = flag {
        return Secret::from_file(p).context("--secret-file");
    }
    if let Some(s) = env {
        return Secret::new(s.trim().as_bytes().to_vec()).context("ENSEMBLE_SECRET");
    }
    if let Some(p) = file {
        return Secret::from_file(p).context("secret_file in the config file");
    }
    let path = Secret::default_path()
        .context("no secret given and no home directory: set ENSEMBLE_SECRET or --secret-file")?;
    if !bootstrap && !path.exists() {
        bail!("{}", no_secret_message(&path));
    }
    let (secret, created) = Secret::load_or_create(&path)?;
    if created {
        tracing::warn!(
            "created a new cluster secret in {} (--bootstrap): give every other node of the \
             cluster the same key, by copying this file to it and passing --secret-file FILE, \
             or by setting ENSEMBLE_SECRET to the file's content",
            path.display()
        );
    } else {
        tracing::info!("using the cluster secret in {}", path.display());
    }
    Ok(secret)
}

/// Why an agent with no secret refuses to start, with both fixes.
pub fn no_secret_message(path: &Path) -> String {
    format!(
        "no cluster secret: none given (ENSEMBLE_SECRET, --secret-file, config key secret_file) \
         and no secret file at {}. To join an existing cluster, give this node the cluster's \
         key (ENSEMBLE_SECRET or --secret-file); to start a new cluster with this node as its \
         first, pass --bootstrap (ENSEMBLE_BOOTSTRAP=true), which creates the secret there \
         (`ensemble keygen` prints one too)",
        path.display()
    )
}
