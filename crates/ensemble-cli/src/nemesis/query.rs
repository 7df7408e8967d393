//! The `query` workload: queries named `nemesis` asked through random agents (`POST
//! /v1/query`), each with a unique payload `qCLIENT:N`; every agent answers with its own name
//! and the payload it was asked (`NAME:PAYLOAD`). Checks what docs/QUERIES.md promises: the
//! asker reports at most one ack and one response per member, and each response is the
//! answer of the member it names to this very query (no answer of another query, no answer
//! attributed to another member).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

use rand::Rng;
use serde_json::json;

use super::calls::{call, Senders};
use super::check_util::verdict;
use super::history::{Op, Outcome, Verdict};
use super::workload::{Ctx, End, Workload};
use crate::client::ApiClient;
use crate::views::{QueryBody, QueryLine};

/// The queries' name.
pub const QUERY: &str = "nemesis";
const ASK: &str = "query.ask";
/// How long each query collects answers (within the client's call timeout).
const TIMEOUT_MS: u64 = 1500;

/// The `query` workload.
#[derive(Default)]
pub struct Query {
    pub senders: Senders,
}

/// Asks one query and reads its answer lines to the end.
fn ask(c: &ApiClient, body: &QueryBody) -> anyhow::Result<Vec<QueryLine>> {
    let reader = c.post_lines("/v1/query", body)?;
    let mut lines = Vec::new();
    for line in reader.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            lines.push(serde_json::from_str(&line)?);
        }
    }
    anyhow::ensure!(
        matches!(lines.last(), Some(QueryLine::Done { .. })),
        "the answer ended before its counts"
    );
    Ok(lines)
}

/// `query.responses_valid`: for every query answered in full, no member acked or responded
/// twice, every member named is an agent of the campaign, and each response is
/// `MEMBER:PAYLOAD` for the member that sent it and this query's payload.
pub fn responses_valid(ops: &[Op], agents: &BTreeSet<String>) -> Verdict {
    let mut violations = Vec::new();
    let (mut queries, mut responses) = (0u64, 0u64);
    for op in ops
        .iter()
        .filter(|op| op.kind == ASK && op.outcome == Outcome::Ok)
    {
        queries += 1;
        let payload = op.detail["payload"].as_str().unwrap_or_default();
        let lines: Vec<QueryLine> =
            serde_json::from_value(op.detail["lines"].clone()).unwrap_or_default();
        let (mut acked, mut answered) = (BTreeSet::new(), BTreeSet::new());
        for line in &lines {
            let (from, seen) = match line {
                QueryLine::Ack { from } => (from, &mut acked),
                QueryLine::Response { from, payload: got } => {
                    responses += 1;
                    let want = format!("{from}:{payload}");
                    if *got != want {
                        violations.push(format!(
                            "query {payload:?} through {}: {from} answered {got:?}, not {want:?}",
                            op.agent
                        ));
                    }
                    (from, &mut answered)
                }
                QueryLine::Done { .. } => continue,
            };
            if !agents.contains(from) {
                violations.push(format!(
                    "query {payload:?}: an answer from unknown {from:?}"
                ));
            }
            if !seen.insert(from.clone()) {
                violations.push(format!(
                    "query {payload:?} through {}: {from} reported twice ({line:?})",
                    op.agent
                ));
            }
        }
    }
    let counts = BTreeMap::from([
        ("queries_answered".to_string(), queries),
        ("responses".to_string(), responses),
    ]);
    verdict("query.responses_valid", counts, violations)
}

impl Workload for Query {
    fn name(&self) -> &'static str {
        "query"
    }

    fn agent_args(&self, _name: &str, _dir: &std::path::Path) -> Vec<String> {
        let cmd = format!("{QUERY}=printf '%s:' \"$ENSEMBLE_SELF_NAME\"; cat");
        vec!["--query-handler".into(), cmd]
    }

    fn run(&self, ctx: Ctx) {
        self.senders.run(&ctx, |rng, all, id, n| {
            let through = &all[rng.gen_range(0..all.len())];
            let body = QueryBody {
                name: QUERY.into(),
                payload: format!("q{id}:{n}"),
                timeout_ms: Some(TIMEOUT_MS),
                ..QueryBody::default()
            };
            let detail = json!({"payload": body.payload});
            let _ = call(
                &ctx,
                ASK,
                through,
                detail,
                |c| ask(c, &body),
                |lines, d| d["lines"] = json!(lines),
            );
        });
    }

    fn check(&self, ops: &[Op], end: &End) -> Vec<Verdict> {
        let agents = end.endpoints.all().into_iter().map(|e| e.name).collect();
        vec![responses_valid(ops, &agents)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(payload: &str, lines: serde_json::Value) -> Op {
        Op {
            kind: ASK.into(),
            agent: "a0".into(),
            invoked_ms: 10,
            completed_ms: 1600,
            outcome: Outcome::Ok,
            detail: json!({"payload": payload, "lines": lines}),
        }
    }

    fn line(kind: &str, from: &str, payload: Option<&str>) -> serde_json::Value {
        match payload {
            Some(p) => json!({"type": kind, "from": from, "payload": p}),
            None => json!({"type": kind, "from": from}),
        }
    }

    #[test]
    fn each_member_answers_a_query_once_with_its_own_name_and_that_querys_payload() {
        let agents: BTreeSet<String> = ["a0", "a1"].map(String::from).into();
        let done = json!({"type": "done", "acks": 2, "responses": 2});
        let good = asked(
            "q0:1",
            json!([
                line("ack", "a0", None),
                line("ack", "a1", None),
                line("response", "a1", Some("a1:q0:1")),
                line("response", "a0", Some("a0:q0:1")),
                done
            ]),
        );
        assert!(responses_valid(std::slice::from_ref(&good), &agents).passed);
        let other_query = asked(
            "q0:2",
            json!([line("response", "a1", Some("a1:q0:1")), done]),
        );
        let v = responses_valid(&[good.clone(), other_query], &agents);
        assert!(!v.passed && v.violations[0].contains("q0:2"), "{v:?}");
        let twice = asked(
            "q0:3",
            json!([line("ack", "a1", None), line("ack", "a1", None)]),
        );
        assert!(!responses_valid(&[twice], &agents).passed);
        let stranger = asked("q0:4", json!([line("ack", "zz", None), done]));
        assert!(!responses_valid(&[stranger], &agents).passed);
        let mut unknown = asked(
            "q0:5",
            json!([line("ack", "a1", None), line("ack", "a1", None)]),
        );
        unknown.outcome = Outcome::Unknown("timeout".into());
        assert!(responses_valid(&[unknown], &agents).passed);
    }
}
