//! `GET /v1/monitor?level=L`: the agent's log records as they are written, one JSON object per
//! line (`ensemble monitor`), at level L (`error`, `warn`, `info` [default], `debug`, `trace`)
//! whatever the agent writes to stderr. At most `MAX_MONITORS` at once (429 beyond); a monitor
//! that reads too slowly loses records and gets a `{"dropped": N}` line instead.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::http::error::{ApiError, Code};
use crate::http::extract::query_params;
use crate::http::state::AppState;
use crate::http::stream::{line, ndjson};
use crate::log_stream::{LogHub, MonitorLevel, Next, MAX_MONITORS};
use crate::views::{ErrorView, MonitorLine};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/monitor", get(monitor))
}

/// 400 `invalid_argument` for a bad level or another parameter; 429 `too_many_monitors`.
#[utoipa::path(get, path = "/v1/monitor", summary = "Stream of the agent's log records (NDJSON)", tag = "agent",
    params(("level" = Option<String>, Query, description = "error, warn, info (default), debug or trace")),
    responses(
        (status = 200, description = "The agent's log records as they are written, one JSON object per line; never ends by itself", content_type = "application/x-ndjson", body = MonitorLine),
        (status = 400, description = "invalid_argument: another level or parameter", body = ErrorView),
        (status = 429, description = "too_many_monitors: 8 monitors are connected already", body = ErrorView),
    ))]
async fn monitor(
    State(hub): State<LogHub>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, m);
    let params = query_params(query, "/v1/monitor", &["level"], Code::InvalidArgument)?;
    let level = params.get("level").map_or("info", String::as_str);
    let level = MonitorLevel::parse(level).ok_or_else(|| {
        bad(format!(
            "level {:?}: use one of {}",
            level.chars().take(64).collect::<String>(),
            MonitorLevel::NAMES.join(", ")
        ))
    })?;
    let monitor = hub.subscribe(level).map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::TooManyMonitors,
            format!("{MAX_MONITORS} monitors are connected already: the most at once"),
        )
    })?;
    let lines = futures::stream::unfold(monitor, |mut m| async move {
        let next = match m.next().await? {
            Next::Line(r) => {
                let mut l = r.line.clone().into_bytes();
                l.push(b'\n');
                l
            }
            Next::Dropped(n) => line(&serde_json::json!({ "dropped": n })),
        };
        Some((next, m))
    });
    Ok(ndjson(lines))
}
