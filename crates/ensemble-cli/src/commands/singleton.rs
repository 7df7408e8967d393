//! `ensemble singleton list`: an agent's singletons, who leads each, at which epoch, since
//! when (`GET /v1/singletons`).

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct SingletonArgs {
    #[command(subcommand)]
    command: SingletonCommand,
}

#[derive(Subcommand, Debug)]
enum SingletonCommand {
    /// The singletons the agent runs: name, leader, epoch, since.
    List {
        #[command(flatten)]
        api: super::ApiArgs,
        /// Print JSON instead of a table, with every field: candidates, majority rule,
        /// created_at_ms, active_from_ms (leader only) and the handler's mod_state (for a
        /// --singleton command: its pid and epoch while it runs here).
        #[arg(long)]
        json: bool,
    },
}

/// One row of `GET /v1/singletons`, as the client reads it.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Row {
    name: String,
    role: String,
    leader: Option<String>,
    epoch: u64,
    since_ms: Option<u64>,
    #[serde(default)]
    created_at_ms: Option<u64>,
    #[serde(default)]
    active_from_ms: Option<u64>,
    #[serde(default)]
    mod_state: Option<serde_json::Value>,
    candidates: Vec<String>,
    majority_of: Option<usize>,
    #[serde(default)]
    mismatched: Vec<String>,
}

pub fn run(args: SingletonArgs) -> Result<()> {
    let SingletonCommand::List { api, json } = args.command;
    let rows: Vec<Row> = api.client()?.get("/v1/singletons")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    println!(
        "{:<20} {:<20} {:<10} {:>20} {:>12}",
        "NAME", "LEADER", "ROLE", "EPOCH", "SINCE"
    );
    for r in rows {
        let since = r.since_ms.map_or("-".to_string(), |s| {
            format!("{:.1}s ago", now.saturating_sub(s) as f64 / 1000.0)
        });
        println!(
            "{:<20} {:<20} {:<10} {:>20} {:>12}",
            r.name,
            r.leader.as_deref().unwrap_or("-"),
            r.role,
            r.epoch,
            since
        );
        for m in &r.mismatched {
            println!(
                "warning: {m} runs singleton {} with another majority rule (--singleton-majority); both sides ignore each other",
                r.name
            );
        }
    }
    Ok(())
}
