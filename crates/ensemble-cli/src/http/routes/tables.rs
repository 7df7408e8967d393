//! The agent's replicated tables (string keys and values): `GET /v1/tables`,
//! `GET /v1/tables/{table}`, `GET /v1/tables/{table}/records` and
//! `GET|PUT|DELETE /v1/tables/{table}/records/{key}`. A put creates a table the agent declared
//! (`--table`), or any with `--allow-create-tables`, up to `max_tables`. Ensemble's own tables
//! (`ensemble.*`) are not served.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use ensemble::{Error, Node, Table, TableError};

use crate::http::error::{ApiError, Code};
use crate::http::extract::{query_params, Json, Path};
use crate::http::state::{AgentTables, AppState, Refused};
use crate::views::{ErrorView, InfoView, LastJoinView, OkView, PutBody, PutView, RecordView};

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

/// The error answers of the routes reading a table (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum ReadErrors {
    /// invalid_table_name: empty, over 128 bytes or with control characters.
    #[response(status = 400)]
    BadName(ErrorView),
    /// reserved_table: a table of Ensemble's own (ensemble.*).
    #[response(status = 403)]
    Reserved(ErrorView),
    /// table_not_hosted (or key_not_found, reading a key).
    #[response(status = 404)]
    NotFound(ErrorView),
    /// node_stopped.
    #[response(status = 503)]
    Stopped(ErrorView),
}

/// The error answers of the routes writing a table (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum WriteErrors {
    /// invalid_table_name: empty, over 128 bytes or with control characters; invalid_argument:
    /// a put with both `if_absent` and `serial`; or another refusal of the table.
    #[response(status = 400)]
    BadName(ErrorView),
    /// reserved_table: a table of Ensemble's own (ensemble.*); table_creation_off,
    /// too_many_tables: a put to a table the agent does not host, that it may not create.
    #[response(status = 403)]
    Refused(ErrorView),
    /// table_not_hosted (a delete).
    #[response(status = 404)]
    NotHosted(ErrorView),
    /// record_too_large: key and value over 256 KiB.
    #[response(status = 413)]
    TooLarge(ErrorView),
    /// node_stopped.
    #[response(status = 503)]
    Stopped(ErrorView),
    /// replica_timeout: some replicas did not answer in time; leader_unavailable: a put
    /// with `if_absent` or `serial` found no leader in time.
    #[response(status = 504)]
    Timeout(ErrorView),
    /// table_full: the table's limit would be exceeded.
    #[response(status = 507)]
    Full(ErrorView),
}

/// A table operation's error: 413 too large, 507 full, 504 replicas late, 503 stopped, 403
/// reserved name, else 400.
fn failed(e: Error) -> ApiError {
    let status = match &e {
        Error::Table(TableError::TooLarge { .. }) | Error::TooLarge { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        Error::ReservedName(_) => StatusCode::FORBIDDEN,
        Error::Table(TableError::Full { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        Error::Table(TableError::Timeout(_) | TableError::LeaderUnavailable { .. }) => {
            StatusCode::GATEWAY_TIMEOUT
        }
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
#[utoipa::path(get, path = "/v1/tables", summary = "The tables this agent hosts", operation_id = "list_tables", tag = "tables",
    responses(
        (status = 200, description = "The names of the tables the agent hosts", body = Vec<String>),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn list(State(node): State<Node>) -> Answer<Vec<String>> {
    let mut names = node.tables().await.map_err(failed)?;
    names.retain(|n| !n.starts_with(ensemble::RESERVED_TABLE_PREFIX));
    Ok(Json(names))
}

/// A table's replicas, leader, size and joins.
#[utoipa::path(get, path = "/v1/tables/{table}", summary = "A table's replicas, leader, size and joins", operation_id = "table_info", tag = "tables", params(TablePath),
    responses((status = 200, description = "The table", body = InfoView), ReadErrors))]
async fn info(State(t): State<AgentTables>, Path(name): Path<String>) -> Answer<InfoView> {
    let i = hosted(&t, &name).await?.info().await.map_err(failed)?;
    Ok(Json(InfoView {
        name: i.name,
        members: i.members,
        leader: i.leader,
        size: i.size,
        memory: i.memory,
        join_id: format!("{:016x}", i.join_id),
        digest: format!("{:016x}", i.digest),
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

/// The records of a table in key order, a page at a time: at most `limit` (default
/// [`PAGE_DEFAULT`], at most [`PAGE_MAX`]) whose keys come after `after`.
#[utoipa::path(get, path = "/v1/tables/{table}/records", summary = "A table's records, a page at a time", operation_id = "list_records", tag = "tables", params(TablePath, PageQuery),
    responses((status = 200, description = "At most `limit` records in key order, after `after`: fewer than `limit` when they are the last", body = Vec<RecordView>), ReadErrors))]
async fn dump(
    State(t): State<AgentTables>,
    Path(name): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Answer<Vec<RecordView>> {
    let (after, limit) = page(query)?;
    let mut records = hosted(&t, &name).await?.snapshot().map_err(failed)?;
    if let Some(after) = &after {
        records.retain(|(k, _)| k > after);
    }
    // The page's records, then only those in order.
    if records.len() > limit {
        records.select_nth_unstable_by(limit, |a, b| a.0.cmp(&b.0));
        records.truncate(limit);
    }
    records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(
        records
            .into_iter()
            .map(|(key, value)| RecordView { key, value })
            .collect(),
    ))
}

/// The records a page holds when no `limit` is given.
pub const PAGE_DEFAULT: usize = 100;
/// The most records a page may hold.
pub const PAGE_MAX: usize = 1000;

/// `after` and `limit` of a page of records (400 `invalid_argument` for anything else).
fn page(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<(Option<String>, usize), ApiError> {
    let route = "/v1/tables/{table}/records";
    let mut params = query_params(query, route, &["after", "limit"], Code::InvalidArgument)?;
    let limit = match params.get("limit") {
        None => PAGE_DEFAULT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| {
                let m = format!("limit: a number from 1 to {PAGE_MAX}");
                ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, m)
            })?,
    };
    Ok((params.remove("after"), limit))
}

/// The query of a page of records (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PageQuery {
    /// Only the keys after this one (the last key of the previous page).
    after: Option<String>,
    /// At most this many records: 1 to 1000, default 100.
    limit: Option<usize>,
}

/// One record.
#[utoipa::path(get, path = "/v1/tables/{table}/records/{key}", summary = "One record", operation_id = "get_record", tag = "tables", params(RecordPath),
    responses((status = 200, description = "The record", body = RecordView), ReadErrors))]
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

/// Writes a record (creating a declared table, or any with --allow-create-tables): a plain
/// insert, an insert if absent (`if_absent`), or an insert through the leader (`serial`).
#[utoipa::path(put, path = "/v1/tables/{table}/records/{key}", summary = "Write a record", operation_id = "put_record", tag = "tables", params(RecordPath),
    request_body = PutBody,
    responses((status = 200, description = "Written (with `if_absent`: whether it was, and the value the key holds)", body = PutView), WriteErrors))]
async fn put(
    State(t): State<AgentTables>,
    Path((name, key)): Path<(String, String)>,
    Json(body): Json<PutBody>,
) -> Answer<PutView> {
    if body.if_absent && body.serial {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            "a put is either if_absent or serial, not both",
        ));
    }
    let table = for_put(&t, &name).await?;
    let done = PutView {
        ok: true,
        inserted: None,
        value: None,
    };
    if body.if_absent {
        let (held, inserted) = table
            .insert_new_or_lookup(key, body.value)
            .await
            .map_err(failed)?;
        return Ok(Json(PutView {
            inserted: Some(inserted),
            value: Some(held),
            ..done
        }));
    }
    if body.serial {
        table.insert_serial(key, body.value).await.map_err(failed)?;
    } else {
        table.insert(key, body.value).await.map_err(failed)?;
    }
    Ok(Json(done))
}

/// Deletes a record (no error if there is none).
#[utoipa::path(delete, path = "/v1/tables/{table}/records/{key}", summary = "Delete a record", operation_id = "delete_record", tag = "tables", params(RecordPath),
    responses((status = 200, description = "Deleted", body = OkView), WriteErrors))]
async fn delete(
    State(t): State<AgentTables>,
    Path((name, key)): Path<(String, String)>,
) -> Answer<OkView> {
    hosted(&t, &name)
        .await?
        .delete(&key)
        .await
        .map_err(failed)?;
    Ok(Json(OkView::OK))
}

/// The path parameters of a table (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct TablePath {
    /// The table: 1 to 128 bytes, no control characters, not `ensemble.*`.
    table: String,
}

/// The path parameters of a record (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct RecordPath {
    /// The table: 1 to 128 bytes, no control characters, not `ensemble.*`.
    table: String,
    /// The record's key.
    key: String,
}
