//! `ensemble agent`: run a node and its HTTP API until SIGINT/SIGTERM, then leave gracefully.
//! The flags and config file (`settings`, `discovery`) and what the agent runs beside the
//! node: event handlers, message handlers, query handlers, singleton commands and the
//! `--table`s it hosts.

mod api;
mod config;
mod discovery;
mod event_handler;
mod handlers;
mod keyring;
mod logging;
mod query_handler;
mod reload;
mod settings;
mod singletons;
mod token;
mod validate;
mod view_query;

pub use validate::{validate, ValidateArgs};

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ensemble::discovery::Discovery;
use ensemble::Node;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::history::History;
use crate::http::{AgentControl, AgentTables, AppState, Metrics};
use crate::log_stream::LogHub;
use config::Files;
use logging::Logging;
use settings::SecretEnv;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Unique member name [default: the host name] (config key: name).
    #[arg(long, env = "ENSEMBLE_NAME")]
    name: Option<String>,
    /// Cluster listen address [default: 127.0.0.1:7946] (config key: bind).
    #[arg(long, value_name = "HOST:PORT", env = "ENSEMBLE_BIND")]
    bind: Option<String>,
    /// Address other members dial, when not the bind address (config key: advertise).
    #[arg(long, value_name = "HOST:PORT", env = "ENSEMBLE_ADVERTISE")]
    advertise: Option<String>,
    /// HTTP API address [default: 127.0.0.1:8946] (config key: http). Every route but the
    /// probes needs the token (see --http-token-file).
    #[arg(long, value_name = "HOST:PORT", env = "ENSEMBLE_HTTP_ADDR")]
    http: Option<String>,
    /// File holding the HTTP API's bearer token (else ENSEMBLE_HTTP_TOKEN, else config key
    /// http_token_file, else a per-user file created on first use: ~/.ensemble/http-token).
    #[arg(long, value_name = "FILE", env = "ENSEMBLE_HTTP_TOKEN_FILE")]
    http_token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM; with --http-tls-key; config key
    /// http_tls_cert).
    #[arg(
        long,
        value_name = "FILE",
        requires = "http_tls_key",
        env = "ENSEMBLE_HTTP_TLS_CERT"
    )]
    http_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --http-tls-cert (config key: http_tls_key).
    #[arg(
        long,
        value_name = "FILE",
        requires = "http_tls_cert",
        env = "ENSEMBLE_HTTP_TLS_KEY"
    )]
    http_tls_key: Option<PathBuf>,
    /// Also serve the probes (GET /v1/health, /v1/ready, /metrics; no token) on this address
    /// (config key: metrics_addr).
    #[arg(long, value_name = "HOST:PORT", env = "ENSEMBLE_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// A member to join through; repeat for more. Retried until one answers (config key: join).
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "ENSEMBLE_JOIN",
        value_delimiter = ','
    )]
    join: Vec<String>,
    /// File holding the cluster secret (else ENSEMBLE_SECRET, else config key secret_file,
    /// else the per-user file ~/.ensemble/secret, which only --bootstrap creates).
    #[arg(long, value_name = "FILE", env = "ENSEMBLE_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// Start the first node of a new cluster: with no secret given and no per-user secret file,
    /// create one (~/.ensemble/secret) and say how to give it to the other nodes; without this
    /// flag such an agent refuses to start (config key: bootstrap).
    #[arg(long, env = "ENSEMBLE_BOOTSTRAP")]
    bootstrap: bool,
    /// Keyring file: the cluster keys as a JSON array, primary first (created from the cluster
    /// secret when missing, rewritten when a key operation changes the keyring, read again on
    /// SIGHUP; config key: keyring_file). With it, the cluster secret only seeds a new file.
    #[arg(long, value_name = "FILE", env = "ENSEMBLE_KEYRING_FILE")]
    keyring_file: Option<PathBuf>,
    /// Metadata tag; repeat for more (config table: [tags]). A tags file's entries win over
    /// these.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = settings::parse_tag, env = "ENSEMBLE_TAG")]
    tags: Vec<(String, String)>,
    /// Tags file (a JSON object of strings, like Serf's -tags-file): read at start over
    /// [tags] and --tag, rewritten whole by every `ensemble tags set|delete` so the tags
    /// survive a restart (config key: tags_file).
    #[arg(long, value_name = "FILE", env = "ENSEMBLE_TAGS_FILE")]
    tags_file: Option<PathBuf>,
    /// Cluster name; nodes of other clusters are refused [default: default] (config key: cluster).
    #[arg(long, env = "ENSEMBLE_CLUSTER")]
    cluster: Option<String>,
    /// Run this shell command for every event (membership changes and user events), with the
    /// event in ENSEMBLE_* environment variables and as JSON on stdin; FILTER=CMD, as Serf's,
    /// runs it for these event types only (member-join, member-leave, member-failed,
    /// member-update, member-reap, member, user, user:NAME, comma-separated); repeat for more
    /// (config key: event_handlers, read again on SIGHUP unless this flag sets them).
    #[arg(
        long = "event-handler",
        value_name = "[FILTER=]CMD",
        env = "ENSEMBLE_EVENT_HANDLER"
    )]
    event_handlers: Vec<String>,
    /// Register a message handler: COMMAND runs for each message sent to NAME on this agent,
    /// with the payload on stdin; repeat for more (config table: [handlers]).
    #[arg(long = "handler", value_name = "NAME=COMMAND", value_parser = handlers::parse_handler, env = "ENSEMBLE_HANDLER")]
    handlers: Vec<(String, String)>,
    /// Answer queries named NAME (`ensemble query NAME`) with the output of COMMAND, run per
    /// query with the payload on stdin and ENSEMBLE_QUERY_NAME / ENSEMBLE_QUERY_ORIGIN in its
    /// environment; killed at the query's timeout; 4 run at once at most. Repeat for more
    /// (config table: [query_handlers]).
    #[arg(long = "query-handler", value_name = "NAME=COMMAND", value_parser = handlers::parse_handler, env = "ENSEMBLE_QUERY_HANDLER")]
    query_handlers: Vec<(String, String)>,
    /// Host this replicated table (string keys and values) from the start, joined with the
    /// agents that host it; repeat for more (config key: tables).
    #[arg(
        long = "table",
        value_name = "NAME",
        env = "ENSEMBLE_TABLE",
        value_delimiter = ','
    )]
    tables: Vec<String>,
    /// Let `ensemble table put` (PUT /v1/tables/...) create tables that were not declared
    /// with --table, up to max_tables (config key: allow_create_tables).
    #[arg(long, env = "ENSEMBLE_ALLOW_CREATE_TABLES")]
    allow_create_tables: bool,
    /// Most tables this agent hosts, Ensemble's own not counted [default: 64] (config key:
    /// max_tables).
    #[arg(long, value_name = "N", env = "ENSEMBLE_MAX_TABLES")]
    max_tables: Option<usize>,
    /// Run COMMAND while this agent leads the singleton NAME (one agent of those that run it
    /// leads); its fencing epoch is in ENSEMBLE_EPOCH, and it gets SIGTERM when the agent steps
    /// down; repeat for more (config table: [singletons]).
    #[arg(long = "singleton", value_name = "NAME=COMMAND", value_parser = handlers::parse_handler, env = "ENSEMBLE_SINGLETON")]
    singletons: Vec<(String, String)>,
    /// The majority rule for singleton NAME: N agents are expected to run it, and a side of a
    /// split without a majority of them never leads (config table: [singleton_majority]).
    #[arg(long = "singleton-majority", value_name = "NAME=N", value_parser = singletons::parse_majority, env = "ENSEMBLE_SINGLETON_MAJORITY", value_delimiter = ',')]
    singleton_majority: Vec<(String, usize)>,
    /// Allow `ensemble partition inject|resolve` (POST/DELETE /v1/partitions) on this agent;
    /// for tests only (config key: allow_fault_injection).
    #[arg(long, env = "ENSEMBLE_ALLOW_FAULT_INJECTION")]
    allow_fault_injection: bool,
    /// Declare a named messaging channel (its own send queue per connection, so a backlog on
    /// it never delays other messages); repeat for more (config key: channels).
    #[arg(
        long = "channel",
        value_name = "NAME",
        env = "ENSEMBLE_CHANNEL",
        value_delimiter = ','
    )]
    channels: Vec<String>,
    /// How nodes connect: full-mesh [default] or client-server (config key: topology).
    #[arg(
        long,
        value_name = "full-mesh|client-server",
        env = "ENSEMBLE_TOPOLOGY"
    )]
    topology: Option<String>,
    /// This agent's role in a client-server topology: server or client (config key: role).
    #[arg(long, value_name = "server|client", env = "ENSEMBLE_ROLE")]
    role: Option<String>,
    /// Log level: error, warn, info, debug or trace, or a directive such as
    /// info,ensemble::transport=debug [default: RUST_LOG, else info] (config key: log_level,
    /// read again on SIGHUP unless this flag sets it).
    #[arg(long, value_name = "LEVEL", env = "ENSEMBLE_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log format on stderr: text, or json (one object per line: timestamp, level, target,
    /// message and the event's fields) [default: text] (config key: log_format).
    #[arg(long, value_name = "text|json", env = "ENSEMBLE_LOG_FORMAT")]
    log_format: Option<String>,
    #[command(flatten)]
    discovery: discovery::DiscoveryFlags,
    /// TOML config file; flags override its keys.
    #[arg(long, value_name = "FILE", env = "ENSEMBLE_CONFIG")]
    config: Option<PathBuf>,
}

pub fn run(args: AgentArgs) -> Result<()> {
    // Before any thread starts: the secrets leave the environment, so no command run by the
    // agent inherits them.
    let env = settings::SecretEnv::take();
    let file = match &args.config {
        Some(p) => Some(settings::FileSettings::load(p)?),
        None => None,
    };
    let log = logging::settings(&args, file.as_ref())?;
    let hub = LogHub::default();
    let logging = logging::init(&log, &hub);
    let rt = crate::procs::runtime()?;
    rt.block_on(serve(args, env, logging, hub))
}

async fn serve(args: AgentArgs, env: SecretEnv, logging: Logging, hub: LogHub) -> Result<()> {
    let (config, agent) = config::build_config(&args, Files::Create(env))?;
    let settings = crate::views::SettingsView::of(&config, agent.backend.name(), &agent.http);
    let listeners = api::Listeners::bind(
        &agent.http,
        agent.tls.as_ref(),
        agent.metrics_addr.as_deref(),
    )
    .await?;
    let http_addr = listeners.api_addr();
    let scheme = if agent.tls.is_some() { "https" } else { "http" };
    let seeds = config.seeds.clone();
    let metrics = Metrics::install()?;
    let node = Node::start(config).await?;
    info!(
        "agent {} listening on {} (HTTP API on {scheme}://{http_addr}), joining {:?}",
        node.name(),
        node.addr(),
        seeds
    );
    if let Some(path) = agent.keyring_file.clone() {
        keyring::spawn(&node, path);
    }
    let event_handlers =
        event_handler::EventHandlers::new(agent.event_handlers, agent.event_handlers_from_flag);
    event_handler::spawn(&node, &event_handlers, args.config.is_some());
    handlers::spawn(&node, agent.handlers).await?;
    let query_handlers =
        query_handler::QueryHandlers::start(&node, agent.query_handlers, agent.query_handler_flags)
            .await?;
    view_query::register(&node).await?;
    if agent.fault_injection {
        warn!("fault injection is allowed on this agent (--allow-fault-injection): for tests only");
    }
    info!("discovery backend: {}", agent.backend.name());
    node.tracker().await?;
    let tables = AgentTables::new(node.clone(), agent.table_policy);
    for t in &agent.tables {
        tables
            .get_or_create(t)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open table {t:?} (--table): {e}"))?;
    }
    let mut options = agent.discovery;
    options.table_joiner = Some(node.table_joiner(options.join_timeout));
    let discovery = Discovery::start_arc(node.clone(), agent.backend, options);
    for t in &agent.tables {
        discovery.add_table(t.clone()).await;
    }
    let (history, pokes) = History::new();
    crate::history::spawn(&node, &history, pokes);
    let singletons =
        singletons::spawn(&node, agent.singletons, &agent.singleton_majority, &history).await?;
    let control = AgentControl::new(settings, agent.tags_file);
    let reloadable = reload::Reloadable {
        keyring_file: agent.keyring_file.clone(),
        config: args.config.clone(),
        logging,
        event_handlers,
        query_handlers,
    };
    reload::spawn(&node, reloadable, &control)?;
    let leave = control.leave.clone();
    let state = AppState {
        node: node.clone(),
        discovery,
        tables,
        metrics,
        fault_injection: agent.fault_injection,
        control,
        logs: hub,
        history,
    };
    let servers = listeners.serve(state, &agent.http_token)?;
    wait_for_signal(&leave).await;
    info!("leaving the cluster");
    // Singletons first: a leader stops its command and hands over before the node leaves.
    for s in singletons {
        let _ = s.stop().await;
    }
    let _ = tokio::task::spawn_blocking(singletons::wait_for_commands).await;
    node.leave().await;
    for s in servers {
        s.abort();
    }
    Ok(())
}

/// Until SIGINT, SIGTERM or `POST /v1/leave` (`ensemble leave`): all three leave the same way.
async fn wait_for_signal(leave: &Notify) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = leave.notified() => info!("asked to leave through the HTTP API"),
    }
}
