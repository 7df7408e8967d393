//! What the nemesis's clients observed: every operation with the time it was invoked and the
//! time it completed, on one clock (milliseconds since the campaign started), and its outcome.
//! The checkers judge these histories after the campaign; nothing here decides anything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum Outcome {
    /// The agent answered that it was done.
    Ok,
    /// The agent answered that it was not done (an error answer that means nothing happened).
    Fail(String),
    /// No answer, or an answer that leaves open whether it happened (a timeout, a connection
    /// that broke): the operation may or may not have taken effect (Jepsen's `:info`).
    Unknown(String),
}

/// One operation of one client.
#[derive(Debug, Clone, Serialize)]
pub struct Op {
    /// The workload's kind of operation, for example `table.insert` or `broadcast.send`.
    pub kind: String,
    /// The agent the client called.
    pub agent: String,
    /// When the client invoked it, in ms since the campaign started.
    pub invoked_ms: u64,
    /// When the client saw its outcome, in ms since the campaign started.
    pub completed_ms: u64,
    pub outcome: Outcome,
    /// The operation's own fields (key, value, payload, the answer read...).
    pub detail: serde_json::Value,
}

/// The one clock of a campaign: ms since it started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Milliseconds since the campaign started.
    pub fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    /// The instant `ms` after the campaign started.
    pub fn at(&self, ms: u64) -> Instant {
        self.0 + std::time::Duration::from_millis(ms)
    }
}

/// A history shared by the clients of a campaign (append-only).
#[derive(Debug, Clone, Default)]
pub struct History(Arc<Mutex<Vec<Op>>>);

impl History {
    pub fn push(&self, op: Op) {
        self.0.lock().expect("history").push(op);
    }

    /// Every operation recorded so far, in the order they completed.
    pub fn ops(&self) -> Vec<Op> {
        self.0.lock().expect("history").clone()
    }
}

/// Counts of operations by kind and outcome: `{"table.insert": {"ok": 10, "unknown": 1}}`.
pub fn counts(ops: &[Op]) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let mut by: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for op in ops {
        let outcome = match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail(_) => "fail",
            Outcome::Unknown(_) => "unknown",
        };
        *by.entry(op.kind.clone())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
    by
}

/// A checker's judgement of one guarantee.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The guarantee, for example `tables.acknowledged_writes_survive`.
    pub guarantee: String,
    pub passed: bool,
    /// What the checker counted (writes checked, events delivered...).
    pub counts: BTreeMap<String, u64>,
    /// Each violation found, with the smallest excerpt of history that shows it.
    pub violations: Vec<String>,
}

impl Verdict {
    /// A verdict that passes unless `violations` is not empty.
    pub fn new(guarantee: &str, counts: BTreeMap<String, u64>, violations: Vec<String>) -> Verdict {
        Verdict {
            guarantee: guarantee.to_string(),
            passed: violations.is_empty(),
            counts,
            violations,
        }
    }
}
