//! The agent's replicated tables (string keys and values): `ensemble table ...` and the
//! `/v1/tables` routes. Tables are created on first write, or at start from `--table` /
//! `tables = [...]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::{Args, Subcommand};
use ensemble::{Error, Node, Table, TableError, TableOptions};
use tokio::sync::Mutex;

use crate::views::{InfoView, PutBody, RecordView, DEFAULT_HTTP};

/// The tables an agent hosts, opened once each.
#[derive(Clone)]
pub struct AgentTables {
    node: Node,
    open: Arc<Mutex<HashMap<String, Table<String, String>>>>,
}

impl AgentTables {
    pub fn new(node: Node) -> Self {
        AgentTables {
            node,
            open: Arc::default(),
        }
    }

    /// The table `name`, created if `create` (else None when this agent does not host it).
    pub async fn get(
        &self,
        name: &str,
        create: bool,
    ) -> Result<Option<Table<String, String>>, Error> {
        let mut open = self.open.lock().await;
        if let Some(t) = open.get(name) {
            return Ok(Some(t.clone()));
        }
        if !create && !self.node.tables().await?.iter().any(|t| t == name) {
            return Ok(None);
        }
        let t = self.node.table(name, TableOptions::set()).await?;
        open.insert(name.to_string(), t.clone());
        Ok(Some(t))
    }
}

pub fn routes() -> Router<crate::api::AppState> {
    Router::new()
        .route("/v1/tables", get(list))
        .route("/v1/tables/{table}", get(info))
        .route("/v1/tables/{table}/records", get(dump))
        .route(
            "/v1/tables/{table}/records/{key}",
            get(read).put(put).delete(delete),
        )
}

fn error(code: StatusCode, msg: impl ToString) -> Response {
    (code, Json(serde_json::json!({ "error": msg.to_string() }))).into_response()
}

fn failed(e: Error) -> Response {
    let code = match &e {
        Error::Table(TableError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Table(TableError::Full { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        Error::Table(TableError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
        Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    error(code, e)
}

async fn hosted(t: &AgentTables, name: &str) -> Result<Table<String, String>, Response> {
    match t.get(name, false).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(error(
            StatusCode::NOT_FOUND,
            format!("this agent hosts no table {name:?} (a put creates it)"),
        )),
        Err(e) => Err(failed(e)),
    }
}

/// The agent's tables, without Ensemble's own (`ensemble.*`, such as the tracker's).
async fn list(State(t): State<AgentTables>) -> Response {
    match t.node.tables().await {
        Ok(mut names) => {
            names.retain(|n| !n.starts_with("ensemble."));
            Json(names).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn info(State(t): State<AgentTables>, Path(name): Path<String>) -> Response {
    let table = match hosted(&t, &name).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match table.info().await {
        Ok(i) => Json(InfoView {
            name: i.name,
            members: i.members,
            leader: i.leader,
            size: i.size,
            memory: i.memory,
            join_id: format!("{:016x}", i.join_id),
            paused: i.paused,
            down_history: i.down_history.into_iter().map(|(n, _)| n).collect(),
        })
        .into_response(),
        Err(e) => failed(e),
    }
}

async fn dump(State(t): State<AgentTables>, Path(name): Path<String>) -> Response {
    let table = match hosted(&t, &name).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match table.snapshot() {
        Ok(records) => Json(
            records
                .into_iter()
                .map(|(key, value)| RecordView { key, value })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => failed(e),
    }
}

async fn read(State(t): State<AgentTables>, Path((name, key)): Path<(String, String)>) -> Response {
    let table = match hosted(&t, &name).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match table.get(&key) {
        Ok(Some(value)) => Json(RecordView { key, value }).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no key {key:?} in table {name:?}"),
        ),
        Err(e) => failed(e),
    }
}

async fn put(
    State(t): State<AgentTables>,
    Path((name, key)): Path<(String, String)>,
    Json(body): Json<PutBody>,
) -> Response {
    let table = match t.get(&name, true).await {
        Ok(Some(t)) => t,
        Ok(None) => unreachable!("created on demand"),
        Err(e) => return failed(e),
    };
    match table.insert(key, body.value).await {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(e) => failed(e),
    }
}

async fn delete(
    State(t): State<AgentTables>,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    let table = match hosted(&t, &name).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match table.delete(&key).await {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(e) => failed(e),
    }
}

// ---- the CLI ----

#[derive(Args, Debug)]
pub struct TableArgs {
    /// HTTP API of the agent to ask.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_HTTP, global = true)]
    http: String,
    #[command(subcommand)]
    command: TableCommand,
}

#[derive(Subcommand, Debug)]
enum TableCommand {
    /// The tables the agent hosts.
    List,
    /// Write KEY = VALUE (creates the table on first use); returns once every replica has it.
    Put {
        table: String,
        key: String,
        value: String,
    },
    /// Read a key from the agent's replica.
    Get { table: String, key: String },
    /// Delete a key everywhere.
    Delete { table: String, key: String },
    /// Print every record.
    Dump {
        table: String,
        #[arg(long)]
        json: bool,
    },
    /// Replicas, leader, size, memory, join id, down history.
    Info {
        table: String,
        #[arg(long)]
        json: bool,
    },
}

fn call(req: ureq::Request, body: Option<serde_json::Value>) -> Result<serde_json::Value> {
    let url = req.url().to_string();
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => r
            .into_json()
            .with_context(|| format!("bad answer from {url}")),
        Err(ureq::Error::Status(_, r)) => {
            let v: serde_json::Value = r.into_json().unwrap_or_default();
            bail!("{}", v["error"].as_str().unwrap_or("the agent refused"))
        }
        Err(e) => Err(e).context(
            "cannot reach the agent (is `ensemble agent` running? set --http)".to_string(),
        ),
    }
}

fn seg(s: &str) -> String {
    // Path segments: keep it readable, escape what URLs cannot carry.
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn run(args: TableArgs) -> Result<()> {
    let base = format!("http://{}/v1/tables", args.http);
    let timeout = Duration::from_secs(15);
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    match args.command {
        TableCommand::List => {
            let v = call(agent.get(&base), None)?;
            for t in v.as_array().into_iter().flatten() {
                println!("{}", t.as_str().unwrap_or_default());
            }
        }
        TableCommand::Put { table, key, value } => {
            let url = format!("{base}/{}/records/{}", seg(&table), seg(&key));
            call(agent.put(&url), Some(serde_json::json!({ "value": value })))?;
        }
        TableCommand::Get { table, key } => {
            let url = format!("{base}/{}/records/{}", seg(&table), seg(&key));
            let v = call(agent.get(&url), None)?;
            println!("{}", v["value"].as_str().unwrap_or_default());
        }
        TableCommand::Delete { table, key } => {
            let url = format!("{base}/{}/records/{}", seg(&table), seg(&key));
            call(agent.delete(&url), None)?;
        }
        TableCommand::Dump { table, json } => {
            let v = call(agent.get(&format!("{base}/{}/records", seg(&table))), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for r in v.as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}",
                        r["key"].as_str().unwrap_or_default(),
                        r["value"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        TableCommand::Info { table, json } => {
            let v = call(agent.get(&format!("{base}/{}", seg(&table))), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let i: InfoView = serde_json::from_value(v)?;
                println!("table:        {}", i.name);
                println!("members:      {}", i.members.join(", "));
                println!("leader:       {}", i.leader);
                println!("size:         {} records", i.size);
                println!("memory:       {} bytes", i.memory);
                println!("join id:      {}", i.join_id);
                println!("paused:       {}", i.paused);
                println!("down history: {}", i.down_history.join(", "));
            }
        }
    }
    Ok(())
}
