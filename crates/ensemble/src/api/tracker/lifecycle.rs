//! Beethoven's CoreServer calls around the tracker's life: `new_node` and `add_node` (put a
//! node in the tracker), `table_exists` and `until_exists` (is the tracker's table here yet),
//! and `entry_point` (told when the tracker enters standalone or clustered mode).

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;

use super::{mode_of, now_ms, tracker_module, Mode, NodeRow, NodeStatus, Tracker, RECONCILE};
use crate::api::tracker::TRACKER_TABLE;
use crate::error::Error;
use crate::node::Node;

/// How long [`Tracker::until_exists`] waits by default: Beethoven's 1,000 ms.
pub const UNTIL_EXISTS_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How often [`Tracker::until_exists`] looks by default: Beethoven's 15 ms.
pub const UNTIL_EXISTS_INTERVAL: Duration = Duration::from_millis(15);

/// A running [`Tracker::entry_point`] callback: it runs until the node stops or
/// [`EntryPoint::cancel`]; dropping the handle leaves it running.
#[derive(Debug)]
pub struct EntryPoint {
    task: tokio::task::JoinHandle<()>,
}

impl EntryPoint {
    /// Stops calling the callback.
    pub fn cancel(self) {
        self.task.abort();
    }
}

impl Tracker {
    /// True if this node hosts the tracker's table (someone called [`Node::tracker`] here).
    pub async fn table_exists(node: &Node) -> bool {
        matches!(node.table_info(TRACKER_TABLE).await, Ok(Some(_)))
    }

    /// Waits until this node hosts the tracker's table, looking every `interval` (at least
    /// 1 ms); false if it did not within `timeout`. Beethoven's defaults are
    /// [`UNTIL_EXISTS_TIMEOUT`] and [`UNTIL_EXISTS_INTERVAL`].
    pub async fn until_exists(node: &Node, timeout: Duration, interval: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let interval = interval.max(Duration::from_millis(1));
        loop {
            if Self::table_exists(node).await {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
        }
    }

    /// Marks `node` online in the tracker (adding its row if it has none); a node already
    /// online is left as it is. A member's row follows membership again at the writer's next
    /// reconcile (a member that is down goes back offline); a node outside membership keeps
    /// the row written here. Names are checked like member names ([`Error::Member`]).
    pub async fn new_node(&self, node: &str) -> Result<(), Error> {
        ensemble_proto::member::validate_name(node)?;
        let old = self.table.get(&node.to_string())?;
        let incarnation = self
            .node
            .members()
            .into_iter()
            .find(|m| m.name == node)
            .map(|m| m.incarnation);
        let row = match old {
            Some(r) if r.status == NodeStatus::Online => return Ok(()),
            Some(r) => NodeRow {
                status: NodeStatus::Online,
                last_change_ms: now_ms(),
                incarnation: incarnation.unwrap_or(r.incarnation),
                ..r
            },
            None => NodeRow {
                module: tracker_module(),
                node: node.to_owned(),
                status: NodeStatus::Online,
                last_change_ms: now_ms(),
                incarnation: incarnation.unwrap_or(0),
            },
        };
        self.table.insert(node.to_owned(), row).await
    }

    /// Joins the node at `addr` to this node's cluster and marks it online in the tracker
    /// (Beethoven's `add_node`, which also connected its database); returns its name.
    pub async fn add_node(&self, addr: SocketAddr) -> Result<String, Error> {
        let name = self.node.join(addr).await?;
        self.new_node(&name).await?;
        Ok(name)
    }

    /// Calls `f` with the current mode at once (from a background task), then each time the
    /// tracker enters the other mode: [`Mode::Standalone`] when no other member is online,
    /// [`Mode::Clustered`] when one is (Beethoven's `entry_point(mode)`). The mode is looked at
    /// on every membership event and every second.
    pub fn entry_point(&self, mut f: impl FnMut(Mode) + Send + 'static) -> EntryPoint {
        let weak = self.node.downgrade();
        let mut events = self.node.events();
        let task = tokio::spawn(async move {
            let mut last = None;
            loop {
                let Some(node) = weak.upgrade() else { return };
                let mode = mode_of(&node);
                drop(node);
                if last != Some(mode) {
                    f(mode);
                    last = Some(mode);
                }
                if let Ok(None) = tokio::time::timeout(RECONCILE, events.next()).await {
                    return; // the node stopped
                }
            }
        });
        EntryPoint { task }
    }
}
