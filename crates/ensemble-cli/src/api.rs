//! The agent's local HTTP API.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ensemble::discovery::{Discovery, SystemInfo};
use ensemble::{BroadcastStatus, Error, Node};
use futures::StreamExt;

use crate::views::{EventView, Health, MemberView, PartitionView, SendEvent};

/// What the handlers share: the node and its discovery.
#[derive(Clone)]
pub struct AppState {
    node: Node,
    discovery: Discovery,
    tables: crate::tables::AgentTables,
}

impl FromRef<AppState> for crate::tables::AgentTables {
    fn from_ref(s: &AppState) -> Self {
        s.tables.clone()
    }
}

impl FromRef<AppState> for Node {
    fn from_ref(s: &AppState) -> Node {
        s.node.clone()
    }
}

impl FromRef<AppState> for Discovery {
    fn from_ref(s: &AppState) -> Discovery {
        s.discovery.clone()
    }
}

/// An error answer: `{"error": msg}` with `code`.
pub fn error(code: StatusCode, msg: String) -> Response {
    (code, Json(serde_json::json!({ "error": msg }))).into_response()
}

pub fn router(
    node: Node,
    discovery: Discovery,
    metrics: crate::metrics::Metrics,
    fault_injection: bool,
    tables: crate::tables::AgentTables,
) -> Router {
    Router::new()
        .merge(crate::partition::routes(fault_injection))
        .merge(crate::tables::routes())
        .route(
            "/metrics",
            get(move |State(node): State<Node>| async move {
                let text = metrics.render(&node).await;
                ([("content-type", "text/plain; version=0.0.4")], text)
            }),
        )
        .route("/v1/members", get(members))
        .route("/v1/self", get(local))
        .route("/v1/health", get(health))
        .route("/v1/events", get(event_stream).post(send_event))
        .route("/v1/broadcast", get(broadcast_status))
        .route("/v1/send", axum::routing::post(crate::send::send_route))
        .route("/v1/discovery", get(discovery_info))
        .route("/v1/ready", get(ready))
        .route("/v1/tracker", get(crate::tracker::route))
        .route("/v1/singletons", get(crate::singleton::route))
        .with_state(AppState {
            node,
            discovery,
            tables,
        })
}

/// `GET /v1/discovery`: discovery's system_info.
async fn discovery_info(State(d): State<Discovery>) -> Json<SystemInfo> {
    Json(d.system_info())
}

/// `GET /v1/ready`: 200 once discovery is ready (see `wait_for_ready`), else 503; the body
/// says why in either case.
async fn ready(State(d): State<Discovery>) -> Response {
    let i = d.system_info();
    let body = serde_json::json!({
        "ready": i.ready,
        "last_get_nodes_result": i.last_get_nodes_result,
        "connected_nodes": i.connected_nodes,
        "unavailable_nodes": i.unavailable_nodes,
    });
    let code = match i.ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(body)).into_response()
}

async fn members(State(node): State<Node>) -> Json<Vec<MemberView>> {
    Json(node.members().iter().map(MemberView::from).collect())
}

async fn local(State(node): State<Node>) -> Json<MemberView> {
    Json(MemberView::from(&node.local_member()))
}

async fn health(State(node): State<Node>) -> Json<Health> {
    let alive_members = node.members().iter().filter(|m| m.status.is_up()).count();
    Json(Health {
        status: "ok".into(),
        name: node.name().to_owned(),
        alive_members,
        partitions: PartitionView::all(&node),
    })
}

/// `POST /v1/events`: sends a user event; 400 or 413 with `{"error": ...}` if refused.
async fn send_event(State(node): State<Node>, Json(e): Json<SendEvent>) -> Response {
    match node.send_event(&e.name, e.payload).await {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(err) => {
            let code = match &err {
                Error::Broadcast(ensemble::proto::broadcast::BroadcastError::TooLarge {
                    ..
                }) => StatusCode::PAYLOAD_TOO_LARGE,
                Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            let body = serde_json::json!({ "error": err.to_string() });
            (code, Json(body)).into_response()
        }
    }
}

/// `GET /v1/events`: membership and user events from now on, one JSON object per line.
async fn event_stream(State(node): State<Node>) -> Response {
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

/// `GET /v1/broadcast`: broadcast state (neighbours, eager and lazy peers of this node's
/// tree, exchanges, counters).
async fn broadcast_status(State(node): State<Node>) -> Response {
    match node.broadcast_status(None).await {
        Ok(s) => Json::<BroadcastStatus>(s).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
