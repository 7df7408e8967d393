//! `POST /v1/send`: a named message to a handler on a member, acknowledged or not.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use ensemble::{Error, Node};

use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::views::{ErrorView, OkView, SendBody};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/send", post(send))
}

/// 200, or 404 (unknown member or name), 413 (does not fit in a frame), 504 (no ack in
/// time), 400.
#[utoipa::path(post, path = "/v1/send", summary = "Send a message to a named handler on a member", tag = "messages", request_body = SendBody,
    responses(
        (status = 200, description = "Sent (and acknowledged, with ack)", body = OkView),
        (status = 400, description = "Refused (an unknown channel, ...)", body = ErrorView),
        (status = 403, description = "reserved_handler: a handler name of Ensemble's own", body = ErrorView),
        (status = 404, description = "unknown_member or unknown_handler", body = ErrorView),
        (status = 413, description = "payload_too_large: does not fit in one frame", body = ErrorView),
        (status = 504, description = "ack_timeout: no acknowledgement in time", body = ErrorView),
    ))]
async fn send(State(node): State<Node>, Json(b): Json<SendBody>) -> Result<Json<OkView>, ApiError> {
    let result = if b.ack {
        let timeout = Duration::from_millis(b.timeout_ms);
        node.forward_message_on(&b.channel, &b.node, &b.name, b.payload, timeout)
            .await
    } else {
        node.cast_message_on(&b.channel, &b.node, &b.name, b.payload)
            .await
    };
    match result {
        Ok(()) => Ok(Json(OkView::OK)),
        Err(e) => {
            let status = match &e {
                Error::UnknownNode(_) | Error::UnknownName { .. } => StatusCode::NOT_FOUND,
                Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                Error::ReservedHandler(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            Err(ApiError::node(status, e))
        }
    }
}
