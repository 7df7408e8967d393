//! Discovery in the agent: the `--discovery` flags and `[discovery]` table, and building the
//! backend.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ensemble::discovery::{
    Backend, DnsBackend, FileBackend, PostgresBackend, PostgresOptions, StaticBackend,
};
use ensemble::discovery::{DiscoveryConfig, DiscoveryOptions};
use serde::Deserialize;

/// Which backend finds the cluster's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The `--join` addresses.
    Static,
    /// Addresses in a file, re-read at every poll.
    File,
    /// A/AAAA or SRV records of a DNS name.
    Dns,
    /// A `discovery_nodes` table in PostgreSQL.
    Postgres,
}

/// Discovery flags of `ensemble agent`.
#[derive(Args, Debug, Default)]
pub struct DiscoveryFlags {
    /// Discovery backend [default: static, fed by --join] (config key: discovery.backend).
    #[arg(long = "discovery", value_enum, env = "ENSEMBLE_DISCOVERY")]
    backend: Option<Kind>,
    /// Node file of the `file` backend (config key: discovery.file).
    #[arg(long, value_name = "PATH", env = "ENSEMBLE_DISCOVERY_FILE")]
    discovery_file: Option<PathBuf>,
    /// Name the `dns` backend looks up; names starting with `_` are SRV records
    /// (config key: discovery.dns_name).
    #[arg(long, value_name = "NAME", env = "ENSEMBLE_DNS_NAME")]
    dns_name: Option<String>,
    /// DNS server to ask, IP[:PORT] [default: the system's resolver] (config key:
    /// discovery.dns_server).
    #[arg(long, value_name = "ADDR", env = "ENSEMBLE_DNS_SERVER")]
    dns_server: Option<String>,
    /// Cluster port of nodes found by A/AAAA records [default: this agent's bind port]
    /// (config key: discovery.dns_port).
    #[arg(long, value_name = "PORT", env = "ENSEMBLE_DNS_PORT")]
    dns_port: Option<u16>,
    /// PostgreSQL URL of the `postgres` backend, e.g. postgres://user@host/db?sslmode=verify-full
    /// (env: ENSEMBLE_POSTGRES_URL, config key: discovery.postgres_url). A password belongs in
    /// the environment variable or the config file: a flag is visible to every local user.
    #[arg(
        long,
        value_name = "URL",
        env = "ENSEMBLE_POSTGRES_URL",
        hide_env_values = true
    )]
    postgres_url: Option<String>,
}

/// `[discovery]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySettings {
    pub backend: Option<Kind>,
    pub file: Option<PathBuf>,
    pub dns_name: Option<String>,
    pub dns_server: Option<String>,
    pub dns_port: Option<u16>,
    pub postgres_url: Option<String>,
    pub postgres_expiry_s: Option<u64>,
    pub initial_ms: Option<u64>,
    pub after_error_ms: Option<u64>,
    pub regular_ms: Option<u64>,
    pub after_nodedown_ms: Option<u64>,
    pub startup_phase_ms: Option<u64>,
    pub get_nodes_timeout_ms: Option<u64>,
    pub probe_timeout_ms: Option<u64>,
}

/// What the agent needs to know about itself to build a backend.
pub struct Local<'a> {
    pub name: &'a str,
    pub cluster: &'a str,
    pub addr: SocketAddr,
    pub joins: &'a [String],
}

/// The backend and options from flags (which win) and the config file.
pub fn build(
    flags: &DiscoveryFlags,
    file: &DiscoverySettings,
    local: Local<'_>,
) -> Result<(Arc<dyn Backend>, DiscoveryOptions)> {
    let kind = flags.backend.or(file.backend).unwrap_or(Kind::Static);
    let backend: Arc<dyn Backend> = match kind {
        Kind::Static => Arc::new(StaticBackend::new(local.joins.iter().cloned())),
        Kind::File => {
            let path = flags.discovery_file.clone().or(file.file.clone()).context(
                "--discovery file needs --discovery-file PATH (config key: discovery.file)",
            )?;
            Arc::new(FileBackend::new(path))
        }
        Kind::Dns => {
            let name = flags.dns_name.clone().or(file.dns_name.clone()).context(
                "--discovery dns needs --dns-name NAME (config key: discovery.dns_name)",
            )?;
            let server = match flags.dns_server.as_deref().or(file.dns_server.as_deref()) {
                Some(s) => Some(parse_dns_server(s)?),
                None => None,
            };
            let port = flags
                .dns_port
                .or(file.dns_port)
                .unwrap_or(local.addr.port());
            Arc::new(DnsBackend::new(name, port, server).context("--dns-server")?)
        }
        Kind::Postgres => {
            let url = flags
                .postgres_url
                .clone()
                .or(file.postgres_url.clone())
                .context(
                    "--discovery postgres needs --postgres-url URL \
                     (config key: discovery.postgres_url)",
                )?;
            let mut o = PostgresOptions::new(url, local.cluster, local.name, local.addr);
            if let Some(s) = file.postgres_expiry_s {
                if s == 0 {
                    bail!("discovery.postgres_expiry_s must be above 0 (default 3600)");
                }
                o.expiry = Duration::from_secs(s);
            }
            Arc::new(PostgresBackend::new(o).context("--postgres-url")?)
        }
    };
    Ok((backend, options(file)?))
}

fn options(file: &DiscoverySettings) -> Result<DiscoveryOptions> {
    let mut o = DiscoveryOptions::default();
    let s: &mut DiscoveryConfig = &mut o.schedule;
    let fields = [
        ("initial_ms", file.initial_ms, &mut s.initial),
        ("after_error_ms", file.after_error_ms, &mut s.after_error),
        ("regular_ms", file.regular_ms, &mut s.regular),
        (
            "after_nodedown_ms",
            file.after_nodedown_ms,
            &mut s.after_nodedown,
        ),
        (
            "startup_phase_ms",
            file.startup_phase_ms,
            &mut s.startup_phase,
        ),
    ];
    for (key, value, slot) in fields {
        if let Some(v) = value {
            if v == 0 {
                bail!("discovery.{key} must be above 0");
            }
            *slot = Duration::from_millis(v);
        }
    }
    if let Some(v) = file.get_nodes_timeout_ms {
        o.get_nodes_timeout = Duration::from_millis(v.max(1));
    }
    if let Some(v) = file.probe_timeout_ms {
        o.probe_timeout = Duration::from_millis(v.max(1));
    }
    Ok(o)
}

fn parse_dns_server(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s
        .parse()
        .with_context(|| format!("--dns-server {s:?}: expected IP or IP:PORT"))?;
    Ok(SocketAddr::new(ip, 53))
}
