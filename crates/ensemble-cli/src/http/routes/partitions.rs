//! Fault injection: `GET|POST /v1/partitions`, `DELETE /v1/partitions/{reference}`.
//!
//! An injected partition drops all traffic between this agent and the named members at this
//! agent's transport (both directions, new connections refused) until it is resolved, or
//! until its `ttl_ms` passes. The
//! routes that change partitions answer 403 unless the agent was started with
//! `--allow-fault-injection`; listing always works, and `/v1/health` shows them too.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use ensemble::{Node, PartitionRef};

use crate::http::error::{ApiError, Code};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::views::{ErrorView, Inject, OkView, PartitionRefView, PartitionView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/partitions", get(list).post(inject))
        .route("/v1/partitions/{reference}", delete(resolve))
}

/// The partitions in force.
#[utoipa::path(get, path = "/v1/partitions", summary = "The injected partitions in force", operation_id = "list_partitions", tag = "partitions",
    responses((status = 200, description = "The partitions in force at this agent", body = Vec<PartitionView>)))]
async fn list(State(node): State<Node>) -> Json<Vec<PartitionView>> {
    Json(PartitionView::all(&node))
}

/// The longest time to live of a partition: a day.
const MAX_TTL_MS: u64 = 86_400_000;

/// `{"ref": N}`; 403 if not allowed, 400 without nodes or with a `ttl_ms` out of range, 503 if
/// the node refused.
#[utoipa::path(post, path = "/v1/partitions", summary = "Inject a partition (fault injection)", operation_id = "inject_partition", tag = "partitions", request_body = Inject,
    responses(
        (status = 200, description = "The partition injected", body = PartitionRefView),
        (status = 400, description = "no_nodes: no node named; bad_ttl: ttl_ms of 0 or over 86,400,000", body = ErrorView),
        (status = 403, description = "fault_injection_off: the agent runs without --allow-fault-injection", body = ErrorView),
        (status = 503, description = "The node refused", body = ErrorView),
    ))]
async fn inject(
    State(s): State<AppState>,
    Json(body): Json<Inject>,
) -> Result<Json<PartitionRefView>, ApiError> {
    allowed(&s)?;
    if body.nodes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::NoNodes,
            "name at least one node",
        ));
    }
    let injected = match body.ttl_ms {
        None => s.node.inject_partition(body.nodes).await,
        Some(ms) if (1..=MAX_TTL_MS).contains(&ms) => {
            let ttl = std::time::Duration::from_millis(ms);
            s.node.inject_partition_for(body.nodes, ttl).await
        }
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::BadTtl,
                format!("ttl_ms must be 1 to {MAX_TTL_MS} (a day)"),
            ))
        }
    };
    match injected {
        Ok(r) => Ok(Json(PartitionRefView { reference: r.0 })),
        Err(e) => Err(ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e)),
    }
}

/// 403 if not allowed, 404 if no such partition.
#[utoipa::path(delete, path = "/v1/partitions/{reference}", summary = "Resolve an injected partition", operation_id = "resolve_partition", tag = "partitions",
    params(("reference" = u64, Path, description = "The partition's ref")),
    responses(
        (status = 200, description = "Resolved", body = OkView),
        (status = 400, description = "invalid_path: a reference that is no number", body = ErrorView),
        (status = 403, description = "fault_injection_off: the agent runs without --allow-fault-injection", body = ErrorView),
        (status = 404, description = "unknown_partition", body = ErrorView),
    ))]
async fn resolve(
    State(s): State<AppState>,
    Path(reference): Path<u64>,
) -> Result<Json<OkView>, ApiError> {
    allowed(&s)?;
    match s.node.resolve_partition(PartitionRef(reference)).await {
        Ok(()) => Ok(Json(OkView::OK)),
        Err(e) => Err(ApiError::node(StatusCode::NOT_FOUND, e)),
    }
}

fn allowed(s: &AppState) -> Result<(), ApiError> {
    if s.fault_injection {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        Code::FaultInjectionOff,
        "fault injection is off on this agent; start it with --allow-fault-injection \
         (config key allow_fault_injection = true)",
    ))
}
