//! `GET /v1/history`: what the agent saw happen over the last hour (`crate::history`), the
//! dashboard's timeline.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::history::History;
use crate::http::error::{ApiError, Code};
use crate::http::extract::{query_params, Json};
use crate::http::state::AppState;
use crate::views::{ErrorView, HistoryView};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/history", get(history))
}

/// Oldest first; 400 `invalid_argument` for a parameter that is not a number, an unknown one
/// or one given twice.
#[utoipa::path(get, path = "/v1/history", summary = "What this agent saw happen over the last hour", tag = "agent",
    params(
        ("since_ms" = Option<u64>, Query, description = "Only entries recorded at or after this time (milliseconds since the Unix epoch)"),
        ("after" = Option<u64>, Query, description = "Only entries with a seq above this one (the last_seq of an earlier answer)"),
    ),
    responses(
        (status = 200, description = "The entries of the last hour (at most 10,000), oldest first", body = HistoryView),
        (status = 400, description = "invalid_argument: a parameter that is not a number, an unknown parameter, or one given twice", body = ErrorView),
    ))]
async fn history(
    State(history): State<History>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<HistoryView>, ApiError> {
    let route = "/v1/history";
    let params = query_params(query, route, &["since_ms", "after"], Code::InvalidArgument)?;
    let number = |name: &str| -> Result<u64, ApiError> {
        match params.get(name) {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidArgument,
                    format!("{name}: a whole number of at most 20 digits"),
                )
            }),
        }
    };
    Ok(Json(history.read(number("since_ms")?, number("after")?)))
}
