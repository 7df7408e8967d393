//! `GET /v1/broadcast`: broadcast state (neighbours, eager and lazy peers of this node's tree,
//! exchanges, counters). `GET /v1/broadcast/peers/{node}[/{root}]`: a member's eager and lazy
//! peers for a root (its own tree by default) and its exchanges, asked over the cluster.
//! `GET /v1/broadcast/tree/{root}`: the tree of `root` as every live member sees it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::time::Duration;

use ensemble::{BroadcastPeers, BroadcastStatus, BroadcastTree, Error, Node};

use crate::http::error::ApiError;
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::views::ErrorView;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/broadcast", get(status))
        .route("/v1/broadcast/peers/{node}", get(own_peers))
        .route("/v1/broadcast/peers/{node}/{root}", get(peers))
        .route("/v1/broadcast/tree/{root}", get(tree))
}

/// How long a member has to answer an introspection request.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The errors of asking a member (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum AskErrors {
    /// unknown_member: not a live member.
    #[response(status = 404)]
    Unknown(ErrorView),
    /// node_stopped.
    #[response(status = 503)]
    Stopped(ErrorView),
    /// ack_timeout: no answer within 5 s.
    #[response(status = 504)]
    Late(ErrorView),
}

/// 404 `unknown_member` if `node` is not live, 504 `ack_timeout` if it did not answer in time.
#[utoipa::path(get, path = "/v1/broadcast/peers/{node}", summary = "A member's peers in its own broadcast tree", operation_id = "broadcast_own_peers", tag = "broadcast",
    params(("node" = String, Path, description = "The member asked")),
    responses(
        (status = 200, description = "Its eager and lazy peers for its own tree, and its exchanges", body = BroadcastPeers),
        AskErrors,
    ))]
async fn own_peers(
    State(node): State<Node>,
    Path(of): Path<String>,
) -> Result<Json<BroadcastPeers>, ApiError> {
    ask_peers(&node, &of, None).await
}

/// As [`own_peers`]; 400 for a root that cannot name a member.
#[utoipa::path(get, path = "/v1/broadcast/peers/{node}/{root}", summary = "A member's peers in the broadcast tree of a root", operation_id = "broadcast_peers", tag = "broadcast",
    params(
        ("node" = String, Path, description = "The member asked"),
        ("root" = String, Path, description = "The tree's root"),
    ),
    responses(
        (status = 200, description = "Its eager and lazy peers for the tree of root, and its exchanges", body = BroadcastPeers),
        (status = 400, description = "invalid_argument: a root that cannot name a member", body = ErrorView),
        AskErrors,
    ))]
async fn peers(
    State(node): State<Node>,
    Path((of, root)): Path<(String, String)>,
) -> Result<Json<BroadcastPeers>, ApiError> {
    ask_peers(&node, &of, Some(&root)).await
}

async fn ask_peers(
    node: &Node,
    of: &str,
    root: Option<&str>,
) -> Result<Json<BroadcastPeers>, ApiError> {
    match node.broadcast_peers(of, root, ASK_TIMEOUT).await {
        Ok(p) => Ok(Json(p)),
        Err(e @ Error::UnknownNode(_)) => Err(ApiError::node(StatusCode::NOT_FOUND, e)),
        Err(e @ Error::Timeout { .. }) => Err(ApiError::node(StatusCode::GATEWAY_TIMEOUT, e)),
        Err(e @ Error::Member(_)) => Err(ApiError::node(StatusCode::BAD_REQUEST, e)),
        Err(e) => Err(ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e)),
    }
}

/// Members that did not answer within 5 s are listed in `unanswered`; 400 for a root that
/// cannot name a member.
#[utoipa::path(get, path = "/v1/broadcast/tree/{root}", summary = "The broadcast tree of a root, as every live member sees it", operation_id = "broadcast_tree", tag = "broadcast",
    params(("root" = String, Path, description = "The tree's root")),
    responses(
        (status = 200, description = "The tree as every live member sees it", body = BroadcastTree),
        (status = 400, description = "invalid_argument: a root that cannot name a member", body = ErrorView),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn tree(
    State(node): State<Node>,
    Path(root): Path<String>,
) -> Result<Json<BroadcastTree>, ApiError> {
    match node.broadcast_tree(&root, ASK_TIMEOUT).await {
        Ok(t) => Ok(Json(t)),
        Err(e @ Error::Member(_)) => Err(ApiError::node(StatusCode::BAD_REQUEST, e)),
        Err(e) => Err(ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e)),
    }
}

/// 503 if the node cannot answer.
#[utoipa::path(get, path = "/v1/broadcast", summary = "This node's broadcast state and counters", operation_id = "broadcast_status", tag = "broadcast",
    responses(
        (status = 200, description = "This node's broadcast state", body = BroadcastStatus),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn status(State(node): State<Node>) -> Result<Json<BroadcastStatus>, ApiError> {
    node.broadcast_status(None)
        .await
        .map(Json)
        .map_err(|e| ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e))
}
