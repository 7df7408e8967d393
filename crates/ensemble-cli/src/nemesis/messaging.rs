//! The `messaging` workload: named messages to the handler `inbox` between random pairs of
//! agents (`POST /v1/send`), acknowledged and not, each with a unique payload `mCLIENT:N`;
//! every agent's handler appends each payload it receives to a file in its directory. Checks
//! what docs/MESSAGING.md promises: an acknowledged message was delivered, and a receiver
//! delivers each message once (it remembers the last 4,096 ids per sender; a restarted
//! receiver forgets them).

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::json;

use super::calls::{call, Senders};
use super::check_util::{alive_through, read_lines, settled_files, verdict, Files};
use super::history::{Op, Outcome, Verdict};
use super::workload::{Ctx, End, Lives, Workload};
use crate::client::ApiClient;
use crate::views::SendBody;

/// The handler every agent registers.
pub const HANDLER: &str = "inbox";
/// The file, in each agent's directory, its handler appends received payloads to.
pub const FILE: &str = "nemesis-inbox.txt";
const SEND: &str = "messaging.send";

/// The `messaging` workload.
#[derive(Default)]
pub struct Messaging {
    pub senders: Senders,
}

/// The acknowledged sends (`ack` asked, outcome `Ok`), by receiver.
fn acked(ops: &[Op]) -> impl Iterator<Item = (&Op, &str, &str)> {
    ops.iter().filter_map(|op| {
        let (to, p) = (op.detail["to"].as_str()?, op.detail["payload"].as_str()?);
        let ack = op.detail["ack"].as_bool() == Some(true);
        (op.kind == SEND && ack && op.outcome == Outcome::Ok).then_some((op, to, p))
    })
}

/// `messaging.acked_delivered`: every acknowledged send is in its receiver's file, unless the
/// receiver's process ended after the send was invoked (its handler may not have run).
pub fn acked_delivered(ops: &[Op], received: &Files, lives: &Lives) -> Verdict {
    let mut violations = Vec::new();
    let (mut checked, mut excused) = (0u64, 0u64);
    for (op, to, p) in acked(ops) {
        if !alive_through(lives, to, op.invoked_ms) {
            excused += 1;
            continue;
        }
        checked += 1;
        let got = received.get(to).and_then(|r| r.as_ref());
        if !got.is_some_and(|r| r.iter().any(|x| x == p)) {
            violations.push(format!(
                "{to} never received {p:?}, acknowledged to {} at {} ms",
                op.agent, op.completed_ms
            ));
        }
    }
    let counts = BTreeMap::from([
        ("acked_checked".to_string(), checked),
        ("receiver_restarted".to_string(), excused),
    ]);
    verdict("messaging.acked_delivered", counts, violations)
}

/// `messaging.no_duplicates`: no receiver delivered a message twice, unless it was restarted
/// (a new process forgets the ids it had seen); every payload received was sent.
pub fn no_duplicates(ops: &[Op], received: &Files, lives: &Lives) -> Verdict {
    let sent: BTreeMap<&str, &Op> = ops
        .iter()
        .filter(|op| op.kind == SEND)
        .filter_map(|op| op.detail["payload"].as_str().map(|p| (p, op)))
        .collect();
    let mut violations = Vec::new();
    let mut across_restarts = 0u64;
    for (agent, got) in received {
        let Some(got) = got else { continue };
        let mut times: BTreeMap<&str, u64> = BTreeMap::new();
        for p in got {
            *times.entry(p).or_default() += 1;
        }
        let restarted = lives.get(agent).is_some_and(|l| l.len() > 1);
        for (p, n) in times {
            if !sent.contains_key(p) {
                violations.push(format!("{agent} received {p:?}, never sent"));
            } else if n > 1 && restarted {
                across_restarts += 1;
            } else if n > 1 {
                violations.push(format!("{agent} received {p:?} {n} times"));
            }
        }
    }
    let counts = BTreeMap::from([
        ("sent".to_string(), sent.len() as u64),
        (
            "duplicates_at_restarted_receivers".to_string(),
            across_restarts,
        ),
    ]);
    verdict("messaging.no_duplicates", counts, violations)
}

impl Workload for Messaging {
    fn name(&self) -> &'static str {
        "messaging"
    }

    fn agent_args(&self, _name: &str, dir: &std::path::Path) -> Vec<String> {
        // The payload on stdin, one line per message.
        let cmd = format!(
            "{HANDLER}={{ cat; echo; }} >> '{}'",
            dir.join(FILE).display()
        );
        vec!["--handler".into(), cmd]
    }

    fn run(&self, ctx: Ctx) {
        self.senders.run(&ctx, |rng, all, id, n| {
            if all.len() < 2 {
                return;
            }
            let from = rng.gen_range(0..all.len());
            let to = (from + rng.gen_range(1..all.len())) % all.len();
            let body = SendBody {
                node: all[to].name.clone(),
                name: HANDLER.into(),
                payload: format!("m{id}:{n}"),
                ack: rng.gen_bool(0.5),
                timeout_ms: 2000,
                channel: ensemble::DEFAULT_CHANNEL.into(),
            };
            let detail = json!({"to": body.node, "payload": body.payload, "ack": body.ack});
            let send = |c: &ApiClient| c.post::<serde_json::Value>("/v1/send", &body);
            let _ = call(&ctx, SEND, &all[from], detail, send, |_, _| {});
        });
    }

    fn check(&self, ops: &[Op], end: &End) -> Vec<Verdict> {
        let received = settled_files(end, FILE, read_lines, |_| false);
        vec![
            acked_delivered(ops, &received, &end.lives),
            no_duplicates(ops, &received, &end.lives),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::check_util::files_of as got;

    fn send(from: &str, to: &str, payload: &str, ack: bool, outcome: Outcome) -> Op {
        Op {
            kind: SEND.into(),
            agent: from.into(),
            invoked_ms: 10,
            completed_ms: 20,
            outcome,
            detail: json!({"to": to, "payload": payload, "ack": ack}),
        }
    }

    #[test]
    fn an_acknowledged_message_must_be_received_unless_its_receiver_restarted() {
        let ops = vec![
            send("a0", "a1", "m0:1", true, Outcome::Ok),
            send("a0", "a1", "m0:2", false, Outcome::Ok),
            send("a1", "a0", "m0:3", true, Outcome::Unknown("504".into())),
        ];
        let none = Lives::new();
        assert!(acked_delivered(&ops, &got(&[("a1", &["m0:1"])]), &none).passed);
        let v = acked_delivered(&ops, &got(&[("a1", &["m0:2"])]), &none);
        assert!(!v.passed && v.violations[0].contains("m0:1"), "{v:?}");
        let restarted = Lives::from([("a1".to_string(), vec![(0, Some(15)), (16, None)])]);
        assert!(acked_delivered(&ops, &got(&[("a1", &[])]), &restarted).passed);
    }

    #[test]
    fn a_message_received_twice_by_one_process_is_a_violation() {
        let ops = vec![send("a0", "a1", "m0:1", true, Outcome::Ok)];
        let none = Lives::new();
        assert!(no_duplicates(&ops, &got(&[("a1", &["m0:1"])]), &none).passed);
        let twice = got(&[("a1", &["m0:1", "m0:1"])]);
        assert!(!no_duplicates(&ops, &twice, &none).passed);
        assert!(!no_duplicates(&ops, &got(&[("a1", &["m9:9"])]), &none).passed);
        let restarted = Lives::from([("a1".to_string(), vec![(0, Some(15)), (16, None)])]);
        assert!(no_duplicates(&ops, &twice, &restarted).passed);
    }
}
