//! `GET /metrics`: the agent's figures in the Prometheus text format (see `http/metrics.rs`).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::http::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// A probe: answered without a token.
#[utoipa::path(get, path = "/metrics", summary = "Prometheus metrics (no token)", tag = "probes",
    responses((status = 200, description = "The agent's figures in the Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
async fn scrape(State(s): State<AppState>) -> impl IntoResponse {
    let text = s.metrics.render();
    ([("content-type", "text/plain; version=0.0.4")], text)
}
