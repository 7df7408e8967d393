//! `GET /v1/members`, `GET /v1/self` and `GET /v1/health`.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use ensemble::Node;

use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::views::{Health, MemberView, PartitionView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/self", get(local))
        .merge(probes())
}

/// `GET /v1/health` alone (answered without a token).
pub fn probes() -> Router<AppState> {
    Router::new().route("/v1/health", get(health))
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
        partitions: PartitionView::all(&node),
    })
}
