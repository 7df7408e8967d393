//! `ensemble table list|put|get|delete|dump|info`: the agent's replicated tables (string keys
//! and values) through `/v1/tables`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::views::{InfoView, DEFAULT_HTTP};

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
