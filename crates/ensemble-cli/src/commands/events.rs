//! `ensemble broadcast` (a user event sent through an agent, `POST /v1/events`) and
//! `ensemble events` (an agent's membership and user events as they arrive, `GET /v1/events`).

use std::io::BufRead;

use anyhow::{Context, Result};
use clap::Args;

use crate::client::AgentError;
use crate::views::{EventView, SendEvent};

#[derive(Args, Debug)]
pub struct BroadcastArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print the JSON answer (`{"ok": true}`).
    #[arg(long)]
    json: bool,
    /// Event name.
    name: String,
    /// Event payload (text).
    #[arg(default_value = "")]
    payload: String,
}

/// `ensemble broadcast NAME PAYLOAD`: sends a user event through the cluster.
pub fn broadcast(args: BroadcastArgs) -> Result<()> {
    let body = SendEvent {
        name: args.name,
        payload: args.payload,
    };
    match args
        .api
        .client()?
        .post::<serde_json::Value>("/v1/events", &body)
    {
        Ok(answer) if args.json => super::print_json(&answer),
        Ok(_) => Ok(()),
        Err(e) if e.is::<AgentError>() => Err(e.context("the agent refused the event")),
        Err(e) => Err(e),
    }
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

/// `ensemble events`: prints events as the agent delivers them, until interrupted.
pub fn events(args: EventsArgs) -> Result<()> {
    let reader = args.api.client()?.lines("/v1/events")?;
    for line in reader.lines() {
        let line = line.with_context(|| {
            format!("the event stream from the agent at {} ended", args.api.http)
        })?;
        if line.is_empty() {
            continue;
        }
        if args.json {
            println!("{line}");
        } else {
            let e: EventView = serde_json::from_str(&line)
                .with_context(|| format!("bad event from the agent: {line}"))?;
            println!("{}", readable(&e));
        }
    }
    Ok(())
}

fn readable(e: &EventView) -> String {
    match e {
        EventView::User {
            name,
            payload,
            origin,
            seq,
            ..
        } => format!("user event {name} from {origin} (#{seq}): {payload}"),
        EventView::Member { kind, member } => {
            format!("member {} is {kind} ({})", member.name, member.addr)
        }
    }
}
