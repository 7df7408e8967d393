//! The node tracker (after Beethoven's CoreServer): a cluster-wide record of every node ever
//! seen, online or offline, with when it last changed, kept in the replicated table
//! `ensemble.tracker`. Two nodes that started alone merge their trackers when they meet (the
//! table re-merges), and a restarted node updates its own row.
//!
//! Each node writes its own row when it starts; the lowest-named live member among the nodes
//! that host the tracker (the replicas of its table) writes the rows of the others as
//! membership changes. The tracker reconciles the table with the member list on
//! every membership event and every second, so a missed event only delays a row.

mod lifecycle;
mod subscribe;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::api::table::{Table, TableChanges, TableOptions};
use crate::api::tracker_relay as relay;
use crate::error::Error;
use crate::node::Node;
pub use lifecycle::{EntryPoint, UNTIL_EXISTS_INTERVAL, UNTIL_EXISTS_TIMEOUT};
pub use subscribe::{Detail, TrackerEvent, TrackerOp};

/// The table that holds the tracker's rows.
pub const TRACKER_TABLE: &str = "ensemble.tracker";

fn tracker_module() -> String {
    TRACKER_TABLE.to_owned()
}

/// How often the tracker compares the table with the member list, besides membership events.
const RECONCILE: Duration = Duration::from_secs(1);

/// Online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Alive or suspect.
    Online,
    /// Down or left.
    Offline,
}

/// One node's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    /// The service that owns the row (Beethoven's record tag, its CoreServer's table): the
    /// tracker's table, [`TRACKER_TABLE`]. Not stored: every row of the table has it.
    #[serde(skip, default = "tracker_module")]
    pub module: String,
    /// The node.
    pub node: String,
    /// Online or offline.
    pub status: NodeStatus,
    /// When the status last changed, in milliseconds since the Unix epoch.
    pub last_change_ms: u64,
    /// The node's incarnation when it was last seen (grows across restarts and refutations).
    pub incarnation: u64,
}

/// Alone, or with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No other member is online.
    Standalone,
    /// At least one other member is online.
    Clustered,
}

/// A change of another node's status, from [`Tracker::alert_me`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUpdate {
    /// The node.
    pub node: String,
    /// Its new status.
    pub status: NodeStatus,
}

/// The node tracker of one node: [`Node::tracker`].
#[derive(Clone)]
pub struct Tracker {
    node: Node,
    table: Table<String, NodeRow>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("node", &self.node.name())
            .finish()
    }
}

/// `Standalone` while no other member is online, `Clustered` otherwise.
fn mode_of(node: &Node) -> Mode {
    let me = node.name();
    let others = node
        .members()
        .into_iter()
        .any(|m| m.name != me && m.status.is_up());
    if others {
        Mode::Clustered
    } else {
        Mode::Standalone
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Two sides of a join recorded one node differently. Online wins: the sides just met, so the
/// nodes each side lost sight of are usually back, and the writer's next reconcile (within a
/// second) marks offline any that is not. With equal statuses the later change wins.
fn resolve(_node: &String, a: &NodeRow, b: &NodeRow) -> NodeRow {
    let rank = |r: &NodeRow| {
        (
            r.status == NodeStatus::Online,
            r.last_change_ms,
            r.incarnation,
        )
    };
    if rank(b) > rank(a) {
        b.clone()
    } else {
        a.clone()
    }
}

/// The rows this node should write so the table matches what it sees: its own row always, the
/// others' only if it is the writer: the lowest-named live member among `hosts`, the nodes
/// that host the tracker (a member that never started it would never write them; in a
/// client-server topology only servers host it).
pub(crate) fn wanted_rows(
    me: &str,
    hosts: &[String],
    members: &[crate::Member],
    rows: &BTreeMap<String, NodeRow>,
    now_ms: u64,
) -> Vec<NodeRow> {
    let writer = members
        .iter()
        .filter(|m| m.status.is_up() && ensemble_proto::topology::serves(m))
        .map(|m| m.name.as_str())
        .filter(|n| *n == me || hosts.iter().any(|h| h == n))
        .min()
        == Some(me);
    let mut out = Vec::new();
    for m in members {
        if m.name != me && !writer {
            continue;
        }
        let status = if m.status.is_up() {
            NodeStatus::Online
        } else {
            NodeStatus::Offline
        };
        let row = rows.get(&m.name);
        let changed = row.is_none_or(|r| r.status != status);
        let restarted =
            row.is_some_and(|r| status == NodeStatus::Online && r.incarnation < m.incarnation);
        if changed || restarted {
            out.push(NodeRow {
                module: tracker_module(),
                node: m.name.clone(),
                status,
                last_change_ms: if changed {
                    now_ms
                } else {
                    row.map_or(now_ms, |r| r.last_change_ms)
                },
                incarnation: m.incarnation,
            });
        }
    }
    out
}

impl Node {
    /// True if the tracker's task was started already; marks it started.
    fn tracker_started(&self) -> bool {
        self.inner
            .tracker
            .swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// This node's tracker. The first call starts the background task that keeps this node's
    /// view in the table; every call returns a new handle on the same table.
    pub async fn tracker(&self) -> Result<Tracker, Error> {
        let t = Tracker::open(self).await?;
        if !self.tracker_started() {
            // The task starts first, so that a failed first update is retried by it.
            let weak = self.downgrade();
            let mut events = self.events();
            if !relay::hosts_tracker(self) {
                let copier = relay::Copier::start(self).await?;
                tokio::spawn(copy_rows(weak, events, copier));
                return Ok(t);
            }
            if self.inner.role.is_some() {
                relay::serve(self, read_rows).await?;
            }
            tokio::spawn(async move {
                loop {
                    let event = tokio::time::timeout(RECONCILE, events.next()).await;
                    if let Ok(None) = event {
                        return; // the node stopped
                    }
                    let Some(node) = weak.upgrade() else { return };
                    let result = match Tracker::open(&node).await {
                        Ok(t) => t.reconcile().await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = result {
                        tracing::debug!("tracker not updated: {e}");
                    }
                }
            });
            t.reconcile().await?;
        }
        Ok(t)
    }
}

/// A server's rows, for the clients that read them.
fn read_rows(
    node: Node,
) -> futures::future::BoxFuture<'static, Result<Vec<(String, NodeRow)>, Error>> {
    Box::pin(async move { Tracker::open(&node).await?.table.snapshot() })
}

/// A client's tracker task: its copy of the servers' rows follows them on membership events
/// and every second (a read answered `unchanged` when nothing changed), until the node stops.
async fn copy_rows(
    weak: crate::node::WeakNode,
    mut events: impl Stream<Item = crate::MemberEvent> + Unpin,
    mut copier: relay::Copier,
) {
    loop {
        let Some(node) = weak.upgrade() else { return };
        let result = match Tracker::open(&node).await {
            Ok(t) => match copier.refresh(&node, &t.table).await {
                Ok(()) => t.record_metrics(),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::debug!("tracker copy not updated: {e}");
        }
        drop(node);
        // At most five reads a second, however many events come: those waiting are one.
        tokio::time::sleep(RECONCILE / 5).await;
        if let Ok(None) = tokio::time::timeout(RECONCILE, events.next()).await {
            return; // the node stopped
        }
        while let Some(e) = events.next().now_or_never() {
            if e.is_none() {
                return;
            }
        }
    }
}

/// Sets the tracker's rows-by-status gauges from `rows`.
fn record_metrics<'a>(rows: impl Iterator<Item = &'a NodeRow>) {
    let (mut online, mut offline) = (0, 0);
    for r in rows {
        match r.status {
            NodeStatus::Online => online += 1,
            NodeStatus::Offline => offline += 1,
        }
    }
    crate::metrics::tracker_rows(online, offline);
}

impl Tracker {
    /// The tracker's table: `ensemble.tracker` where it is hosted, a client's local copy of it
    /// otherwise (see [`relay`]).
    pub(crate) async fn open(node: &Node) -> Result<Tracker, Error> {
        let table: Table<String, NodeRow> = if relay::hosts_tracker(node) {
            let options = TableOptions::set().conflict_handler(resolve);
            node.open_table(TRACKER_TABLE, options).await?
        } else {
            node.open_table(relay::CLIENT_COPY, TableOptions::set())
                .await?
        };
        Ok(Tracker {
            node: node.clone(),
            table,
        })
    }

    async fn reconcile(&self) -> Result<(), Error> {
        let mut rows: BTreeMap<String, NodeRow> = self.table.snapshot()?.into_iter().collect();
        // The replicas of the tracker's table are the nodes that host it.
        let hosts = self.table.info().await?.members;
        let writes = wanted_rows(
            self.node.name(),
            &hosts,
            &self.node.members(),
            &rows,
            now_ms(),
        );
        if !writes.is_empty() {
            let records: Vec<(String, NodeRow)> =
                writes.into_iter().map(|r| (r.node.clone(), r)).collect();
            self.table.insert_many(&records).await?;
            rows.extend(records);
        }
        record_metrics(rows.values());
        Ok(())
    }

    /// Sets the tracker's rows-by-status gauges from the table (a client's copy).
    fn record_metrics(&self) -> Result<(), Error> {
        record_metrics(self.table.snapshot()?.iter().map(|(_, r)| r));
        Ok(())
    }

    /// `Standalone` while no other member is online, `Clustered` otherwise.
    pub fn get_mode(&self) -> Mode {
        mode_of(&self.node)
    }

    /// The row of `node`, if it was ever seen.
    pub fn fetch(&self, node: &str) -> Result<Option<NodeRow>, Error> {
        self.table.get(&node.to_string())
    }

    /// Every row, by node name.
    pub fn fetch_all(&self) -> Result<Vec<NodeRow>, Error> {
        Ok(self.table.snapshot()?.into_iter().map(|(_, r)| r).collect())
    }

    /// The rows that `filter` keeps.
    pub fn select(&self, filter: impl Fn(&NodeRow) -> bool) -> Result<Vec<NodeRow>, Error> {
        Ok(self
            .fetch_all()?
            .into_iter()
            .filter(|r| filter(r))
            .collect())
    }

    /// Every status change of another node (never this one), from now on.
    pub fn alert_me(&self) -> impl Stream<Item = NodeUpdate> + Send + Unpin + 'static {
        let me = self.node.name().to_string();
        self.subscribe(Detail::Detailed)
            .filter_map(move |e| {
                let old = e.old.first().map(|r| r.status);
                let update = match e.new {
                    Some(new) if e.node != me && old != Some(new.status) => Some(NodeUpdate {
                        node: e.node,
                        status: new.status,
                    }),
                    _ => None,
                };
                std::future::ready(update)
            })
            .boxed()
    }

    /// The raw changes of the tracker's table: old and new rows.
    pub fn events(&self) -> TableChanges<String, NodeRow> {
        self.table.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Member, Status};

    fn member(name: &str, incarnation: u64, status: Status) -> Member {
        Member {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation,
            status,
            tags: Default::default(),
        }
    }

    fn row(node: &str, status: NodeStatus, at: u64, incarnation: u64) -> (String, NodeRow) {
        let r = NodeRow {
            module: tracker_module(),
            node: node.into(),
            status,
            last_change_ms: at,
            incarnation,
        };
        (node.into(), r)
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn only_the_lowest_live_member_writes_the_others_rows() {
        let members = [
            member("a", 1, Status::Down),
            member("b", 1, Status::Alive),
            member("c", 1, Status::Alive),
        ];
        let all = hosts(&["a", "b", "c"]);
        let rows = BTreeMap::from([row("a", NodeStatus::Online, 5, 1)]);
        // b is the lowest live member: it writes a offline, and the missing rows.
        let w = wanted_rows("b", &all, &members, &rows, 9);
        let got: Vec<_> = w
            .iter()
            .map(|r| (r.node.as_str(), r.status, r.last_change_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", NodeStatus::Offline, 9),
                ("b", NodeStatus::Online, 9),
                ("c", NodeStatus::Online, 9)
            ]
        );
        // c writes only its own row.
        let w = wanted_rows("c", &all, &members, &rows, 9);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].node, "c");
    }

    #[test]
    fn the_writer_is_chosen_among_the_nodes_hosting_the_tracker() {
        let members = [
            member("a", 1, Status::Alive),
            member("b", 1, Status::Alive),
            member("c", 1, Status::Down),
        ];
        let rows = BTreeMap::from([row("c", NodeStatus::Online, 5, 1)]);
        // a is the lowest live member but never started the tracker: b writes.
        let w = wanted_rows("b", &hosts(&["b", "c"]), &members, &rows, 9);
        assert!(
            w.iter()
                .any(|r| r.node == "c" && r.status == NodeStatus::Offline),
            "{w:?}"
        );
        // Once a hosts it too, a writes and b only its own row.
        let w = wanted_rows("b", &hosts(&["a", "b", "c"]), &members, &rows, 9);
        assert!(w.iter().all(|r| r.node == "b"), "{w:?}");
    }

    #[test]
    fn a_restart_updates_the_same_row_and_nothing_changes_twice() {
        let members = [member("a", 7, Status::Alive)];
        let rows = BTreeMap::from([row("a", NodeStatus::Online, 5, 3)]);
        let w = wanted_rows("a", &[], &members, &rows, 9);
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].incarnation, w[0].last_change_ms),
            (7, 5),
            "online all along"
        );
        let rows = BTreeMap::from([row("a", NodeStatus::Online, 5, 7)]);
        assert!(wanted_rows("a", &[], &members, &rows, 9).is_empty());
    }

    #[test]
    fn online_wins_a_join_then_the_later_change() {
        let (_, a) = row("x", NodeStatus::Online, 5, 1);
        let (_, b) = row("x", NodeStatus::Offline, 8, 1);
        assert_eq!(resolve(&"x".to_string(), &a, &b), a);
        assert_eq!(resolve(&"x".to_string(), &b, &a), a);
        let (_, c) = row("x", NodeStatus::Online, 9, 2);
        assert_eq!(resolve(&"x".to_string(), &a, &c), c);
    }
}
