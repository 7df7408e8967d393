//! `POST /v1/query`: starts a query and streams its acks, responses and the final counts, one
//! JSON object per line.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use ensemble::{Error, Node, QueryError, QueryEvent, QueryOptions};
use futures::StreamExt;
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/query", post(query))
}

/// `POST /v1/query` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    pub name: String,
    #[serde(default)]
    pub payload: String,
    /// Member names; empty: every member.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Tag key to a regular expression its value must match.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// None: Serf's default for the cluster's size.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub no_ack: bool,
}

/// One line of the answer.
fn line(event: QueryEvent) -> serde_json::Value {
    match event {
        QueryEvent::Ack { from } => serde_json::json!({ "type": "ack", "from": from.to_string() }),
        QueryEvent::Response { from, payload } => serde_json::json!({
            "type": "response",
            "from": from.to_string(),
            "payload": String::from_utf8_lossy(&payload),
        }),
        QueryEvent::Done { acks, responses } => {
            serde_json::json!({ "type": "done", "acks": acks, "responses": responses })
        }
    }
}

/// 413 if the payload is too large, 429 if this node runs too many queries or over its rate,
/// 503 if the node stopped, else 400 if refused (name, filter, timeout).
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
        let mut bytes = serde_json::to_vec(&line(e)).expect("events serialize");
        bytes.push(b'\n');
        Ok::<_, Infallible>(bytes)
    });
    Ok(Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(lines))
        .expect("a valid response"))
}
