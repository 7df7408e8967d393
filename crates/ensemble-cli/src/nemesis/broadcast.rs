//! The `broadcast` workload: user events named `nemesis` sent through random agents, each
//! with a unique payload `cCLIENT:N`; every agent's event handler appends each one it delivers
//! to a file in its directory. Checks what docs/BROADCAST.md promises: exactly once per node,
//! in order per sender.

use std::collections::BTreeMap;
use std::path::Path;

use rand::Rng;
use serde_json::json;

use super::calls::{call, Senders};
use super::check_util::{
    alive_through, ended_at, life_of, read_lines, settled_files, verdict, Files,
};
use super::history::{Op, Outcome, Verdict};
use super::record::FaultRecord;
use super::workload::{Ctx, End, Lives, Workload};
use crate::client::ApiClient;
use crate::views::SendEvent;

/// The user events' name.
pub const EVENT: &str = "nemesis";
/// The file, in each agent's directory, its event handler appends delivered events to.
pub const FILE: &str = "nemesis-events.ndjson";
const SEND: &str = "broadcast.send";

/// The `broadcast` workload.
#[derive(Default)]
pub struct Broadcast {
    pub senders: Senders,
}

/// One `nemesis` event as an agent's process delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The agent's process id (the handler's parent): which of its runs delivered it.
    pub pid: u64,
    pub payload: String,
    /// Its place in its sender's stream (one stream per process start of the sender).
    pub seq: u64,
}

/// The `nemesis` events in an event handler's file, in the order delivered.
pub fn read_records(path: &Path) -> Option<Vec<Delivery>> {
    Some(
        read_lines(path)?
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"]["name"] == EVENT)
            .filter_map(|v| {
                Some(Delivery {
                    pid: v["pid"].as_u64()?,
                    payload: v["event"]["payload"].as_str()?.to_string(),
                    seq: v["event"]["seq"].as_u64()?,
                })
            })
            .collect(),
    )
}

/// The payloads of the `nemesis` events in an event handler's file, in order.
pub fn read_deliveries(path: &Path) -> Option<Vec<String>> {
    Some(read_records(path)?.into_iter().map(|d| d.payload).collect())
}

/// What each agent's runs delivered, with the process id of each run, by agent.
pub type Runs = BTreeMap<String, Vec<Delivery>>;

/// Every agent's deliveries, read from its file.
pub fn runs(end: &End) -> Runs {
    end.dirs
        .iter()
        .map(|(n, d)| (n.clone(), read_records(&d.join(FILE)).unwrap_or_default()))
        .collect()
}

/// The deliveries of an agent's last run (the process running at the end).
fn last_run(all: &[Delivery]) -> impl Iterator<Item = &Delivery> {
    let last = all.last().map(|d| d.pid);
    all.iter().filter(move |d| Some(d.pid) == last)
}

/// Each send's payload with its operation.
fn sends(ops: &[Op]) -> BTreeMap<&str, &Op> {
    ops.iter()
        .filter(|op| op.kind == SEND)
        .filter_map(|op| op.detail["payload"].as_str().map(|p| (p, op)))
        .collect()
}

/// How long after a cut heals two agents may stay unconnected: the longest redial back-off
/// (`reconnect_max_ms`, 10 s, plus its jitter of a quarter).
const RECONNECT_MS: u64 = 12_500;

/// Whether every run of an agent delivered `p` at most once (false without records).
fn once_per_run(run: Option<&Vec<Delivery>>, p: &str) -> bool {
    let Some(run) = run else { return false };
    let mut by_pid: BTreeMap<u64, u64> = BTreeMap::new();
    for d in run.iter().filter(|d| d.payload == p) {
        *by_pid.entry(d.pid).or_default() += 1;
    }
    !by_pid.is_empty() && by_pid.values().all(|n| *n == 1)
}

/// `broadcast.exactly_once`: every event whose send was `Ok` was delivered exactly once by
/// every agent whose process ran from the send's invocation to the end; no event delivered
/// twice by one run of an agent (a restarted agent's new run does not know what its previous
/// runs delivered, and may deliver those again: counted); every event delivered was sent (`Ok` or `Unknown`). An event is lost
/// with its sender, and excused, when the sender's process ended after sending it, no other
/// agent delivered it (it never left the sender), and the sender was cut from the agent at
/// some time from [`RECONNECT_MS`] before the send to its end (not yet reconnected).
pub fn exactly_once(
    ops: &[Op],
    delivered: &Files,
    runs: &Runs,
    lives: &Lives,
    faults: &FaultRecord,
) -> Verdict {
    let sent = sends(ops);
    let mut violations = Vec::new();
    let (mut expected, mut lost_with_sender, mut before_first) = (0u64, 0u64, 0u64);
    let mut again_after_restart = 0u64;
    // Each event's place in its sender's stream, from whoever delivered it.
    let seq: BTreeMap<&str, u64> = runs
        .values()
        .flatten()
        .map(|d| (d.payload.as_str(), d.seq))
        .collect();
    let stream = |op: &Op| (op.agent.clone(), life_of(lives, &op.agent, op.invoked_ms));
    // A restarted agent's new run starts each stream where its first peer stands: an event
    // before the first one of its stream that run delivered is its past, not a loss.
    let before_first_exchange = |op: &Op, p: &str, agent: &str| {
        let restarted = lives.get(agent).is_some_and(|l| l.len() > 1);
        let (Some(run), Some(s)) = (runs.get(agent), seq.get(p)) else {
            return false;
        };
        let first = last_run(run)
            .filter(|d| {
                sent.get(d.payload.as_str())
                    .is_some_and(|o| stream(o) == stream(op))
            })
            .map(|d| d.seq)
            .min();
        restarted && first.is_none_or(|f| f > *s)
    };
    let delivered_by_other = |p: &str, sender: &str| {
        delivered
            .iter()
            .any(|(a, got)| a != sender && got.as_ref().is_some_and(|g| g.iter().any(|x| x == p)))
    };
    let lost = |op: &Op, p: &str, agent: &str| {
        let Some(end) = ended_at(lives, &op.agent, op.invoked_ms) else {
            return false;
        };
        let since = op.invoked_ms.saturating_sub(RECONNECT_MS);
        faults.separated(&op.agent, agent, since, end) && !delivered_by_other(p, &op.agent)
    };
    for (agent, got) in delivered {
        let Some(got) = got else {
            violations.push(format!("{agent}: no file of delivered events"));
            continue;
        };
        let mut times: BTreeMap<&str, u64> = BTreeMap::new();
        for p in got {
            *times.entry(p).or_default() += 1;
        }
        for (p, n) in &times {
            match sent.get(p) {
                None => violations.push(format!("{agent} delivered {p:?}, never sent")),
                Some(op) if matches!(op.outcome, Outcome::Fail(_)) => {
                    violations.push(format!("{agent} delivered {p:?}, whose send failed"))
                }
                // A new run does not know what the agent's previous runs delivered.
                _ if *n > 1 && once_per_run(runs.get(agent), p) => again_after_restart += 1,
                _ if *n > 1 => violations.push(format!("{agent} delivered {p:?} {n} times")),
                _ => {}
            }
        }
        for (p, op) in &sent {
            if op.outcome == Outcome::Ok && alive_through(lives, agent, op.invoked_ms) {
                expected += 1;
                if !times.contains_key(p) && lost(op, p, agent) {
                    lost_with_sender += 1;
                } else if !times.contains_key(p) && before_first_exchange(op, p, agent) {
                    before_first += 1;
                } else if !times.contains_key(p) {
                    violations.push(format!(
                        "{agent} (running since before it was sent) never delivered {p:?}, \
                         sent through {} at {} ms",
                        op.agent, op.invoked_ms
                    ));
                }
            }
        }
    }
    let counts = BTreeMap::from([
        ("sent".to_string(), sent.len() as u64),
        ("deliveries_expected".to_string(), expected),
        (
            "lost_with_their_cut_off_sender".to_string(),
            lost_with_sender,
        ),
        (
            "before_a_restarted_agents_first_exchange".to_string(),
            before_first,
        ),
        (
            "delivered_again_by_a_restarted_agent".to_string(),
            again_after_restart,
        ),
    ]);
    verdict("broadcast.exactly_once", counts, violations)
}

/// `broadcast.per_sender_order`: two events sent through one agent's process, the second
/// invoked after the first was acknowledged, are delivered in that order by every agent that
/// delivered both.
pub fn per_sender_order(ops: &[Op], delivered: &Files, lives: &Lives) -> Verdict {
    let mut by_origin: BTreeMap<(&str, usize), Vec<(&Op, &str)>> = BTreeMap::new();
    for (p, op) in sends(ops) {
        if op.outcome == Outcome::Ok {
            let life = life_of(lives, &op.agent, op.invoked_ms);
            by_origin
                .entry((&op.agent, life))
                .or_default()
                .push((op, p));
        }
    }
    let mut violations = Vec::new();
    let mut pairs = 0u64;
    for (agent, got) in delivered {
        let Some(got) = got else { continue };
        let at: BTreeMap<&str, usize> = got
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect();
        for sent in by_origin.values_mut() {
            sent.sort_by_key(|(op, _)| op.invoked_ms);
            let seen: Vec<&(&Op, &str)> = sent.iter().filter(|(_, p)| at.contains_key(p)).collect();
            for w in seen.windows(2) {
                let ((a, pa), (b, pb)) = (w[0], w[1]);
                if a.completed_ms >= b.invoked_ms {
                    continue;
                }
                pairs += 1;
                if at[pa] > at[pb] {
                    violations.push(format!(
                        "{agent} delivered {pb:?} before {pa:?}, both sent through {} in that order",
                        a.agent
                    ));
                }
            }
        }
    }
    let counts = BTreeMap::from([("ordered_pairs_checked".to_string(), pairs)]);
    verdict("broadcast.per_sender_order", counts, violations)
}

impl Workload for Broadcast {
    fn name(&self) -> &'static str {
        "broadcast"
    }

    fn agent_args(&self, _name: &str, dir: &Path) -> Vec<String> {
        let file = dir.join(FILE);
        // The event's JSON object on stdin, one line per event.
        // `{"pid": the agent's process id, "event": the event}`: which run delivered it.
        let cmd = format!(
            "user:{EVENT}={{ printf '{{\"pid\":%s,\"event\":' \"$PPID\"; tr -d '\\n'; echo '}}'; }} >> '{}'",
            file.display()
        );
        vec!["--event-handler".into(), cmd]
    }

    fn run(&self, ctx: Ctx) {
        self.senders.run(&ctx, |rng, all, id, n| {
            let e = &all[rng.gen_range(0..all.len())];
            let body = SendEvent {
                name: EVENT.into(),
                payload: format!("c{id}:{n}"),
            };
            let detail = json!({ "payload": body.payload });
            let send = |c: &ApiClient| c.post::<serde_json::Value>("/v1/events", &body);
            let _ = call(&ctx, SEND, e, detail, send, |_, _| {});
        });
    }

    fn check(&self, ops: &[Op], end: &End) -> Vec<Verdict> {
        // Until every agent delivered as many as were acknowledged (a restarted one may
        // deliver fewer).
        let acked = sends(ops)
            .values()
            .filter(|o| o.outcome == Outcome::Ok)
            .count();
        let delivered = settled_files(end, FILE, read_deliveries, |d| {
            d.values()
                .all(|d| d.as_ref().is_some_and(|d| d.len() >= acked))
        });
        vec![
            exactly_once(ops, &delivered, &runs(end), &end.lives, &end.faults),
            per_sender_order(ops, &delivered, &end.lives),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::check_util::files_of as got;

    fn send(agent: &str, at: u64, payload: &str, outcome: Outcome) -> Op {
        Op {
            kind: SEND.into(),
            agent: agent.into(),
            invoked_ms: at,
            completed_ms: at + 5,
            outcome,
            detail: json!({ "payload": payload }),
        }
    }

    #[test]
    fn every_acknowledged_event_is_delivered_once_by_every_agent_running_since() {
        let ops = vec![
            send("a0", 10, "c0:1", Outcome::Ok),
            send("a1", 20, "c1:1", Outcome::Unknown("timeout".into())),
            send("a1", 30, "c1:2", Outcome::Fail("400".into())),
        ];
        let none = Lives::new();
        let calm = FaultRecord::default();
        let ok = got(&[("a0", &["c0:1"]), ("a1", &["c0:1", "c1:1"])]);
        assert!(exactly_once(&ops, &ok, &Runs::new(), &none, &calm).passed);
        for bad in [
            got(&[("a0", &["c0:1"]), ("a1", &[])]),
            got(&[("a0", &["c0:1", "c0:1"]), ("a1", &["c0:1"])]),
            got(&[("a0", &["c0:1", "c9:9"]), ("a1", &["c0:1"])]),
            got(&[("a0", &["c0:1", "c1:2"]), ("a1", &["c0:1"])]),
        ] {
            assert!(
                !exactly_once(&ops, &bad, &Runs::new(), &none, &calm).passed,
                "{bad:?}"
            );
        }
        // a1 restarted after the send: it need not have the event.
        let restarted = Lives::from([("a1".to_string(), vec![(0, Some(12)), (13, None)])]);
        let missing = got(&[("a0", &["c0:1"]), ("a1", &[])]);
        assert!(exactly_once(&ops, &missing, &Runs::new(), &restarted, &calm).passed);
    }

    #[test]
    fn a_restarted_agent_picks_up_each_stream_where_its_first_peer_stands() {
        // a1 restarts at 10: its new run first delivers a0's event c0:2 (seq 6); c0:1 (seq 5),
        // sent through a0 just before, is its past. A gap after that first one is a loss.
        let ops = vec![
            send("a0", 11, "c0:1", Outcome::Ok),
            send("a0", 20, "c0:2", Outcome::Ok),
            send("a0", 30, "c0:3", Outcome::Ok),
        ];
        let lives = Lives::from([("a1".to_string(), vec![(0, Some(9)), (10, None)])]);
        let calm = FaultRecord::default();
        let d = |payload: &str, seq| Delivery {
            pid: 7,
            payload: payload.into(),
            seq,
        };
        let last = |a1: Vec<Delivery>| {
            Runs::from([
                (
                    "a0".to_string(),
                    vec![d("c0:1", 5), d("c0:2", 6), d("c0:3", 7)],
                ),
                ("a1".to_string(), a1),
            ])
        };
        let all = got(&[("a0", &["c0:1", "c0:2", "c0:3"]), ("a1", &["c0:2", "c0:3"])]);
        let v = exactly_once(
            &ops,
            &all,
            &last(vec![d("c0:2", 6), d("c0:3", 7)]),
            &lives,
            &calm,
        );
        assert!(v.passed, "{v:?}");
        assert_eq!(v.counts["before_a_restarted_agents_first_exchange"], 1);
        let gap = got(&[("a0", &["c0:1", "c0:2", "c0:3"]), ("a1", &["c0:1", "c0:3"])]);
        let v = exactly_once(
            &ops,
            &gap,
            &last(vec![d("c0:1", 5), d("c0:3", 7)]),
            &lives,
            &calm,
        );
        assert!(!v.passed && v.violations[0].contains("c0:2"), "{v:?}");
        // Not for an agent that was never restarted.
        let v = exactly_once(
            &ops,
            &all,
            &last(vec![d("c0:2", 6), d("c0:3", 7)]),
            &Lives::new(),
            &calm,
        );
        assert!(!v.passed, "{v:?}");
    }

    #[test]
    fn a_restarted_agent_may_deliver_again_what_its_previous_run_did_but_one_run_only_once() {
        let ops = vec![send("a0", 5, "c0:1", Outcome::Ok)];
        let calm = FaultRecord::default();
        let lives = Lives::from([("a1".to_string(), vec![(0, Some(9)), (10, None)])]);
        let d = |pid, seq| Delivery {
            pid,
            payload: "c0:1".into(),
            seq,
        };
        let twice = got(&[("a0", &["c0:1"]), ("a1", &["c0:1", "c0:1"])]);
        let runs = |a1| Runs::from([("a0".to_string(), vec![d(1, 1)]), ("a1".to_string(), a1)]);
        let v = exactly_once(&ops, &twice, &runs(vec![d(2, 1), d(3, 1)]), &lives, &calm);
        assert!(v.passed, "{v:?}");
        assert_eq!(v.counts["delivered_again_by_a_restarted_agent"], 1);
        let v = exactly_once(&ops, &twice, &runs(vec![d(3, 1), d(3, 1)]), &lives, &calm);
        assert!(!v.passed && v.violations[0].contains("2 times"), "{v:?}");
    }

    #[test]
    fn an_event_that_never_left_its_cut_off_sender_dies_with_it() {
        use crate::nemesis::record::Applied;
        // a0 sends while cut off from a1 and a2, and is killed before the cut heals.
        let ops = vec![send("a0", 10, "c0:1", Outcome::Ok)];
        let killed = Lives::from([("a0".to_string(), vec![(0, Some(50)), (60, None)])]);
        let cut = FaultRecord {
            applied: vec![Applied {
                kind: "majority-split",
                targets: vec!["a0".into()],
                start_ms: 5,
                end_ms: Some(70),
                cuts: vec![("a0".into(), "a1".into()), ("a0".into(), "a2".into())],
                ..Applied::default()
            }],
        };
        let nobody = got(&[("a0", &["c0:1"]), ("a1", &[]), ("a2", &[])]);
        let v = exactly_once(&ops, &nobody, &Runs::new(), &killed, &cut);
        assert!(v.passed, "{v:?}");
        assert_eq!(v.counts["lost_with_their_cut_off_sender"], 2);
        // Not when it did leave (a2 has it: a1 must too), nor without the cut.
        let a2_has_it = got(&[("a0", &["c0:1"]), ("a1", &[]), ("a2", &["c0:1"])]);
        assert!(!exactly_once(&ops, &a2_has_it, &Runs::new(), &killed, &cut).passed);
        let calm = FaultRecord::default();
        assert!(!exactly_once(&ops, &nobody, &Runs::new(), &killed, &calm).passed);
    }

    #[test]
    fn events_sent_one_after_the_other_through_one_agent_arrive_in_that_order() {
        let ops = vec![
            send("a0", 10, "c0:1", Outcome::Ok),
            send("a0", 20, "c1:1", Outcome::Ok),
            send("a1", 21, "c0:2", Outcome::Ok),
        ];
        let none = Lives::new();
        let ok = got(&[
            ("a0", &["c0:1", "c0:2", "c1:1"]),
            ("a1", &["c0:2", "c0:1", "c1:1"]),
        ]);
        assert!(per_sender_order(&ops, &ok, &none).passed);
        let bad = got(&[("a0", &["c0:1", "c1:1"]), ("a1", &["c1:1", "c0:1"])]);
        let v = per_sender_order(&ops, &bad, &none);
        assert!(!v.passed && v.violations[0].starts_with("a1"), "{v:?}");
    }
}
