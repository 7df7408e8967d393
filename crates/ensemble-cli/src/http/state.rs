//! What the routes share: the node, its discovery, the tables the agent opened, the metrics
//! recorder and whether fault injection is allowed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRef;
use ensemble::discovery::Discovery;
use ensemble::{Error, Node, Table, TableOptions};
use tokio::sync::Mutex;

use super::metrics::Metrics;

/// The router's state.
#[derive(Clone)]
pub struct AppState {
    pub node: Node,
    pub discovery: Discovery,
    pub tables: AgentTables,
    pub metrics: Metrics,
    /// `--allow-fault-injection`: the partition routes may change partitions.
    pub fault_injection: bool,
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

/// The replicated tables (string keys and values) an agent hosts, opened once each.
#[derive(Clone)]
pub struct AgentTables {
    node: Node,
    open: Arc<Mutex<HashMap<String, Table<String, String>>>>,
}

impl AgentTables {
    pub fn new(node: Node) -> Self {
        AgentTables {
            node,
            open: Arc::default(),
        }
    }

    /// The table `name`, created if `create` (else None when this agent does not host it).
    pub async fn get(
        &self,
        name: &str,
        create: bool,
    ) -> Result<Option<Table<String, String>>, Error> {
        let mut open = self.open.lock().await;
        if let Some(t) = open.get(name) {
            return Ok(Some(t.clone()));
        }
        if !create && !self.node.tables().await?.iter().any(|t| t == name) {
            return Ok(None);
        }
        let t = self.node.table(name, TableOptions::set()).await?;
        open.insert(name.to_string(), t.clone());
        Ok(Some(t))
    }
}
