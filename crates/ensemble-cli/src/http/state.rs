//! What the routes share: the node, its discovery, the tables the agent opened, the metrics
//! recorder, whether fault injection is allowed, and the agent's own state (`AgentControl`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;
use ensemble::discovery::Discovery;
use ensemble::{Error, Node, Table, TableOptions};
use tokio::sync::{Mutex, Notify};

use super::metrics::Metrics;
use crate::history::History;
use crate::log_stream::LogHub;
use crate::views::SettingsView;

/// The router's state.
#[derive(Clone)]
pub struct AppState {
    pub node: Node,
    pub discovery: Discovery,
    pub tables: AgentTables,
    pub metrics: Metrics,
    /// `--allow-fault-injection`: the partition routes may change partitions.
    pub fault_injection: bool,
    pub control: AgentControl,
    /// The agent's log records, for `GET /v1/monitor`.
    pub logs: LogHub,
    /// What the agent saw happen over the last hour, for `GET /v1/history`.
    pub history: History,
}

/// The agent beside its node: when it started and its settings (`GET /v1/info`), where its
/// tags persist (the tags routes), and how `POST /v1/leave` asks it to leave and exit.
#[derive(Clone)]
pub struct AgentControl {
    pub started: Instant,
    pub settings: Arc<SettingsView>,
    /// `--tags-file`.
    pub tags_file: Option<Arc<PathBuf>>,
    /// Held while tags change, so that concurrent changes neither lose one another nor write
    /// the file out of order.
    pub tags_lock: Arc<Mutex<()>>,
    /// Notified once to make the agent leave gracefully, as on SIGTERM.
    pub leave: Arc<Notify>,
}

impl AgentControl {
    pub fn new(settings: SettingsView, tags_file: Option<PathBuf>) -> AgentControl {
        AgentControl {
            started: Instant::now(),
            settings: Arc::new(settings),
            tags_file: tags_file.map(Arc::new),
            tags_lock: Arc::default(),
            leave: Arc::default(),
        }
    }
}

impl FromRef<AppState> for AgentControl {
    fn from_ref(s: &AppState) -> Self {
        s.control.clone()
    }
}

impl FromRef<AppState> for History {
    fn from_ref(s: &AppState) -> Self {
        s.history.clone()
    }
}

impl FromRef<AppState> for LogHub {
    fn from_ref(s: &AppState) -> Self {
        s.logs.clone()
    }
}

impl FromRef<AppState> for Node {
    fn from_ref(s: &AppState) -> Node {
        s.node.clone()
    }
}

impl FromRef<AppState> for Discovery {
    fn from_ref(s: &AppState) -> Discovery {
        s.discovery.clone()
    }
}

impl FromRef<AppState> for AgentTables {
    fn from_ref(s: &AppState) -> Self {
        s.tables.clone()
    }
}

/// Which tables a put may create: those declared (`--table`), others only with
/// `--allow-create-tables`, and never more than `max_tables` (not counting Ensemble's own).
#[derive(Debug, Clone, Default)]
pub struct TablePolicy {
    pub declared: BTreeSet<String>,
    pub allow_create: bool,
    pub max_tables: usize,
}

/// Why a put may not create a table.
#[derive(Debug)]
pub enum Refused {
    /// Not declared, and creation is off.
    CreationOff,
    /// The agent hosts `max_tables` tables already.
    TooMany(usize),
    /// The node refused (a bad name, stopped...).
    Node(Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::CreationOff => f.write_str("not declared, and table creation is off"),
            Refused::TooMany(max) => write!(f, "max_tables ({max}) reached"),
            Refused::Node(e) => e.fmt(f),
        }
    }
}

/// The replicated tables (string keys and values) an agent hosts, opened once each.
#[derive(Clone)]
pub struct AgentTables {
    node: Node,
    open: Arc<Mutex<HashMap<String, Table<String, String>>>>,
    policy: Arc<TablePolicy>,
}

impl AgentTables {
    pub fn new(node: Node, policy: TablePolicy) -> Self {
        AgentTables {
            node,
            open: Arc::default(),
            policy: Arc::new(policy),
        }
    }

    /// The table `name` if this agent hosts it (None if not).
    pub async fn hosted(&self, name: &str) -> Result<Option<Table<String, String>>, Error> {
        let mut open = self.open.lock().await;
        if let Some(t) = open.get(name) {
            return Ok(Some(t.clone()));
        }
        if !self.node.tables().await?.iter().any(|t| t == name) {
            return Ok(None);
        }
        let t = self.node.table(name, TableOptions::set()).await?;
        open.insert(name.to_string(), t.clone());
        Ok(Some(t))
    }

    /// The table `name`, created if the policy allows (see [`TablePolicy`]).
    pub async fn get_or_create(&self, name: &str) -> Result<Table<String, String>, Refused> {
        let mut open = self.open.lock().await;
        if let Some(t) = open.get(name) {
            return Ok(t.clone());
        }
        let names = self.node.tables().await.map_err(Refused::Node)?;
        if !names.iter().any(|t| t == name) {
            let p = &self.policy;
            if !p.allow_create && !p.declared.contains(name) {
                return Err(Refused::CreationOff);
            }
            // Checked under the lock: concurrent puts cannot create more than the limit.
            let hosted = names
                .iter()
                .filter(|n| !n.starts_with(ensemble::RESERVED_TABLE_PREFIX))
                .count();
            if hosted >= p.max_tables {
                return Err(Refused::TooMany(p.max_tables));
            }
        }
        let t = (self.node.table(name, TableOptions::set()).await).map_err(Refused::Node)?;
        open.insert(name.to_string(), t.clone());
        Ok(t)
    }
}
