//! Fault injection: `ensemble partition inject|resolve|list` and the `/v1/partitions` routes.
//!
//! An injected partition drops all traffic between this agent and the named members at this
//! agent's transport (both directions, new connections refused) until it is resolved. The
//! routes that change partitions answer 403 unless the agent was started with
//! `--allow-fault-injection`; listing always works, and `/v1/health` shows them too.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use clap::{Args, Subcommand};
use ensemble::{Node, PartitionRef};

use crate::views::{Inject, PartitionView, DEFAULT_HTTP};

/// The routes; `allow` is `--allow-fault-injection`.
pub fn routes<S>(allow: bool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Node: FromRef<S>,
{
    Router::new()
        .route(
            "/v1/partitions",
            get(|State(node): State<Node>| async move { Json(PartitionView::all(&node)) }).post(
                move |State(node): State<Node>, Json(body): Json<Inject>| async move {
                    if !allow {
                        return forbidden();
                    }
                    if body.nodes.is_empty() {
                        return crate::api::error(
                            StatusCode::BAD_REQUEST,
                            "name at least one node".into(),
                        );
                    }
                    match node.inject_partition(body.nodes).await {
                        Ok(r) => Json(serde_json::json!({ "ref": r.0 })).into_response(),
                        Err(e) => crate::api::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                    }
                },
            ),
        )
        .route(
            "/v1/partitions/{reference}",
            delete(
                move |State(node): State<Node>, Path(reference): Path<u64>| async move {
                    if !allow {
                        return forbidden();
                    }
                    match node.resolve_partition(PartitionRef(reference)).await {
                        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
                        Err(e) => crate::api::error(StatusCode::NOT_FOUND, e.to_string()),
                    }
                },
            ),
        )
}

fn forbidden() -> Response {
    crate::api::error(
        StatusCode::FORBIDDEN,
        "fault injection is off on this agent; start it with --allow-fault-injection \
         (config key allow_fault_injection = true)"
            .into(),
    )
}

#[derive(Args, Debug)]
pub struct PartitionArgs {
    /// HTTP API of the agent to act on.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_HTTP, global = true)]
    http: String,
    #[command(subcommand)]
    what: PartitionWhat,
}

#[derive(Subcommand, Debug)]
enum PartitionWhat {
    /// Drop all traffic between the agent and these members; prints the reference.
    Inject {
        /// Member names.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// End an injected partition.
    Resolve {
        /// The reference `inject` printed.
        reference: u64,
    },
    /// List the partitions in force.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// Sends a request; the agent's `{"error": ...}` becomes the error text.
fn call(
    req: ureq::Request,
    body: Option<serde_json::Value>,
    http: &str,
) -> Result<serde_json::Value> {
    let req = req.timeout(Duration::from_secs(5));
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => r.into_json().context("bad answer from the agent"),
        Err(ureq::Error::Status(_, r)) => {
            let v: serde_json::Value = r.into_json().unwrap_or_default();
            bail!("{}", v["error"].as_str().unwrap_or("the agent refused"))
        }
        Err(e) => Err(e).with_context(|| {
            format!("cannot reach the agent at {http} (is `ensemble agent` running? set --http)")
        }),
    }
}

/// `ensemble partition ...`.
pub fn run(args: PartitionArgs) -> Result<()> {
    let base = format!("http://{}/v1/partitions", args.http);
    match args.what {
        PartitionWhat::Inject { nodes } => {
            let body = serde_json::json!({ "nodes": nodes });
            let v = call(ureq::post(&base), Some(body), &args.http)?;
            println!("{}", v["ref"]);
        }
        PartitionWhat::Resolve { reference } => {
            call(
                ureq::delete(&format!("{base}/{reference}")),
                None,
                &args.http,
            )?;
        }
        PartitionWhat::List { json } => {
            let v = call(ureq::get(&base), None, &args.http)?;
            let list: Vec<PartitionView> = serde_json::from_value(v)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for p in list {
                    println!("{}  {}", p.reference, p.nodes.join(" "));
                }
            }
        }
    }
    Ok(())
}
