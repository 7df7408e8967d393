//! `ensemble discovery`: an agent's discovery state (backend, phase, nodes, last result),
//! from `GET /v1/discovery`.

use anyhow::Result;
use clap::Args;
use ensemble::discovery::SystemInfo;

/// `ensemble discovery`.
#[derive(Args, Debug)]
pub struct DiscoveryArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print system_info as JSON.
    #[arg(long)]
    json: bool,
    /// Ask the agent to call its discovery backend now (POST /v1/discovery/get_nodes), then
    /// print system_info.
    #[arg(long)]
    get_nodes: bool,
}

pub fn run(args: DiscoveryArgs) -> Result<()> {
    let client = args.api.client()?;
    let info: SystemInfo = match args.get_nodes {
        true => client.post("/v1/discovery/get_nodes", &serde_json::json!({}))?,
        false => client.get("/v1/discovery")?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", describe(&info));
    }
    Ok(())
}

/// system_info for people.
pub fn describe(i: &SystemInfo) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<18}{v}\n"));
    line("backend", i.backend.clone());
    line("phase", format!("{:?}", i.phase).to_lowercase());
    line("ready", i.ready.to_string());
    let last = i
        .last_get_nodes_result
        .clone()
        .unwrap_or("(none yet)".into());
    line("last get_nodes", last);
    line(
        "next retry",
        i.last_get_nodes_retry_kind
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default(),
    );
    line("get_nodes calls", i.get_nodes_count.to_string());
    if i.get_nodes_running {
        let queued = if i.should_retry_get_nodes {
            " (another queued)"
        } else {
            ""
        };
        line("get_nodes", format!("running{queued}"));
    }
    if let Some(n) = i.node_num {
        line("node number", n.to_string());
    }
    line("discovered", i.discovered_nodes.join(" "));
    line("connected", i.connected_nodes.join(" "));
    for (addr, why) in &i.unavailable_nodes {
        line("unavailable", format!("{addr}: {why}"));
    }
    line("tables", i.tables.join(" "));
    for (node, tables) in &i.join_results {
        for (table, result) in tables {
            line("join", format!("{table} with {node}: {result}"));
        }
    }
    if i.should_retry_join {
        line("join retries", "pending (after_error)".into());
    }
    out
}
