//! Subscriptions to the tracker's table events (Beethoven's `subscribe(:simple | :detailed)`):
//! each write or delete of a row, with the new row and, in the detailed form, the rows before.

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::{tracker_module, NodeRow, Tracker};

/// How much a [`Tracker::subscribe`] event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// The operation and the new row ([`TrackerEvent::old`] stays empty).
    Simple,
    /// The operation, the new row and the rows it replaced.
    Detailed,
}

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackerOp {
    /// A row was written (added, or replaced).
    Write,
    /// A row was deleted.
    Delete,
}

/// One event of the tracker's table, from [`Tracker::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerEvent {
    /// Write or delete.
    pub op: TrackerOp,
    /// The service that owns the rows: [`super::TRACKER_TABLE`].
    pub module: String,
    /// The node whose row changed.
    pub node: String,
    /// The row written; `None` for a delete.
    pub new: Option<NodeRow>,
    /// With [`Detail::Detailed`]: the row before (none if the row is new); always empty with
    /// [`Detail::Simple`].
    pub old: Vec<NodeRow>,
}

impl Tracker {
    /// Every write and delete of the tracker's rows (this node's own included), from now on:
    /// the operation, the node, the new row and, with [`Detail::Detailed`], the old rows. A
    /// subscriber that falls more than 4096 batches behind misses some (logged as a warning).
    pub fn subscribe(
        &self,
        detail: Detail,
    ) -> impl Stream<Item = TrackerEvent> + Send + Unpin + 'static {
        let changes = self.table.subscribe();
        futures::stream::unfold(changes, move |mut changes| async move {
            loop {
                match changes.recv().await {
                    Ok(Some(c)) => {
                        let op = match c.new {
                            Some(_) => TrackerOp::Write,
                            None => TrackerOp::Delete,
                        };
                        let old = match detail {
                            Detail::Detailed => c.old.into_iter().collect(),
                            Detail::Simple => Vec::new(),
                        };
                        let event = TrackerEvent {
                            op,
                            module: tracker_module(),
                            node: c.key,
                            new: c.new,
                            old,
                        };
                        return Some((event, changes));
                    }
                    Ok(None) => return None,
                    Err(e) => tracing::warn!("tracker subscriber: {e}"),
                }
            }
        })
        .boxed()
    }
}
