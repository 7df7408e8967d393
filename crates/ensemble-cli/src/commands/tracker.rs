//! `ensemble tracker`: the node tracker of an agent, through `GET /v1/tracker`.

use anyhow::Result;
use clap::Args;

use crate::views::TrackerView;

#[derive(Args, Debug)]
pub struct TrackerArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print the JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TrackerArgs) -> Result<()> {
    let v: TrackerView = args.api.client()?.get("/v1/tracker")?;
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
