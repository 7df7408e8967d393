//! `ensemble leave` (the agent leaves the cluster gracefully, then exits: `POST /v1/leave`,
//! waiting until its API is gone) and `ensemble force-leave NODE` (every member marks NODE
//! left: `POST /v1/members/{node}/force-leave`), like `serf leave` and `serf force-leave`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use serde::de::IgnoredAny;

use crate::client::AgentError;
use crate::views::LeaveView;

#[derive(Args, Debug)]
pub struct LeaveArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print the JSON answer instead of a summary.
    #[arg(long)]
    json: bool,
    /// How long to wait for the agent to finish leaving and exit, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    wait: u64,
}

pub fn leave(args: LeaveArgs) -> Result<()> {
    let client = args.api.client()?;
    let answer: LeaveView = client.post("/v1/leave", &serde_json::json!({}))?;
    if !args.json {
        println!("{} is leaving the cluster...", answer.node);
    }
    // The agent answers before it leaves; it is gone once its API no longer answers.
    let start = Instant::now();
    let limit = Duration::from_secs(args.wait);
    let client = client.timeout(Duration::from_secs(2));
    loop {
        match client.get::<IgnoredAny>("/v1/self") {
            Err(e) if !e.is::<AgentError>() => break,
            _ if start.elapsed() >= limit => {
                bail!(
                    "{} still answers after {} s; it may still be handing over its singletons",
                    answer.node,
                    args.wait
                )
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    if args.json {
        super::print_json(&answer)?;
    } else {
        println!("Graceful leave complete");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ForceLeaveArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print the JSON answer instead of a summary.
    #[arg(long)]
    json: bool,
    /// The member to mark left (a failed node that will not come back).
    node: String,
}

pub fn force_leave(args: ForceLeaveArgs) -> Result<()> {
    let path = format!("/v1/members/{}/force-leave", super::encode(&args.node));
    let answer: LeaveView = args.api.client()?.post(&path, &serde_json::json!({}))?;
    if args.json {
        super::print_json(&answer)?;
    } else {
        println!("{} is marked left on every member", answer.node);
    }
    Ok(())
}
