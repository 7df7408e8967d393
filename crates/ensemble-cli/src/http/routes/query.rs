//! `POST /v1/query`: starts a query and streams its acks, responses and the final counts, one
//! JSON object per line.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use ensemble::{Error, Node, QueryError, QueryOptions};
use futures::StreamExt;

use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::views::{ErrorView, QueryBody, QueryLine};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/query", post(query))
}

/// 413 if the payload is too large, 429 if this node runs too many queries or over its rate,
/// 503 if the node stopped, else 400 if refused (name, filter, timeout).
#[utoipa::path(post, path = "/v1/query", summary = "Ask every matching member; stream their acks and responses (NDJSON)", tag = "queries", request_body = QueryBody,
    responses(
        (status = 200, description = "One JSON object per line until the timeout: acks, responses, and last the counts", content_type = "application/x-ndjson", body = QueryLine),
        (status = 400, description = "Refused: a bad name, filter or timeout", body = ErrorView),
        (status = 413, description = "The payload is over 8 KiB", body = ErrorView),
        (status = 429, description = "This node runs 16 queries already, or starts more than 20 per second", body = ErrorView),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn query(State(node): State<Node>, Json(q): Json<QueryBody>) -> Result<Response, ApiError> {
    let options = QueryOptions {
        nodes: q.nodes,
        tags: q.tags.into_iter().collect(),
        timeout: q.timeout_ms.map(Duration::from_millis),
        no_ack: q.no_ack,
    };
    let events = match node.query(&q.name, q.payload, options).await {
        Ok(events) => events,
        Err(err) => {
            let status = match &err {
                Error::Query(QueryError::PayloadTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
                Error::Query(QueryError::TooMany { .. } | QueryError::RateLimited { .. }) => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            return Err(ApiError::node(status, err));
        }
    };
    let lines = events.map(|e| {
        let mut bytes = serde_json::to_vec(&QueryLine::from(e)).expect("events serialize");
        bytes.push(b'\n');
        Ok::<_, Infallible>(bytes)
    });
    Ok(Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(lines))
        .expect("a valid response"))
}
