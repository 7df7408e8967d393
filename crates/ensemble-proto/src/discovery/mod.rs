//! Discovery scheduling (after CETS `cets_discovery`): when to ask the backend for nodes, which
//! discovered nodes to probe, which are connected or unavailable, the startup phase, tracked
//! tables and their join results, and when the node is ready.
//!
//! The backends' I/O (files, DNS, databases), the reachability probes and the joins live in the
//! runtime; this state machine only says what to do next and keeps the books. Like every state
//! machine here it takes the time as an argument: [`Discovery::handle`],
//! [`Discovery::poll_output`], [`Discovery::poll_timeout`].

mod config;
mod info;
mod joins;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use config::{DiscoveryConfig, RetryKind};
pub use info::SystemInfo;

/// Tag a node sets (value [`PAST_STARTUP`]) once its discovery is past the startup phase; a
/// node that sees it on a live peer ends its own startup phase.
pub const PHASE_TAG: &str = "ensemble.discovery";
/// Value of [`PHASE_TAG`] past the startup phase.
pub const PAST_STARTUP: &str = "regular";

/// A node reported by a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DiscoveredNode {
    /// Where to reach it, `HOST:PORT` as the backend gave it (a host name is resolved when the
    /// node is probed).
    pub addr: String,
    /// Its member name, when the backend knows it.
    pub name: Option<String>,
}

impl DiscoveredNode {
    /// A node known by its address only.
    pub fn addr(addr: impl Into<String>) -> Self {
        DiscoveredNode {
            addr: addr.into(),
            name: None,
        }
    }
}

/// The discovery phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Startup: `get_nodes` every [`DiscoveryConfig::initial`].
    Initial,
    /// Past startup.
    Regular,
}

/// How a reachability probe (and the join that follows it) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// Reachable, and the join through it succeeded: the node answered with this name.
    Joined {
        /// The member name it answered with.
        name: String,
        /// The address it resolved to.
        addr: SocketAddr,
    },
    /// The address is this node's own.
    Local,
    /// Unresolvable, unreachable, or the join failed.
    Failed(String),
}

/// What the runtime tells discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed (at [`Discovery::poll_timeout`]).
    Tick,
    /// Call `get_nodes` now (CETS's `check`). While one runs, another runs as soon as it ends
    /// (`should_retry_get_nodes`), with no delay.
    GetNodes,
    /// The `get_nodes` started by [`Output::GetNodes`] ended (an error or a timeout as text).
    GetNodesDone(Result<Vec<DiscoveredNode>, String>),
    /// The probe started by [`Output::Probe`] ended.
    ProbeDone {
        /// The address probed.
        addr: String,
        /// How it ended.
        result: ProbeResult,
    },
    /// A member is up (alive or suspect).
    MemberUp {
        /// Its name.
        name: String,
        /// Its address.
        addr: SocketAddr,
    },
    /// A member was declared down.
    MemberDown {
        /// Its name.
        name: String,
    },
    /// A member left gracefully (not a node-down: no early `get_nodes`).
    MemberLeft {
        /// Its name.
        name: String,
    },
    /// A live peer reports that its discovery is past startup.
    PeerPastStartup,
    /// Track a table: it is joined with every connected node.
    AddTable(String),
    /// Stop tracking a table.
    DeleteTable(String),
    /// The join started by [`Output::JoinTable`] ended. A failed join is tried again
    /// [`DiscoveryConfig::after_error`] later, for as long as the node is up and the table
    /// tracked (`should_retry_join`).
    TableJoined {
        /// The member.
        node: String,
        /// The table.
        table: String,
        /// Its result.
        result: Result<(), String>,
    },
}

/// What discovery asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Call the backend's `get_nodes` (with a timeout) and answer [`Input::GetNodesDone`].
    GetNodes,
    /// Probe this address (bounded TCP connect), join through it, answer [`Input::ProbeDone`].
    Probe {
        /// `HOST:PORT`.
        addr: String,
    },
    /// Join this table with this member and answer [`Input::TableJoined`].
    JoinTable {
        /// The member.
        node: String,
        /// The table.
        table: String,
    },
    /// The phase changed (publish it to peers, e.g. with [`PHASE_TAG`]).
    PhaseChanged(Phase),
}

/// What is known of one discovered address.
#[derive(Debug, Clone, Default)]
struct Record {
    name: Option<String>,
    resolved: Option<SocketAddr>,
    probing: bool,
    local: bool,
    /// Why it is unavailable (failed probe, node down), unless it is connected again.
    failure: Option<String>,
}

/// The discovery state machine of one node.
#[derive(Debug)]
pub struct Discovery {
    config: DiscoveryConfig,
    start: Instant,
    start_unix_ms: u64,
    phase: Phase,
    next_get_nodes: Option<(Instant, RetryKind)>,
    get_nodes_running: bool,
    /// A `get_nodes` was asked for while one ran: run again as soon as it ends.
    should_retry_get_nodes: bool,
    get_nodes_done: u64,
    last_result: Option<Result<(), String>>,
    last_retry_kind: Option<RetryKind>,
    last_nodedown: Option<Instant>,
    discovered: BTreeMap<String, Record>,
    /// Members up, by name.
    up: BTreeMap<String, SocketAddr>,
    tables: BTreeSet<String>,
    join_results: BTreeMap<(String, String), Result<(), String>>,
    joining: Option<(String, String)>,
    /// Failed joins, with when each is tried again.
    join_retry: BTreeMap<(String, String), Instant>,
    nodeup: BTreeMap<String, Instant>,
    nodedown: BTreeMap<String, Instant>,
    outputs: VecDeque<Output>,
}

impl Discovery {
    /// A discovery that calls `get_nodes` at once. `start_unix_ms` is the wall-clock time of
    /// `now`, used only to report timestamps in [`Discovery::system_info`].
    pub fn new(config: DiscoveryConfig, now: Instant, start_unix_ms: u64) -> Self {
        Discovery {
            config,
            start: now,
            start_unix_ms,
            phase: Phase::Initial,
            next_get_nodes: Some((now, RetryKind::Initial)),
            get_nodes_running: false,
            should_retry_get_nodes: false,
            get_nodes_done: 0,
            last_result: None,
            last_retry_kind: None,
            last_nodedown: None,
            discovered: BTreeMap::new(),
            up: BTreeMap::new(),
            tables: BTreeSet::new(),
            join_results: BTreeMap::new(),
            joining: None,
            join_retry: BTreeMap::new(),
            nodeup: BTreeMap::new(),
            nodedown: BTreeMap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one input, then does whatever is due at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Tick => {}
            Input::GetNodes => self.get_nodes_now(now),
            Input::GetNodesDone(result) => self.get_nodes_done(now, result),
            Input::ProbeDone { addr, result } => self.probe_done(addr, result),
            Input::MemberUp { name, addr } => {
                self.nodeup.insert(name.clone(), now);
                self.up.insert(name, addr);
            }
            Input::MemberDown { name } => self.member_down(now, name),
            Input::MemberLeft { name } => {
                self.up.remove(&name);
                self.forget_joins(&name);
            }
            Input::PeerPastStartup => self.end_startup(),
            Input::AddTable(t) => {
                self.tables.insert(t);
            }
            Input::DeleteTable(t) => {
                self.tables.remove(&t);
                self.join_results.retain(|(_, table), _| *table != t);
                self.join_retry.retain(|(_, table), _| *table != t);
            }
            Input::TableJoined {
                node,
                table,
                result,
            } => self.table_joined(now, node, table, result),
        }
        self.advance(now);
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let get_nodes = if self.get_nodes_running {
            None
        } else {
            self.next_get_nodes.map(|(t, _)| t)
        };
        let startup_end = match self.phase {
            Phase::Initial => Some(self.start + self.config.startup_phase),
            Phase::Regular => None,
        };
        [get_nodes, startup_end, self.next_join_retry()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// True while a `get_nodes` runs.
    pub fn get_nodes_running(&self) -> bool {
        self.get_nodes_running
    }

    /// True while a `get_nodes` was asked for ([`Input::GetNodes`]) during the one that runs:
    /// another runs as soon as it ends.
    pub fn should_retry_get_nodes(&self) -> bool {
        self.should_retry_get_nodes
    }

    /// True while a failed join waits to be tried again.
    pub fn should_retry_join(&self) -> bool {
        !self.join_retry.is_empty()
    }

    /// How many `get_nodes` calls have ended.
    pub fn get_nodes_count(&self) -> u64 {
        self.get_nodes_done
    }

    /// The tracked tables.
    pub fn tables(&self) -> Vec<String> {
        self.tables.iter().cloned().collect()
    }

    /// When the next `get_nodes` is due and why (none while one runs).
    pub fn next_get_nodes(&self) -> Option<(Instant, RetryKind)> {
        self.next_get_nodes
    }

    /// True once the last `get_nodes` succeeded, every discovered node that is not connected
    /// has failed its probe (or went down), and every (connected node, table) pair has a join
    /// result.
    pub fn is_ready(&self) -> bool {
        if !matches!(self.last_result, Some(Ok(()))) {
            return false;
        }
        let unsettled = self
            .discovered
            .values()
            .any(|r| !r.local && self.connected_name(r).is_none() && r.failure.is_none());
        if unsettled {
            return false;
        }
        self.connected_names().iter().all(|n| {
            self.tables
                .iter()
                .all(|t| self.join_results.contains_key(&(n.clone(), t.clone())))
        })
    }

    fn get_nodes_done(&mut self, now: Instant, result: Result<Vec<DiscoveredNode>, String>) {
        self.get_nodes_running = false;
        self.get_nodes_done += 1;
        match result {
            Ok(nodes) => {
                self.last_result = Some(Ok(()));
                let mut fresh = BTreeMap::new();
                for n in nodes {
                    let mut rec = self.discovered.remove(&n.addr).unwrap_or_default();
                    if n.name.is_some() {
                        rec.name = n.name;
                    }
                    fresh.insert(n.addr, rec);
                }
                self.discovered = fresh;
                let to_probe: Vec<String> = self
                    .discovered
                    .iter()
                    .filter(|(_, r)| !r.local && !r.probing && self.connected_name(r).is_none())
                    .map(|(a, _)| a.clone())
                    .collect();
                for addr in to_probe {
                    if let Some(r) = self.discovered.get_mut(&addr) {
                        r.probing = true;
                    }
                    self.outputs.push_back(Output::Probe { addr });
                }
            }
            Err(e) => self.last_result = Some(Err(e)),
        }
        let kind = self.retry_kind(now);
        self.last_retry_kind = Some(kind);
        self.next_get_nodes = Some((now + self.config.delay(kind), kind));
        if std::mem::take(&mut self.should_retry_get_nodes) {
            self.next_get_nodes = Some((now, kind));
        }
    }

    /// A `get_nodes` now, or right after the one that runs.
    fn get_nodes_now(&mut self, now: Instant) {
        if self.get_nodes_running {
            self.should_retry_get_nodes = true;
        } else {
            let kind = self.next_get_nodes.map_or(RetryKind::Regular, |(_, k)| k);
            self.next_get_nodes = Some((now, kind));
        }
    }

    fn retry_kind(&self, now: Instant) -> RetryKind {
        if matches!(self.last_result, Some(Err(_))) {
            RetryKind::AfterError
        } else if self.phase == Phase::Initial {
            RetryKind::Initial
        } else if self
            .last_nodedown
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.after_nodedown)
        {
            RetryKind::AfterNodedown
        } else {
            RetryKind::Regular
        }
    }

    fn probe_done(&mut self, addr: String, result: ProbeResult) {
        let Some(rec) = self.discovered.get(&addr) else {
            return;
        };
        let connected = self.connected_name(rec).is_some();
        let Some(rec) = self.discovered.get_mut(&addr) else {
            return;
        };
        rec.probing = false;
        match result {
            ProbeResult::Joined { name, addr } => {
                rec.failure = None;
                rec.resolved = Some(addr);
                rec.name = Some(name.clone());
                self.up.entry(name).or_insert(addr);
            }
            ProbeResult::Local => rec.local = true,
            // A late failure after the node came up does not mark it down.
            ProbeResult::Failed(_) if connected => {}
            ProbeResult::Failed(e) => rec.failure = Some(e),
        }
    }

    fn member_down(&mut self, now: Instant, name: String) {
        if let Some(addr) = self.up.remove(&name) {
            for r in self.discovered.values_mut() {
                if r.name.as_deref() == Some(name.as_str()) || r.resolved == Some(addr) {
                    r.failure = Some(format!("{name} went down"));
                }
            }
        }
        self.forget_joins(&name);
        self.nodedown.insert(name, now);
        self.last_nodedown = Some(now);
        let soon = now + self.config.after_nodedown;
        if let Some((t, _)) = self.next_get_nodes {
            if soon < t {
                self.next_get_nodes = Some((soon, RetryKind::AfterNodedown));
            }
        }
    }

    fn end_startup(&mut self) {
        if self.phase == Phase::Initial {
            self.phase = Phase::Regular;
            self.outputs.push_back(Output::PhaseChanged(Phase::Regular));
        }
    }

    fn advance(&mut self, now: Instant) {
        if self.phase == Phase::Initial && now >= self.start + self.config.startup_phase {
            self.end_startup();
        }
        if !self.get_nodes_running {
            if let Some((t, _)) = self.next_get_nodes {
                if now >= t {
                    self.next_get_nodes = None;
                    self.get_nodes_running = true;
                    self.outputs.push_back(Output::GetNodes);
                }
            }
        }
        self.start_next_join(now);
    }

    /// The member name of a discovered record, if that member is up.
    fn connected_name(&self, r: &Record) -> Option<String> {
        if let Some(n) = &r.name {
            if self.up.contains_key(n) {
                return Some(n.clone());
            }
        }
        let addr = r.resolved?;
        self.up
            .iter()
            .find(|(_, a)| **a == addr)
            .map(|(n, _)| n.clone())
    }

    /// Connected discovered nodes, by member name.
    fn connected_names(&self) -> BTreeSet<String> {
        self.discovered
            .values()
            .filter(|r| !r.local)
            .filter_map(|r| self.connected_name(r))
            .collect()
    }

    fn unix_ms(&self, t: Instant) -> u64 {
        self.start_unix_ms + t.saturating_duration_since(self.start).as_millis() as u64
    }
}
