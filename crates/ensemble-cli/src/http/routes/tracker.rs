//! `GET /v1/tracker`: the node tracker's rows and the cluster mode.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use ensemble::Node;

use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::views::{ErrorView, RowView, TrackerView};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/tracker", get(tracker))
}

/// 503 if the tracker cannot be read.
#[utoipa::path(get, path = "/v1/tracker", summary = "Every node ever seen, and the cluster mode", tag = "tracker",
    responses(
        (status = 200, description = "The tracker's rows and the cluster mode", body = TrackerView),
        (status = 503, description = "The tracker cannot be read", body = ErrorView),
    ))]
async fn tracker(State(node): State<Node>) -> Result<Json<TrackerView>, ApiError> {
    let view = async {
        let t = node.tracker().await?;
        let nodes = t
            .fetch_all()?
            .into_iter()
            .map(|r| RowView {
                module: r.module,
                node: r.node,
                status: r.status,
                last_change: r.last_change_ms,
                incarnation: r.incarnation,
            })
            .collect();
        Ok::<_, ensemble::Error>(TrackerView {
            mode: t.get_mode(),
            nodes,
        })
    };
    view.await
        .map(Json)
        .map_err(|e| ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e))
}
