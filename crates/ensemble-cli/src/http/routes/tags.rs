//! `PUT /v1/tags` (add or change tags) and `DELETE /v1/tags` (remove tags) of this agent's
//! node, like `serf tags -set/-delete`. Other tags stay; the cluster sees an `updated` event;
//! with `--tags-file` the file is rewritten so the tags survive a restart.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::put;
use axum::Router;
use ensemble::proto::member::{MAX_TAGS, MAX_TAG_KEY_LEN};
use ensemble::proto::topology::{RESERVE_TAG, ROLE_TAG};
use ensemble::{Error, Node};

use crate::http::error::{ApiError, Code};
use crate::http::extract::Json;
use crate::http::state::{AgentControl, AppState};
use crate::tags_file::{split, OWN_PREFIX};
use crate::views::{DeleteTagsBody, ErrorView, SetTagsBody, TagsView};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/tags", put(set).delete(delete))
}

/// The errors of both routes but their 400 (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum NotChanged {
    /// tags_not_saved: the node took them, the tags file could not be written.
    #[response(status = 500)]
    NotSaved(ErrorView),
    /// node_stopped.
    #[response(status = 503)]
    Stopped(ErrorView),
}

/// 200 with the tags now; 400 for tags over the limits or of Ensemble's own (`ensemble.*`);
/// 500 `tags_not_saved` if the node took them but the tags file could not be written.
#[utoipa::path(put, path = "/v1/tags", summary = "Add or change this agent's tags", operation_id = "set_tags", tag = "agent", request_body = SetTagsBody,
    responses(
        (status = 200, description = "The tags now (Ensemble's own left out)", body = TagsView),
        (status = 400, description = "invalid_argument: over the tag limits, or a key starting with ensemble.", body = ErrorView),
        NotChanged,
    ))]
async fn set(
    State(node): State<Node>,
    State(agent): State<AgentControl>,
    Json(b): Json<SetTagsBody>,
) -> Result<Json<TagsView>, ApiError> {
    at_most_tags(b.tags.len(), "tags")?;
    change(&node, &agent, |tags| tags.extend(b.tags)).await
}

/// 200 with the tags now (removing a tag the node does not carry is no error); 400 for more
/// keys than a node can carry or a key over the length limit.
#[utoipa::path(delete, path = "/v1/tags", summary = "Remove some of this agent's tags", operation_id = "delete_tags", tag = "agent", request_body = DeleteTagsBody,
    responses(
        (status = 200, description = "The tags now (Ensemble's own left out)", body = TagsView),
        (status = 400, description = "invalid_argument: over 32 keys, or a key over 64 bytes", body = ErrorView),
        NotChanged,
    ))]
async fn delete(
    State(node): State<Node>,
    State(agent): State<AgentControl>,
    Json(b): Json<DeleteTagsBody>,
) -> Result<Json<TagsView>, ApiError> {
    at_most_tags(b.keys.len(), "keys")?;
    if let Some(k) = b
        .keys
        .iter()
        .find(|k| k.is_empty() || k.len() > MAX_TAG_KEY_LEN)
    {
        let shown: String = k.chars().take(MAX_TAG_KEY_LEN).collect();
        return Err(invalid(format!(
            "tag key {shown:?} must be 1 to {MAX_TAG_KEY_LEN} bytes long"
        )));
    }
    change(&node, &agent, |tags| {
        for k in &b.keys {
            tags.remove(k);
        }
    })
    .await
}

/// 400 if `n` tags or keys are more than a node can carry.
fn at_most_tags(n: usize, what: &str) -> Result<(), ApiError> {
    if n > MAX_TAGS {
        return Err(invalid(format!(
            "{n} {what} given; a node carries at most {MAX_TAGS} tags"
        )));
    }
    Ok(())
}

fn invalid(msg: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, msg)
}

/// The node's tags without Ensemble's own, changed by `edit`, set on the node (Ensemble's own
/// kept), then saved.
async fn change(
    node: &Node,
    agent: &AgentControl,
    edit: impl FnOnce(&mut BTreeMap<String, String>),
) -> Result<Json<TagsView>, ApiError> {
    let _one_at_a_time = agent.tags_lock.lock().await;
    // The role and reserve tags are set by the topology and by Node::reserve, which set_tags
    // keeps by itself.
    let all = node.local_member().tags.as_map().clone();
    let (own, mut tags) = split(&all, &[ROLE_TAG, RESERVE_TAG]);
    edit(&mut tags);
    if let Some(k) = tags.keys().find(|k| k.starts_with(OWN_PREFIX)) {
        return Err(invalid(format!(
            "tag {k:?}: tags starting with {OWN_PREFIX:?} are Ensemble's own"
        )));
    }
    let mut next = own;
    next.extend(tags.clone());
    node.set_tags(next).await.map_err(|e| {
        let status = match e {
            Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::node(status, e)
    })?;
    let saved = agent.tags_file.as_deref();
    if let Some(path) = saved {
        crate::tags_file::write(path, &tags).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::TagsNotSaved,
                format!("the node carries the new tags, but they were not saved: {e:#}"),
            )
        })?;
    }
    Ok(Json(TagsView {
        tags,
        tags_file: saved.map(|p| p.display().to_string()),
    }))
}
