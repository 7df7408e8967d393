//! `ensemble join ADDR...`: the agent joins the members at these addresses
//! (`POST /v1/join`), like `serf join`; fails if it joined through none of them.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use crate::views::{JoinBody, JoinView, MAX_JOIN_ADDRS};

#[derive(Args, Debug)]
pub struct JoinArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print the JSON answer instead of a summary.
    #[arg(long)]
    json: bool,
    /// HOST:PORT of a member of the cluster to join (its cluster address, not its HTTP API);
    /// at most 64.
    #[arg(value_name = "ADDR", required = true, num_args = 1..=MAX_JOIN_ADDRS)]
    addrs: Vec<String>,
}

pub fn run(args: JoinArgs) -> Result<()> {
    // Each join waits up to 10 s for its handshake; all run at once.
    let client = args.api.client()?.timeout(Duration::from_secs(30));
    let answer: JoinView = client.post("/v1/join", &JoinBody { addrs: args.addrs })?;
    if args.json {
        super::print_json(&answer)?;
    } else {
        for r in &answer.results {
            match (&r.node, &r.error) {
                (Some(node), _) => println!("{}: joined {node}", r.addr),
                (None, Some(why)) => println!("{}: failed: {why}", r.addr),
                (None, None) => println!("{}: failed", r.addr),
            }
        }
        println!(
            "Successfully joined the cluster through {} of {} addresses",
            answer.joined,
            answer.results.len()
        );
    }
    if answer.joined == 0 {
        bail!("joined through none of the addresses");
    }
    Ok(())
}
