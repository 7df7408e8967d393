//! The agent's answer to the internal query `ensemble.view` ([`VIEW_QUERY`]): its own view of
//! the cluster summed up, for another agent's `GET /v1/members/{node}/view` (the dashboard's
//! member details). The answer reads the member list the node publishes, kept by a task that
//! holds no handle on the node.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use ensemble::{Member, Node};
use futures::StreamExt;

use crate::views::{MemberViewSummary, VIEW_QUERY};

/// Registers the answer to [`VIEW_QUERY`] on `node`.
pub async fn register(node: &Node) -> Result<()> {
    let latest: Arc<Mutex<Vec<Member>>> = Arc::new(Mutex::new(node.members()));
    let mut lists = node.member_lists();
    let keep = latest.clone();
    tokio::spawn(async move {
        while let Some(list) = lists.next().await {
            *keep.lock().expect("member list") = list.iter().map(|m| (**m).clone()).collect();
        }
    });
    let name = node.name().to_string();
    node.register_query_handler(VIEW_QUERY, move |_query| {
        let members = latest.lock().expect("member list").clone();
        let summary = MemberViewSummary::of(&name, &members);
        async move { serde_json::to_vec(&summary).ok().map(Bytes::from) }
    })
    .await?;
    Ok(())
}
