//! Named messaging from the agent: `ensemble send` and `ensemble agent --handler NAME=COMMAND`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ensemble::Node;
use futures::StreamExt;
use tracing::warn;

use crate::event_handler::run_command;
use crate::views::{SendBody, DEFAULT_HTTP};

#[derive(Args, Debug)]
pub struct SendArgs {
    /// HTTP API of the agent that sends.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_HTTP)]
    http: String,
    /// Wait until the handler acknowledged the message (retransmitting until then).
    #[arg(long)]
    ack: bool,
    /// How long to wait for the acknowledgement, in ms.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Channel to send on: `default`, or one the agent declared with `--channel`.
    #[arg(long, default_value = ensemble::DEFAULT_CHANNEL)]
    channel: String,
    /// Member to send to.
    node: String,
    /// Handler name registered there.
    name: String,
    /// Payload (text).
    #[arg(default_value = "")]
    payload: String,
}

/// `ensemble send NODE NAME PAYLOAD [--ack]`.
pub fn send(a: SendArgs) -> Result<()> {
    let url = format!("http://{}/v1/send", a.http);
    let body = SendBody {
        node: a.node,
        name: a.name,
        payload: a.payload,
        ack: a.ack,
        timeout_ms: a.timeout_ms,
        channel: a.channel,
    };
    let wait = Duration::from_millis(a.timeout_ms) + Duration::from_secs(5);
    match ureq::post(&url).timeout(wait).send_json(&body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(_, r)) => {
            let v: serde_json::Value = r.into_json().unwrap_or_default();
            bail!("{}", v["error"].as_str().unwrap_or("the agent refused"))
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot reach the agent at {} (is `ensemble agent` running? set --http)",
                a.http
            )
        }),
    }
}

/// Parses `NAME=COMMAND`.
pub fn parse_handler(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, c)) if !n.is_empty() && !c.is_empty() => Ok((n.to_owned(), c.to_owned())),
        _ => Err(format!("expected NAME=COMMAND, got {s:?}")),
    }
}

/// Registers each handler name and runs its command per message, in order, with the payload
/// on stdin and ENSEMBLE_FROM / ENSEMBLE_HANDLER in the environment.
pub async fn spawn_handlers(node: &Node, handlers: Vec<(String, String)>) -> Result<()> {
    for (name, cmd) in handlers {
        let mut mailbox = node
            .register(&name)
            .await
            .with_context(|| format!("cannot register handler {name:?} (--handler)"))?;
        tokio::spawn(async move {
            while let Some(e) = mailbox.next().await {
                let vars = vec![
                    ("ENSEMBLE_FROM", e.from.clone()),
                    ("ENSEMBLE_HANDLER", e.name.clone()),
                ];
                let what = format!("a message from {} to {}", e.from, e.name);
                run_command(&cmd, vars, &e.payload, &what).await;
            }
            warn!("handler {name:?} stopped: the node is gone");
        });
    }
    Ok(())
}
