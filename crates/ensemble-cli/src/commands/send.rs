//! `ensemble send NODE NAME PAYLOAD`: a named message through an agent (`POST /v1/send`).

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::views::SendBody;

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Wait until the handler acknowledged the message (retransmitting until then).
    #[arg(long)]
    ack: bool,
    /// How long to wait for the acknowledgement, in ms.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Print the JSON answer (`{"ok": true}`).
    #[arg(long)]
    json: bool,
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
pub fn run(a: SendArgs) -> Result<()> {
    let body = SendBody {
        node: a.node,
        name: a.name,
        payload: a.payload,
        ack: a.ack,
        timeout_ms: a.timeout_ms,
        channel: a.channel,
    };
    let wait = Duration::from_millis(a.timeout_ms) + Duration::from_secs(5);
    let answer: serde_json::Value = a.api.client()?.timeout(wait).post("/v1/send", &body)?;
    if a.json {
        super::print_json(&answer)?;
    }
    Ok(())
}
