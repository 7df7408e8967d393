//! Discovery: find the cluster's nodes through a [`Backend`] (a static list, a file, DNS or
//! PostgreSQL) and join them, on the schedule of [`ensemble_proto::discovery`].
//!
//! ```no_run
//! # async fn demo(node: ensemble::Node) {
//! use std::time::Duration;
//! use ensemble::discovery::{Discovery, DiscoveryOptions, FileBackend};
//! let discovery = Discovery::start(
//!     node,
//!     FileBackend::new("/etc/ensemble/nodes"),
//!     DiscoveryOptions::default(),
//! );
//! let ready = discovery.wait_for_ready(Duration::from_secs(30)).await;
//! println!("ready: {ready}, {:?}", discovery.system_info());
//! # }
//! ```

#[cfg(feature = "dns")]
mod dns;
pub(crate) mod file;
#[cfg(feature = "postgres")]
mod postgres;
mod probe;
mod static_list;
mod table_info;
mod task;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

#[cfg(feature = "dns")]
pub use dns::DnsBackend;
pub use ensemble_proto::discovery::{
    DiscoveredNode, DiscoveryConfig, Phase, RetryKind, SystemInfo, PAST_STARTUP, PHASE_TAG,
};
pub use file::FileBackend;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresBackend, PostgresOptions};
pub use static_list::StaticBackend;
pub use table_info::TrackedTableInfo;

use crate::node::Node;

/// Why a backend's `get_nodes` failed. Every failure becomes an `after_error` retry; its text
/// shows in [`SystemInfo::last_get_nodes_result`] and in the log.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The node file could not be read.
    #[error("cannot read the discovery file {path} (check --discovery-file): {error}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A DNS query failed (timeout, NXDOMAIN, no records, unreachable server).
    #[error("DNS lookup of {name} failed (check --dns-name and --dns-server): {reason}")]
    Dns {
        /// The name looked up.
        name: String,
        /// The resolver's error.
        reason: String,
    },
    /// The database could not be reached or refused a statement.
    #[error("PostgreSQL discovery failed (check --postgres-url): {0}")]
    Database(String),
    /// The call did not end within [`DiscoveryOptions::get_nodes_timeout`].
    #[error("get_nodes did not answer within {0:?}")]
    Timeout(Duration),
}

/// Where discovery finds nodes. `get_nodes` may be slow or fail: discovery runs one call at a
/// time in the background, under a timeout.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for the API and logs (`static`, `file`, `dns`, `postgres`).
    fn name(&self) -> &'static str;
    /// The nodes of the cluster, this node included or not.
    async fn get_nodes(&self) -> Result<Vec<DiscoveredNode>, DiscoveryError>;
    /// The number the backend gave this node, if it gives any (PostgreSQL).
    fn node_num(&self) -> Option<u32> {
        None
    }
}

/// Joins one tracked table with one member: called with the member's name, then the table's;
/// returns the join result. Installed with [`DiscoveryOptions::table_joiner`] (replicated
/// tables plug in here: [`Node::table_joiner`]).
pub type TableJoiner =
    Arc<dyn Fn(String, String) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Settings of a [`Discovery`].
#[derive(Clone)]
pub struct DiscoveryOptions {
    /// The retry schedule and the startup phase.
    pub schedule: DiscoveryConfig,
    /// Longest a `get_nodes` call may take (default 10 s); past it, it counts as failed.
    pub get_nodes_timeout: Duration,
    /// Longest a reachability probe (name resolution plus TCP connect) may take (default 2 s).
    pub probe_timeout: Duration,
    /// Longest the join through a reachable node may take (default 5 s); a node that accepts
    /// connections but never completes the handshake fails its probe after it.
    pub join_timeout: Duration,
    /// Joins a table with a member. Without one, every join succeeds at once (there are no
    /// replicated tables yet).
    pub table_joiner: Option<TableJoiner>,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            schedule: DiscoveryConfig::default(),
            get_nodes_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(2),
            join_timeout: Duration::from_secs(5),
            table_joiner: None,
        }
    }
}

impl std::fmt::Debug for DiscoveryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryOptions")
            .field("schedule", &self.schedule)
            .field("get_nodes_timeout", &self.get_nodes_timeout)
            .field("probe_timeout", &self.probe_timeout)
            .field("join_timeout", &self.join_timeout)
            .field("table_joiner", &self.table_joiner.is_some())
            .finish()
    }
}

pub(crate) enum Cmd {
    AddTable(String),
    DeleteTable(String),
    GetNodes,
}

/// A running discovery. Cheap to clone; discovery stops when every clone is dropped or the node
/// stops. Every method answers at once (or after its timeout), whatever the backend is doing.
#[derive(Clone)]
pub struct Discovery {
    node: Node,
    cmds: mpsc::Sender<(Cmd, oneshot::Sender<()>)>,
    info: watch::Receiver<SystemInfo>,
}

impl Discovery {
    /// Starts discovery for `node` in a background task; the first `get_nodes` runs at once.
    pub fn start(node: Node, backend: impl Backend, options: DiscoveryOptions) -> Discovery {
        Self::start_arc(node, Arc::new(backend), options)
    }

    /// [`Discovery::start`] with a shared backend.
    pub fn start_arc(node: Node, backend: Arc<dyn Backend>, options: DiscoveryOptions) -> Self {
        let (cmds, cmd_rx) = mpsc::channel(64);
        let (info_tx, info) = watch::channel(task::empty_info(backend.name()));
        tokio::spawn(task::run(node.clone(), backend, options, cmd_rx, info_tx));
        Discovery { node, cmds, info }
    }

    /// Sends a command; returns once its effect shows in [`Discovery::system_info`].
    async fn command(&self, cmd: Cmd) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send((cmd, tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// A snapshot of discovery (phase, nodes, tables, last result, timestamps), at once.
    pub fn system_info(&self) -> SystemInfo {
        self.info.borrow().clone()
    }

    /// The node number the backend gave this node (PostgreSQL backend), if any.
    pub fn node_num(&self) -> Option<u32> {
        self.info.borrow().node_num
    }

    /// The tracked tables.
    pub fn tables(&self) -> Vec<String> {
        self.info.borrow().tables.clone()
    }

    /// Each tracked table's local replica (size, memory, the nodes of its segment) and its
    /// join results (CETS's `info`). Reads this node's replicas only.
    pub async fn info(&self) -> Vec<TrackedTableInfo> {
        let i = self.system_info();
        table_info::collect(&self.node, &i.tables, &i.join_results).await
    }

    /// Tracks a table: it is joined with every connected node, one table at a time.
    pub async fn add_table(&self, table: impl Into<String>) {
        self.command(Cmd::AddTable(table.into())).await
    }

    /// Stops tracking a table and forgets its join results.
    pub async fn delete_table(&self, table: impl Into<String>) {
        self.command(Cmd::DeleteTable(table.into())).await
    }

    /// Calls the backend's `get_nodes` now instead of at its scheduled time (CETS's `check`).
    /// If one runs, another runs as soon as it ends (`should_retry_get_nodes` in
    /// [`SystemInfo`]); [`Discovery::wait_for_get_nodes`] waits for both.
    pub async fn get_nodes_now(&self) {
        self.command(Cmd::GetNodes).await
    }

    /// Waits until the last `get_nodes` succeeded, every discovered node that is not connected
    /// has failed its probe, and every (connected node, table) pair has a join result. Returns
    /// false if that did not happen within `timeout`.
    pub async fn wait_for_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.info.clone();
        let wait = async move { rx.wait_for(|i| i.ready).await.is_ok() };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Waits for the `get_nodes` call that runs now, if any, to end, and for the one queued
    /// behind it (`should_retry_get_nodes`), if any. Returns at once when none runs, and false
    /// if they did not end within `timeout`.
    pub async fn wait_for_get_nodes(&self, timeout: Duration) -> bool {
        let mut rx = self.info.clone();
        let wait = async move {
            rx.wait_for(|i| !i.get_nodes_running && !i.should_retry_get_nodes)
                .await
                .is_ok()
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }
}
