//! `GET /v1/events` (the event stream) and `POST /v1/events` (a user event).

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use ensemble::proto::broadcast::BroadcastError;
use ensemble::{Error, Node};
use futures::StreamExt;

use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::views::{EventView, SendEvent};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/events", get(stream).post(send_event))
}

/// `POST /v1/events`: sends a user event; 413 if the payload is too large, 503 if the node
/// stopped, else 400 if refused.
async fn send_event(
    State(node): State<Node>,
    Json(e): Json<SendEvent>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match node.send_event(&e.name, e.payload).await {
        Ok(()) => Ok(Json(serde_json::json!({ "ok": true }))),
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

/// `GET /v1/events`: membership and user events from now on, one JSON object per line.
async fn stream(State(node): State<Node>) -> Response {
    let lines = EventView::stream(&node).map(|e| {
        let mut line = serde_json::to_vec(&e).expect("events serialize");
        line.push(b'\n');
        Ok::<_, Infallible>(line)
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(lines))
        .expect("a valid response")
}
