//! `GET /v1/members` (filtered by `status`, `name` and `tag` patterns, as `serf members`),
//! `GET /v1/self`, `GET /v1/health` and `POST /v1/members/{node}/force-leave`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use ensemble::{Error, Node};

use crate::http::error::{ApiError, Code};
use crate::http::extract::{Json, Path};
use crate::http::filter::MemberFilter;
use crate::http::state::AppState;
use crate::views::{ErrorView, Health, LeaveView, MemberView, PartitionView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/members/{node}/force-leave", post(force_leave))
        .route("/v1/self", get(local))
        .merge(probes())
}

/// `GET /v1/health` alone (answered without a token).
pub fn probes() -> Router<AppState> {
    Router::new().route("/v1/health", get(health))
}

/// 400 `invalid_filter` for a bad filter.
#[utoipa::path(get, path = "/v1/members", summary = "The members, filtered by status, name and tags", operation_id = "list_members", tag = "members",
    params(
        ("status" = Option<String>, Query, description = "Regular expression the whole status must match (alive, suspect, down, left)"),
        ("name" = Option<String>, Query, description = "Regular expression the whole name must match"),
        ("tag" = Option<Vec<String>>, Query, description = "KEY=REGEX: the tag KEY must exist and match; repeatable, at most 16"),
    ),
    responses(
        (status = 200, description = "The members passing every filter", body = Vec<MemberView>),
        (status = 400, description = "invalid_filter: a bad or over-long pattern, over 16 tag filters, a parameter given twice or unknown", body = ErrorView),
    ))]
async fn members(
    State(node): State<Node>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let Query(params) = query
        .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidFilter, r.body_text()))?;
    let filter = MemberFilter::parse(params)?;
    Ok(Json(
        node.members()
            .iter()
            .filter(|m| filter.matches(m))
            .map(MemberView::from)
            .collect(),
    ))
}

/// Marks `node` left on every member (`Node::remove`): 404 `unknown_member` for a member this
/// agent does not know (or knows as left already), 400 for the agent's own name (use
/// `POST /v1/leave`), 503 if the node stopped.
#[utoipa::path(post, path = "/v1/members/{node}/force-leave", summary = "Mark a failed member left on every member", tag = "members",
    params(("node" = String, Path, description = "The member's name")),
    responses(
        (status = 200, description = "Every member marks it left", body = LeaveView),
        (status = 400, description = "invalid_argument: the agent's own name (use POST /v1/leave)", body = ErrorView),
        (status = 404, description = "unknown_member: a member this agent does not know, or knows as left", body = ErrorView),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn force_leave(
    State(node): State<Node>,
    Path(name): Path<String>,
) -> Result<Json<LeaveView>, ApiError> {
    match node.remove(&name).await {
        Ok(()) => Ok(Json(LeaveView {
            ok: true,
            node: name,
        })),
        Err(e @ Error::UnknownNode(_)) => Err(ApiError::node(StatusCode::NOT_FOUND, e)),
        Err(e @ Error::Stopped) => Err(ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e)),
        Err(e) => Err(ApiError::node(StatusCode::BAD_REQUEST, e)),
    }
}

/// This agent's own member.
#[utoipa::path(get, path = "/v1/self", summary = "This agent's own member", operation_id = "self_member", tag = "members",
    responses((status = 200, description = "This agent's member", body = MemberView)))]
async fn local(State(node): State<Node>) -> Json<MemberView> {
    Json(MemberView::from(&node.local_member()))
}

/// A probe: answered without a token.
#[utoipa::path(get, path = "/v1/health", summary = "Liveness probe (no token)", tag = "probes",
    responses((status = 200, description = "The agent runs", body = Health)))]
async fn health(State(node): State<Node>) -> Json<Health> {
    let alive_members = node.members().iter().filter(|m| m.status.is_up()).count();
    Json(Health {
        status: "ok".into(),
        name: node.name().to_owned(),
        alive_members,
        partitions: PartitionView::all(&node),
    })
}
