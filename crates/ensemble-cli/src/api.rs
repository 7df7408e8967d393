//! The agent's local HTTP API.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ensemble::{Member, Node};
use serde::{Deserialize, Serialize};

/// A member as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    pub name: String,
    pub addr: String,
    pub status: String,
    pub incarnation: u64,
    pub tags: BTreeMap<String, String>,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        MemberView {
            name: m.name.clone(),
            addr: m.addr.to_string(),
            status: m.status.to_string(),
            incarnation: m.incarnation,
            tags: m.tags.as_map().clone(),
        }
    }
}

/// `GET /v1/health`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub name: String,
    pub alive_members: usize,
}

pub fn router(node: Node) -> Router {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/self", get(local))
        .route("/v1/health", get(health))
        .with_state(node)
}

async fn members(State(node): State<Node>) -> Json<Vec<MemberView>> {
    Json(node.members().iter().map(MemberView::from).collect())
}

async fn local(State(node): State<Node>) -> Json<MemberView> {
    Json(MemberView::from(&node.local_member()))
}

async fn health(State(node): State<Node>) -> Json<Health> {
    let alive_members = node.members().iter().filter(|m| m.status.is_up()).count();
    Json(Health {
        status: "ok".into(),
        name: node.name().to_owned(),
        alive_members,
    })
}
