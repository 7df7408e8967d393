//! The agent's replicated tables (string keys and values): `GET /v1/tables`,
//! `GET /v1/tables/{table}`, `GET /v1/tables/{table}/records` and
//! `GET|PUT|DELETE /v1/tables/{table}/records/{key}`. A put creates a table the agent declared
//! (`--table`), or any with `--allow-create-tables`, up to `max_tables`. Ensemble's own tables
//! (`ensemble.*`) are not served.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use ensemble::{Error, Node, Table, TableError};

use crate::http::error::{ApiError, Code};
use crate::http::extract::{Json, Path};
use crate::http::state::{AgentTables, AppState, Refused};
use crate::views::{InfoView, LastJoinView, PutBody, RecordView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tables", get(list))
        .route("/v1/tables/{table}", get(info))
        .route("/v1/tables/{table}/records", get(dump))
        .route(
            "/v1/tables/{table}/records/{key}",
            get(read).put(put).delete(delete),
        )
}

type Answer<T> = Result<Json<T>, ApiError>;

/// A table operation's error: 413 too large, 507 full, 504 replicas late, 503 stopped, 403
/// reserved name, else 400.
fn failed(e: Error) -> ApiError {
    let status = match &e {
        Error::Table(TableError::TooLarge { .. }) | Error::TooLarge { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        Error::ReservedName(_) => StatusCode::FORBIDDEN,
        Error::Table(TableError::Full { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        Error::Table(TableError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
        Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::node(status, e)
}

/// 403 for Ensemble's own tables, 400 for a name no table can have.
fn check_name(name: &str) -> Result<(), ApiError> {
    match ensemble::check_table_name(name) {
        Ok(()) => Ok(()),
        Err(e @ Error::ReservedName(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::ReservedTable,
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidTableName,
            e.to_string(),
        )),
    }
}

/// The table `name` if this agent hosts it, else 404.
async fn hosted(t: &AgentTables, name: &str) -> Result<Table<String, String>, ApiError> {
    check_name(name)?;
    match t.hosted(name).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Code::TableNotHosted,
            format!("this agent hosts no table {name:?}"),
        )),
        Err(e) => Err(failed(e)),
    }
}

/// The table `name`, created if the agent declared it or allows creation (403 otherwise).
async fn for_put(t: &AgentTables, name: &str) -> Result<Table<String, String>, ApiError> {
    check_name(name)?;
    match t.get_or_create(name).await {
        Ok(t) => Ok(t),
        Err(Refused::CreationOff) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::TableCreationOff,
            format!(
                "this agent hosts no table {name:?} and creates none on demand: declare it \
                 (--table {name}) or start the agent with --allow-create-tables"
            ),
        )),
        Err(Refused::TooMany(max)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::TooManyTables,
            format!(
                "this agent hosts {max} tables already (max_tables = {max}); \
                 table {name:?} was not created"
            ),
        )),
        Err(Refused::Node(e)) => Err(failed(e)),
    }
}

/// The agent's tables, without Ensemble's own (`ensemble.*`, such as the tracker's).
async fn list(State(node): State<Node>) -> Answer<Vec<String>> {
    let mut names = node.tables().await.map_err(failed)?;
    names.retain(|n| !n.starts_with(ensemble::RESERVED_TABLE_PREFIX));
    Ok(Json(names))
}

async fn info(State(t): State<AgentTables>, Path(name): Path<String>) -> Answer<InfoView> {
    let i = hosted(&t, &name).await?.info().await.map_err(failed)?;
    Ok(Json(InfoView {
        name: i.name,
        members: i.members,
        leader: i.leader,
        size: i.size,
        memory: i.memory,
        join_id: format!("{:016x}", i.join_id),
        paused: i.paused,
        down_history: i.down_history.into_iter().map(|(n, _)| n).collect(),
        joins: i.joins.joins,
        conflicts_resolved: i.joins.conflicts_resolved,
        last_join: i.joins.last.map(|(with, at, took)| LastJoinView {
            with,
            ago_ms: at.elapsed().as_millis() as u64,
            took_ms: took.as_millis() as u64,
        }),
    }))
}

async fn dump(State(t): State<AgentTables>, Path(name): Path<String>) -> Answer<Vec<RecordView>> {
    let records = hosted(&t, &name).await?.snapshot().map_err(failed)?;
    Ok(Json(
        records
            .into_iter()
            .map(|(key, value)| RecordView { key, value })
            .collect(),
    ))
}

async fn read(
    State(t): State<AgentTables>,
    Path((name, key)): Path<(String, String)>,
) -> Answer<RecordView> {
    match hosted(&t, &name).await?.get(&key).map_err(failed)? {
        Some(value) => Ok(Json(RecordView { key, value })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Code::KeyNotFound,
            format!("no key {key:?} in table {name:?}"),
        )),
    }
}

async fn put(
    State(t): State<AgentTables>,
    Path((name, key)): Path<(String, String)>,
    Json(body): Json<PutBody>,
) -> Answer<serde_json::Value> {
    let table = for_put(&t, &name).await?;
    table.insert(key, body.value).await.map_err(failed)?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn delete(
    State(t): State<AgentTables>,
    Path((name, key)): Path<(String, String)>,
) -> Answer<serde_json::Value> {
    hosted(&t, &name)
        .await?
        .delete(&key)
        .await
        .map_err(failed)?;
    Ok(Json(serde_json::json!({ "ok": true })))
}
