//! `GET /v1/events` (the event stream: filtered by type, with a snapshot of the members on
//! request, and heartbeats) and `POST /v1/events` (a user event).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use ensemble::proto::broadcast::BroadcastError;
use ensemble::{Error, Node};
use futures::StreamExt;

use crate::event_filter::EventFilter;
use crate::http::error::{ApiError, Code};
use crate::http::extract::{query_params, Json};
use crate::http::state::AppState;
use crate::http::stream::{line, ndjson};
use crate::views::{ErrorView, EventLine, EventView, MemberView, OkView, SendEvent};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/events", get(stream).post(send_event))
}

/// `POST /v1/events`: sends a user event; 413 if the payload is too large, 503 if the node
/// stopped, else 400 if refused.
#[utoipa::path(post, path = "/v1/events", summary = "Send a user event to every member", tag = "events", request_body = SendEvent,
    responses(
        (status = 200, description = "Sent", body = OkView),
        (status = 400, description = "Refused (an empty name, ...)", body = ErrorView),
        (status = 413, description = "payload_too_large: over the broadcast max_payload (64 KiB)", body = ErrorView),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn send_event(
    State(node): State<Node>,
    Json(e): Json<SendEvent>,
) -> Result<Json<OkView>, ApiError> {
    match node.send_event(&e.name, e.payload).await {
        Ok(()) => Ok(Json(OkView::OK)),
        Err(err) => {
            let status = match &err {
                Error::Broadcast(BroadcastError::TooLarge { .. }) | Error::TooLarge { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            Err(ApiError::node(status, err))
        }
    }
}

/// `GET /v1/events?types=LIST&snapshot=true`: membership and user events from now on, one
/// JSON object per line, those of the types in LIST only (Serf's names, `event_filter`); with
/// `snapshot=true` first one `{"type":"snapshot","member":{...}}` line per member; a
/// `{"type":"heartbeat"}` line every 5 s. 400 `invalid_filter` for a bad type or parameter.
#[utoipa::path(get, path = "/v1/events", summary = "Stream of membership and user events (NDJSON)", operation_id = "stream_events", tag = "events",
    params(
        ("types" = Option<String>, Query, description = "Comma-separated event types: member-join, member-leave, member-failed, member-update, member-reap, member, user, user:NAME, * (default: every type)"),
        ("snapshot" = Option<bool>, Query, description = "First one snapshot line per member"),
    ),
    responses(
        (status = 200, description = "Events as they come, one JSON object per line; never ends by itself", content_type = "application/x-ndjson", body = EventLine),
        (status = 400, description = "invalid_filter: an unknown type, over 32 types or 1 KiB, another parameter or one given twice", body = ErrorView),
    ))]
async fn stream(
    State(node): State<Node>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidFilter, m);
    let params = query_params(
        query,
        "/v1/events",
        &["types", "snapshot"],
        Code::InvalidFilter,
    )?;
    let filter = match params.get("types") {
        Some(types) => EventFilter::parse(types).map_err(bad)?,
        None => EventFilter::default(),
    };
    let snapshot = match params.get("snapshot").map(String::as_str) {
        None | Some("false" | "0") => false,
        Some("true" | "1" | "") => true,
        Some(_) => return Err(bad("snapshot: true or false".into())),
    };
    // Subscribed before the snapshot is taken: no change falls between the two.
    let events = EventView::stream(&node)
        .filter(move |e| std::future::ready(filter.matches(e)))
        .map(|e| line(&e));
    let members: Vec<Vec<u8>> = match snapshot {
        true => node
            .members()
            .iter()
            .map(|m| {
                line(&serde_json::json!({ "type": "snapshot", "member": MemberView::from(m) }))
            })
            .collect(),
        false => Vec::new(),
    };
    Ok(ndjson(futures::stream::iter(members).chain(events)))
}
