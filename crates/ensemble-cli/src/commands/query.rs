//! `ensemble query NAME [PAYLOAD]` (Serf's `serf query`): asks the selected members through an
//! agent (`POST /v1/query`) and prints their acks and responses as they arrive, then the
//! totals; with `--json`, one JSON object at the end.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use crate::client::AgentError;
use crate::views::{QueryBody, QueryLine};

/// The longest timeout the agent takes (and the wait when none is given).
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// How much longer than the query's timeout the command waits for the agent's last line.
const GRACE: Duration = Duration::from_secs(15);

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Only these members answer (repeat for more) [default: every member].
    #[arg(long = "node", value_name = "NAME")]
    nodes: Vec<String>,
    /// Only members with tag KEY matching REGEX answer (unanchored, as Serf); repeat for more
    /// (all must match).
    #[arg(long = "tag", value_name = "KEY=REGEX", value_parser = super::tags::parse_tag)]
    tags: Vec<(String, String)>,
    /// How long to wait for answers, as Serf writes it: 500ms, 2s, 1m (at most 60s) [default:
    /// Serf's, from the cluster's size: 3.2s below 10 members].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Do not ask the members for acks (responses only).
    #[arg(long)]
    no_ack: bool,
    /// Print one JSON object at the end (`{"acks": [...], "responses": {"NAME": "..."}}`)
    /// instead of lines as answers arrive.
    #[arg(long)]
    json: bool,
    /// Query name (a handler for it runs on each selected member).
    name: String,
    /// Query payload (text).
    #[arg(default_value = "")]
    payload: String,
}

/// What `--json` prints.
#[derive(Debug, Default, Serialize)]
struct Answers {
    acks: Vec<String>,
    responses: BTreeMap<String, String>,
}

/// `ensemble query NAME PAYLOAD`: starts a query and prints its answers until its timeout.
pub fn run(args: QueryArgs) -> Result<()> {
    let body = QueryBody {
        name: args.name.clone(),
        payload: args.payload.clone(),
        nodes: args.nodes.clone(),
        tags: args.tags.iter().cloned().collect(),
        timeout_ms: args
            .timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        no_ack: args.no_ack,
    };
    let wait = args.timeout.unwrap_or(MAX_TIMEOUT).min(MAX_TIMEOUT) + GRACE;
    let client = args.api.client()?.timeout(wait);
    let reader = match client.post_lines("/v1/query", &body) {
        Ok(r) => r,
        Err(e) if e.is::<AgentError>() => return Err(e.context("the agent refused the query")),
        Err(e) => return Err(e),
    };
    if !args.json {
        println!("Query '{}' dispatched", args.name);
    }
    let mut answers = Answers::default();
    let mut out = std::io::stdout().lock();
    for line in reader.lines() {
        let line = line.with_context(|| {
            format!(
                "the query's answers from the agent at {} ended",
                args.api.http
            )
        })?;
        if line.is_empty() {
            continue;
        }
        let line: QueryLine = serde_json::from_str(&line)
            .with_context(|| format!("bad line from the agent: {line}"))?;
        match line {
            QueryLine::Ack { from } => {
                if !args.json {
                    writeln!(out, "Ack from '{from}'")?;
                }
                answers.acks.push(from);
            }
            QueryLine::Response { from, payload } => {
                if !args.json {
                    writeln!(out, "Response from '{from}': {payload}")?;
                }
                answers.responses.insert(from, payload);
            }
            QueryLine::Done { acks, responses } => {
                if args.json {
                    answers.acks.sort();
                    return super::print_json(&answers);
                }
                if !args.no_ack {
                    writeln!(out, "Total Acks: {acks}")?;
                }
                writeln!(out, "Total Responses: {responses}")?;
                return Ok(());
            }
        }
        out.flush()?;
    }
    bail!(
        "the agent at {} closed the query's answers before its end",
        args.api.http
    )
}
