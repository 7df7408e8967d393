//! `GET /v1/keys` (each live node's keys, by fingerprint) and `POST /v1/keys` (`install`,
//! `use` or `remove` a key on every live node): key rotation, like `serf keys`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use ensemble::{KeyResponse, Node, Secret};

use crate::http::error::{ApiError, Code};
use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::views::{ErrorView, KeysBody};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/keys", get(list).post(change))
}

/// 200 with every node's answer (the failures are in the answer), or 503.
#[utoipa::path(get, path = "/v1/keys", summary = "Each live node's cluster keys", operation_id = "list_keys", tag = "keys",
    responses(
        (status = 200, description = "Each live node's keys, by fingerprint", body = KeyResponse),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn list(State(node): State<Node>) -> Result<Json<KeyResponse>, ApiError> {
    node.list_keys()
        .await
        .map(Json)
        .map_err(|e| ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e))
}

/// 200 with every node's answer (the failures are in the answer), 400 for an unknown
/// operation or a key too weak to use, 503.
#[utoipa::path(post, path = "/v1/keys", summary = "Install, use or remove a cluster key on every live node", operation_id = "change_keys", tag = "keys", request_body = KeysBody,
    responses(
        (status = 200, description = "Every node's answer (the failures are in the answer)", body = KeyResponse),
        (status = 400, description = "invalid_argument: an unknown operation or a key too weak to use", body = ErrorView),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn change(
    State(node): State<Node>,
    Json(b): Json<KeysBody>,
) -> Result<Json<KeyResponse>, ApiError> {
    let key = Secret::new(b.key.trim().as_bytes().to_vec())
        .map_err(|e| ApiError::node(StatusCode::BAD_REQUEST, e))?;
    let result = match b.op.as_str() {
        "install" => node.install_key(&key).await,
        "use" => node.use_key(&key).await,
        "remove" => node.remove_key(&key).await,
        other => {
            let msg = format!("unknown key operation {other:?}: install, use or remove");
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                msg,
            ));
        }
    };
    result
        .map(Json)
        .map_err(|e| ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e))
}
