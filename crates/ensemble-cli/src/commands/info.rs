//! `ensemble info`: the agent at a glance (`GET /v1/info`), like `serf info`.

use anyhow::Result;
use clap::Args;

use crate::views::AgentInfoView;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print the JSON answer instead of sections.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let i: AgentInfoView = args.api.client()?.get("/v1/info")?;
    if args.json {
        return super::print_json(&i);
    }
    let members: Vec<String> = i.members.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("agent:");
    println!("  name = {}", i.name);
    println!("  version = {}", i.version);
    println!(
        "  build = {} {} {}",
        i.build.version, i.build.profile, i.build.target
    );
    println!(
        "  protocol = {} (accepts {} to {})",
        i.protocol.version, i.protocol.min, i.protocol.version
    );
    println!("  uptime = {} s", i.uptime_s);
    println!("cluster:");
    println!("  members = {}", members.join(", "));
    println!("  connections = {}", i.connections);
    println!("  tables = {}", i.tables.join(", "));
    for s in &i.singletons {
        let leader = s.leader.as_deref().unwrap_or("none");
        println!(
            "  singleton {} = {:?}, leader {leader}, epoch {}",
            s.name, s.role, s.epoch
        );
    }
    println!("discovery:");
    println!("  backend = {}", i.discovery.backend);
    println!("  phase = {}", i.discovery.phase);
    println!("  ready = {}", i.discovery.ready);
    println!("settings:");
    let settings = serde_json::to_value(&i.settings)?;
    if let Some(map) = settings.as_object() {
        for (k, v) in map {
            println!("  {k} = {v}");
        }
    }
    Ok(())
}
