//! [`TrackedTableInfo`]: what discovery's `info` reports for each tracked table (after CETS's
//! `cets_discovery:info/1`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::node::Node;

/// One tracked table: its local replica and how its joins went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrackedTableInfo {
    /// The table.
    pub table: String,
    /// Live records of the local replica; `None` if this node hosts no replica of it.
    pub size: Option<usize>,
    /// Estimated bytes of the local replica; `None` if this node hosts no replica of it.
    pub memory: Option<usize>,
    /// Every replica of the table's segment, this node included, sorted (empty if this node
    /// hosts no replica).
    pub nodes: Vec<String>,
    /// Join result per connected node: `ok` or the error (a failed join is tried again
    /// `after_error` later).
    pub join_results: BTreeMap<String, String>,
}

/// The info of each table in `tables`, with the join results of `system_info`.
pub(crate) async fn collect(
    node: &Node,
    tables: &[String],
    join_results: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<TrackedTableInfo> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let replica = node.table_info(t).await.ok().flatten();
        let join_results = join_results
            .iter()
            .filter_map(|(n, r)| r.get(t).map(|r| (n.clone(), r.clone())))
            .collect();
        out.push(TrackedTableInfo {
            table: t.clone(),
            size: replica.as_ref().map(|r| r.size),
            memory: replica.as_ref().map(|r| r.memory),
            nodes: replica.map(|r| r.members).unwrap_or_default(),
            join_results,
        });
    }
    out
}
