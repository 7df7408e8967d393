//! Events as the agent shows them (membership changes and Serf-style user events), the
//! `ensemble broadcast` and `ensemble events` commands, and the stream behind them.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ensemble::{EventKind, MemberEvent, Node, UserEvent};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::api::MemberView;
use crate::settings::DEFAULT_HTTP;

/// One event, as `GET /v1/events` streams it (one JSON object per line) and as event
/// handlers get it on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventView {
    /// A user event.
    User {
        name: String,
        /// The payload as text (invalid UTF-8 replaced; see `payload_hex`).
        payload: String,
        /// The payload in hex, when it is not valid UTF-8.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload_hex: Option<String>,
        origin: String,
        seq: u64,
        ltime: u64,
    },
    /// A membership change of another member.
    Member {
        /// up, down, left or updated.
        kind: String,
        member: MemberView,
    },
}

impl EventView {
    /// The name event handlers see in `ENSEMBLE_EVENT`.
    pub fn kind(&self) -> String {
        match self {
            EventView::User { .. } => "user".into(),
            EventView::Member { kind, .. } => format!("member-{kind}"),
        }
    }
}

impl From<&UserEvent> for EventView {
    fn from(e: &UserEvent) -> Self {
        let text = std::str::from_utf8(&e.payload);
        EventView::User {
            name: e.name.clone(),
            payload: String::from_utf8_lossy(&e.payload).into_owned(),
            payload_hex: text.is_err().then(|| hex::encode(&e.payload)),
            origin: e.origin.clone(),
            seq: e.seq,
            ltime: e.ltime,
        }
    }
}

impl From<&MemberEvent> for EventView {
    fn from(e: &MemberEvent) -> Self {
        let kind = match e.kind {
            EventKind::Up => "up",
            EventKind::Down => "down",
            EventKind::Left => "left",
            EventKind::Updated => "updated",
        };
        EventView::Member {
            kind: kind.into(),
            member: MemberView::from(&*e.member),
        }
    }
}

/// Membership and user events of `node`, merged, from now on.
pub fn stream(node: &Node) -> impl Stream<Item = EventView> + Send + Unpin + 'static {
    let members = node.events().map(|e| EventView::from(&e));
    let users = node.user_events().map(|e| EventView::from(&e));
    futures::stream::select(members, users)
}

/// `POST /v1/events` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendEvent {
    pub name: String,
    #[serde(default)]
    pub payload: String,
}

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
