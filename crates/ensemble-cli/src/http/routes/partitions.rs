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
use crate::views::{Inject, PartitionView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/partitions", get(list).post(inject))
        .route("/v1/partitions/{reference}", delete(resolve))
}

async fn list(State(node): State<Node>) -> Json<Vec<PartitionView>> {
    Json(PartitionView::all(&node))
}

/// The longest time to live of a partition: a day.
const MAX_TTL_MS: u64 = 86_400_000;

/// `{"ref": N}`; 403 if not allowed, 400 without nodes or with a `ttl_ms` out of range, 503 if
/// the node refused.
async fn inject(
    State(s): State<AppState>,
    Json(body): Json<Inject>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
        Ok(r) => Ok(Json(serde_json::json!({ "ref": r.0 }))),
        Err(e) => Err(ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e)),
    }
}

/// 403 if not allowed, 404 if no such partition.
async fn resolve(
    State(s): State<AppState>,
    Path(reference): Path<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    allowed(&s)?;
    match s.node.resolve_partition(PartitionRef(reference)).await {
        Ok(()) => Ok(Json(serde_json::json!({ "ok": true }))),
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
