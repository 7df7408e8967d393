//! Fault injection: `ensemble partition inject|resolve|list` (see `http/routes/partitions.rs`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::views::{PartitionView, DEFAULT_HTTP};

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
