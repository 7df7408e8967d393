//! `GET /v1/broadcast`: broadcast state (neighbours, eager and lazy peers of this node's tree,
//! exchanges, counters).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use ensemble::{BroadcastStatus, Node};

use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/broadcast", get(status))
}

/// 503 if the node cannot answer.
async fn status(State(node): State<Node>) -> Result<Json<BroadcastStatus>, ApiError> {
    node.broadcast_status(None)
        .await
        .map(Json)
        .map_err(|e| ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e))
}
