//! `ensemble monitor` (like `serf monitor`): an agent's log lines as they are written, until
//! interrupted (`GET /v1/monitor`).

use std::io::BufRead;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// The least severe lines shown, whatever the agent writes to its stderr.
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "info",
        value_parser = ["error", "warn", "info", "debug", "trace"]
    )]
    log_level: String,
    /// Print the agent's records as they come: one JSON object per line (timestamp, level,
    /// target, message, the event's fields), `{"dropped": N}` when this monitor fell behind
    /// and lost N lines, and `{"type": "heartbeat"}` every 5 s.
    #[arg(long)]
    json: bool,
}

/// `ensemble monitor`: prints the agent's log lines until interrupted.
pub fn run(args: MonitorArgs) -> Result<()> {
    let path = format!("/v1/monitor?level={}", args.log_level);
    let reader = args.api.client()?.lines(&path)?;
    for line in reader.lines() {
        let line = line
            .with_context(|| format!("the log stream from the agent at {} ended", args.api.http))?;
        if line.is_empty() {
            continue;
        }
        if args.json {
            println!("{line}");
            continue;
        }
        let record: Value = serde_json::from_str(&line)
            .with_context(|| format!("bad log line from the agent: {line}"))?;
        if let Some(text) = readable(&record) {
            println!("{text}");
        }
    }
    Ok(())
}

/// A record as text: `TIMESTAMP LEVEL message key=value...`; None for a heartbeat.
fn readable(r: &Value) -> Option<String> {
    if r["type"] == "heartbeat" {
        return None;
    }
    if let Some(n) = r["dropped"].as_u64() {
        return Some(format!(
            "... {n} log lines lost: this monitor fell behind the agent"
        ));
    }
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    let mut out = format!(
        "{} {:>5} {}",
        text("timestamp"),
        text("level"),
        text("message")
    );
    if let Value::Object(fields) = r {
        for (k, v) in fields {
            if ["timestamp", "level", "message", "target"].contains(&k.as_str()) {
                continue;
            }
            match v {
                Value::String(s) => out.push_str(&format!(" {k}={s}")),
                other => out.push_str(&format!(" {k}={other}")),
            }
        }
    }
    Some(out)
}
