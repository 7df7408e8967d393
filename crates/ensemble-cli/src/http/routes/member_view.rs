//! `GET /v1/members/{node}/view`: how another member sees the cluster, asked of that member
//! through the internal query `ensemble.view` (only it is selected; it answers a bounded
//! summary), so that a page that may talk to this agent only can show it.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use ensemble::{Node, QueryEvent, QueryOptions, Status};
use futures::StreamExt;

use crate::http::error::{ApiError, Code};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::views::{ErrorView, MemberViewSummary, VIEW_QUERY};

/// How long the member has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/members/{node}/view", get(view))
}

/// The member's own view of the cluster: 404 for a member this agent does not hold alive or
/// suspect, 504 when it does not answer within 2 s.
#[utoipa::path(get, path = "/v1/members/{node}/view", summary = "How a member sees the cluster", operation_id = "member_view", tag = "members",
    params(("node" = String, Path, description = "The member's name")),
    responses(
        (status = 200, description = "Its view: members by status, and those it does not hold alive (at most 100)", body = MemberViewSummary),
        (status = 404, description = "unknown_member: not a live member here", body = ErrorView),
        (status = 429, description = "request_failed: too many queries running, or over the rate", body = ErrorView),
        (status = 504, description = "no_answer: the member did not answer in time", body = ErrorView),
    ))]
async fn view(
    State(node): State<Node>,
    Path(name): Path<String>,
) -> Result<Json<MemberViewSummary>, ApiError> {
    if name == node.name() {
        return Ok(Json(MemberViewSummary::of(&name, &node.members())));
    }
    let live = node
        .members()
        .iter()
        .any(|m| m.name == name && matches!(m.status, Status::Alive | Status::Suspect));
    if !live {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Code::UnknownMember,
            format!("{name:?} is not a live member of this agent's view"),
        ));
    }
    let options = QueryOptions {
        nodes: vec![name.clone()],
        timeout: Some(ANSWER_WITHIN),
        no_ack: true,
        ..QueryOptions::default()
    };
    let mut answers = node
        .query(VIEW_QUERY, Bytes::new(), options)
        .await
        .map_err(|e| ApiError::node(StatusCode::TOO_MANY_REQUESTS, e))?;
    while let Some(answer) = answers.next().await {
        if let QueryEvent::Response { from, payload } = answer {
            if *from == *name {
                return serde_json::from_slice(&payload).map(Json).map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        Code::NoAnswer,
                        format!("{name} answered something else than its view: {e}"),
                    )
                });
            }
        }
    }
    Err(ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        Code::NoAnswer,
        format!("{name} did not answer within {ANSWER_WITHIN:?}"),
    ))
}
