//! `GET /v1/singletons`: the agent's singletons, who leads each, at which epoch, since when.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use ensemble::{Node, SingletonStatus};

use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::views::ErrorView;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/singletons", get(singletons))
}

/// 503 if the node cannot answer.
#[utoipa::path(get, path = "/v1/singletons", summary = "This agent's singletons and their leaders", tag = "singletons",
    responses(
        (status = 200, description = "The agent's singletons", body = Vec<SingletonStatus>),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn singletons(State(node): State<Node>) -> Result<Json<Vec<SingletonStatus>>, ApiError> {
    node.singletons()
        .await
        .map(Json)
        .map_err(|e| ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e))
}
