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
}

pub fn run(args: DiscoveryArgs) -> Result<()> {
    let info: SystemInfo = args.api.client()?.get("/v1/discovery")?;
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
    if let Some(n) = i.node_num {
        line("node number", n.to_string());
    }
    line("discovered", i.discovered_nodes.join(" "));
    line("connected", i.connected_nodes.join(" "));
    for (addr, why) in &i.unavailable_nodes {
        line("unavailable", format!("{addr}: {why}"));
    }
    line("tables", i.tables.join(" "));
    out
}
