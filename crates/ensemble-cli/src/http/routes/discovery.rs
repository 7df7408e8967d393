//! `GET /v1/discovery` (discovery's system_info, and `info`: each tracked table's replica and
//! joins), `POST /v1/discovery/get_nodes` (call the backend now) and `GET /v1/ready`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use ensemble::discovery::{Discovery, SystemInfo, TrackedTableInfo};
use serde::Serialize;

use crate::http::error::{ApiError, Code};
use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::views::{ErrorView, ReadyView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/discovery", get(info))
        .route("/v1/discovery/get_nodes", post(get_nodes))
        .merge(probes())
}

/// `GET /v1/ready` alone (answered without a token).
pub fn probes() -> Router<AppState> {
    Router::new().route("/v1/ready", get(ready))
}

/// system_info's fields, and `info`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DiscoveryView {
    #[serde(flatten)]
    system_info: SystemInfo,
    /// Each tracked table: size, memory, nodes of its segment, join results (CETS's `info`).
    info: Vec<TrackedTableInfo>,
}

/// Discovery's state.
#[utoipa::path(get, path = "/v1/discovery", summary = "Discovery's state and each tracked table", operation_id = "discovery_info", tag = "discovery",
    responses((status = 200, description = "system_info's fields, and info", body = DiscoveryView)))]
async fn info(State(d): State<Discovery>) -> Json<DiscoveryView> {
    Json(DiscoveryView {
        system_info: d.system_info(),
        info: d.info().await,
    })
}

/// Calls the backend now (queued behind a call that runs); answers system_info once the call
/// is started or queued, without waiting for it to end. The body is ignored.
#[utoipa::path(post, path = "/v1/discovery/get_nodes", summary = "Ask the discovery backend for nodes now", tag = "discovery",
    responses((status = 200, description = "system_info, once the call is started or queued", body = SystemInfo)))]
async fn get_nodes(State(d): State<Discovery>) -> Json<SystemInfo> {
    d.get_nodes_now().await;
    Json(d.system_info())
}

/// 200 once discovery is ready (see `wait_for_ready`), else 503; the body says why in either
/// case (the 503 adds `error` and `code` to the same fields).
#[utoipa::path(get, path = "/v1/ready", summary = "Readiness probe (no token): discovery is ready", tag = "probes",
    responses(
        (status = 200, description = "Discovery is ready", body = ReadyView),
        (status = 503, description = "not_ready: the same fields, with error and code", body = ErrorView),
    ))]
async fn ready(State(d): State<Discovery>) -> Result<Json<ReadyView>, ApiError> {
    let i = d.system_info();
    let last = i
        .last_get_nodes_result
        .as_deref()
        .unwrap_or("none yet")
        .to_owned();
    let body = ReadyView {
        ready: i.ready,
        last_get_nodes_result: i.last_get_nodes_result,
        connected_nodes: i.connected_nodes,
        unavailable_nodes: i.unavailable_nodes,
    };
    if body.ready {
        return Ok(Json(body));
    }
    let message = format!(
        "not ready: not every discovered node is joined or failed yet (last get_nodes: {last})"
    );
    let details = serde_json::to_value(body).expect("answers serialize");
    Err(
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::NotReady, message)
            .with_details(details),
    )
}
