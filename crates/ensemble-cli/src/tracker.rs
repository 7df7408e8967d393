//! The node tracker from the agent: `ensemble tracker` and `GET /v1/tracker`.

use anyhow::Result;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clap::Args;
use ensemble::Node;

use crate::views::{RowView, TrackerView, DEFAULT_HTTP};

pub async fn route(State(node): State<Node>) -> Response {
    let view = async {
        let t = node.tracker().await?;
        let nodes = t
            .fetch_all()?
            .into_iter()
            .map(|r| RowView {
                node: r.node,
                status: r.status,
                last_change: r.last_change_ms,
                incarnation: r.incarnation,
            })
            .collect();
        Ok::<_, ensemble::Error>(TrackerView {
            mode: t.get_mode(),
            nodes,
        })
    };
    match view.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => crate::api::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Args, Debug)]
pub struct TrackerArgs {
    /// HTTP API of the agent to ask.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_HTTP)]
    http: String,
    /// Print the JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TrackerArgs) -> Result<()> {
    let v: TrackerView = crate::client::get(&args.http, "/v1/tracker")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    println!(
        "mode: {}",
        serde_json::to_value(v.mode)?.as_str().unwrap_or("?")
    );
    println!("{:<24} {:<8} {:>14}", "NODE", "STATUS", "LAST CHANGE");
    for r in v.nodes {
        let status = serde_json::to_value(r.status)?;
        let ago = now.saturating_sub(r.last_change) as f64 / 1000.0;
        println!(
            "{:<24} {:<8} {:>12.1}s ago",
            r.node,
            status.as_str().unwrap_or("?"),
            ago
        );
    }
    Ok(())
}
