//! [`SystemInfo`]: a snapshot of discovery for the API, the CLI and the logs.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Discovery, Phase, RetryKind};

/// A snapshot of discovery. Timestamps are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemInfo {
    /// `initial` (startup) or `regular`.
    pub phase: Phase,
    /// True once [`Discovery::is_ready`] holds.
    pub ready: bool,
    /// Addresses of the last successful `get_nodes` (this node's own included).
    pub discovered_nodes: Vec<String>,
    /// Member names of discovered nodes that are up.
    pub connected_nodes: Vec<String>,
    /// Discovered addresses that failed their probe or went down, with the reason.
    pub unavailable_nodes: BTreeMap<String, String>,
    /// Tracked tables.
    pub tables: Vec<String>,
    /// Join result per member and table: `ok` or the error.
    pub join_results: BTreeMap<String, BTreeMap<String, String>>,
    /// `ok`, the error of the last `get_nodes`, or null before the first one ended.
    pub last_get_nodes_result: Option<String>,
    /// Retry kind chosen after the last `get_nodes`.
    pub last_get_nodes_retry_kind: Option<RetryKind>,
    /// True while a `get_nodes` runs.
    pub get_nodes_running: bool,
    /// True while another `get_nodes` was asked for during the one that runs: it runs as soon
    /// as that one ends.
    #[serde(default)]
    pub should_retry_get_nodes: bool,
    /// True while a failed (node, table) join waits to be tried again (`after_error` after it
    /// failed).
    #[serde(default)]
    pub should_retry_join: bool,
    /// How many `get_nodes` calls have ended.
    pub get_nodes_count: u64,
    /// When the next `get_nodes` is due (null while one runs).
    pub next_get_nodes_at: Option<u64>,
    /// Last time each member was seen coming up.
    pub nodeup_timestamps: BTreeMap<String, u64>,
    /// Last time each member went down.
    pub nodedown_timestamps: BTreeMap<String, u64>,
    /// When this discovery started.
    pub start_time: u64,
    /// When each connected node started, as it reports it (filled by the runtime from the
    /// member's incarnation, which starts at its clock).
    pub node_start_timestamps: BTreeMap<String, u64>,
    /// The node number the backend gave this node (PostgreSQL backend), if any.
    pub node_num: Option<u32>,
    /// The backend's name (`static`, `file`, `dns`, `postgres`), filled by the runtime.
    pub backend: String,
}

impl Discovery {
    /// A snapshot of the state.
    pub fn system_info(&self) -> SystemInfo {
        let mut unavailable = BTreeMap::new();
        for (addr, r) in &self.discovered {
            if r.local || self.connected_name(r).is_some() {
                continue;
            }
            if let Some(e) = &r.failure {
                unavailable.insert(addr.clone(), e.clone());
            }
        }
        let mut join_results: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for ((node, table), r) in &self.join_results {
            let text = match r {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.clone(),
            };
            join_results
                .entry(node.clone())
                .or_default()
                .insert(table.clone(), text);
        }
        let stamp = |m: &BTreeMap<String, Instant>| {
            m.iter()
                .map(|(k, t)| (k.clone(), self.unix_ms(*t)))
                .collect()
        };
        SystemInfo {
            phase: self.phase,
            ready: self.is_ready(),
            discovered_nodes: self.discovered.keys().cloned().collect(),
            connected_nodes: self.connected_names().into_iter().collect(),
            unavailable_nodes: unavailable,
            tables: self.tables(),
            join_results,
            last_get_nodes_result: self.last_result.as_ref().map(|r| match r {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.clone(),
            }),
            last_get_nodes_retry_kind: self.last_retry_kind,
            get_nodes_running: self.get_nodes_running,
            should_retry_get_nodes: self.should_retry_get_nodes,
            should_retry_join: self.should_retry_join(),
            get_nodes_count: self.get_nodes_done,
            next_get_nodes_at: match self.get_nodes_running {
                true => None,
                false => self.next_get_nodes.map(|(t, _)| self.unix_ms(t)),
            },
            nodeup_timestamps: stamp(&self.nodeup),
            nodedown_timestamps: stamp(&self.nodedown),
            start_time: self.start_unix_ms,
            node_start_timestamps: BTreeMap::new(),
            node_num: None,
            backend: String::new(),
        }
    }
}
