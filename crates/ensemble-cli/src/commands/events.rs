//! `ensemble broadcast` (a user event sent through an agent, `POST /v1/events`) and
//! `ensemble events` (an agent's membership and user events as they arrive, `GET /v1/events`).

use std::io::BufRead;

use anyhow::{Context, Result};
use clap::Args;

use crate::client::AgentError;
use crate::views::{EventView, MemberView, SendEvent};

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
    /// Print one JSON object per line (with `{"type": "heartbeat"}` every 5 s).
    #[arg(long)]
    json: bool,
    /// Only these event types, comma-separated, as Serf names them: member-join,
    /// member-leave, member-failed, member-update, member-reap, member (all four), user,
    /// user:NAME, * [default: every event].
    #[arg(long, value_name = "TYPES")]
    types: Option<String>,
    /// First print every current member (`{"type": "snapshot", "member": ...}`).
    #[arg(long)]
    snapshot: bool,
}

/// `ensemble events`: prints events as the agent delivers them, until interrupted.
pub fn events(args: EventsArgs) -> Result<()> {
    let mut query = Vec::new();
    if let Some(t) = &args.types {
        query.push(format!("types={}", super::encode(t)));
    }
    if args.snapshot {
        query.push("snapshot=true".to_owned());
    }
    let path = match query.is_empty() {
        true => "/v1/events".to_owned(),
        false => format!("/v1/events?{}", query.join("&")),
    };
    let reader = args.api.client()?.lines(&path)?;
    for line in reader.lines() {
        let line = line.with_context(|| {
            format!("the event stream from the agent at {} ended", args.api.http)
        })?;
        if line.is_empty() {
            continue;
        }
        if args.json {
            println!("{line}");
            continue;
        }
        let bad = || format!("bad event from the agent: {line}");
        let value: serde_json::Value = serde_json::from_str(&line).with_context(bad)?;
        match value["type"].as_str() {
            Some("heartbeat") => {}
            Some("snapshot") => {
                let m: MemberView =
                    serde_json::from_value(value["member"].clone()).with_context(bad)?;
                println!("member {} is {} ({}) [snapshot]", m.name, m.status, m.addr);
            }
            _ => {
                let e: EventView = serde_json::from_value(value).with_context(bad)?;
                println!("{}", readable(&e));
            }
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
        EventView::Member {
            kind,
            member,
            detection_ms,
        } => {
            let detected =
                detection_ms.map_or(String::new(), |ms| format!(", detected in {ms} ms"));
            format!(
                "member {} is {kind} ({}{detected})",
                member.name, member.addr
            )
        }
    }
}
