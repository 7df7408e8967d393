//! The `ensemble broadcast` and `ensemble events` commands.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::views::{EventView, SendEvent, DEFAULT_HTTP};

#[derive(Args, Debug)]
pub struct BroadcastArgs {
    /// HTTP API of the agent that sends the event.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_HTTP)]
    http: String,
    /// Event name.
    name: String,
    /// Event payload (text).
    #[arg(default_value = "")]
    payload: String,
}

/// `ensemble broadcast NAME PAYLOAD`: sends a user event through the cluster.
pub fn broadcast(args: BroadcastArgs) -> Result<()> {
    let url = format!("http://{}/v1/events", args.http);
    let body = SendEvent {
        name: args.name,
        payload: args.payload,
    };
    match ureq::post(&url)
        .timeout(Duration::from_secs(5))
        .send_json(&body)
    {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(_, resp)) => {
            let text = resp.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            bail!("the agent refused the event: {msg}")
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot reach the agent at {} (is `ensemble agent` running? set --http)",
                args.http
            )
        }),
    }
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// HTTP API of the agent to follow.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_HTTP)]
    http: String,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

/// `ensemble events`: prints events as the agent delivers them, until interrupted.
pub fn events(args: EventsArgs) -> Result<()> {
    let url = format!("http://{}/v1/events", args.http);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .build();
    let resp = agent.get(&url).call().with_context(|| {
        format!(
            "cannot reach the agent at {} (is `ensemble agent` running? set --http)",
            args.http
        )
    })?;
    let reader = std::io::BufReader::new(resp.into_reader());
    for line in reader.lines() {
        let line = line
            .with_context(|| format!("the event stream from the agent at {} ended", args.http))?;
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
