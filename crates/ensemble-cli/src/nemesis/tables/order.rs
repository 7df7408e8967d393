//! The checkers of the table's leader operations: an insert if absent granted at most once
//! per key, and serial inserts seen in one order by every replica (docs/TABLES.md, "What a
//! campaign checks"). Pure functions of the history.

use std::collections::BTreeMap;

use crate::nemesis::check_util::{ended_after, life_of, verdict};
use crate::nemesis::history::{Op, Outcome, Verdict};
use crate::nemesis::workload::Lives;

use super::ops::{excerpt, granted, typed, TableOp};
use crate::nemesis::record::FaultRecord;

/// How long after a cut heals its two sides may still grant on their own: until they have
/// re-merged (a join starts once they reconnect).
const REMERGE_MS: u64 = 10_000;

/// `tables.insert_new_unique`: no key granted (`inserted: true`, or its own value held) twice,
/// unless every agent that granted it earlier ended (was killed) between that grant and the
/// next (a record held only by killed replicas is gone, and may be granted again), or some
/// nodes were cut from others (a split, a bridge, a non-transitive cut: the table's replicas
/// may then form segments, each with its own leader, until they re-merge; docs/TABLES.md)
/// at some time from [`REMERGE_MS`] before the first grant to the second. Keys inserted if absent are never deleted by the workload.
pub fn insert_new_unique(ops: &[Op], lives: &Lives, faults: &FaultRecord) -> Verdict {
    let mut grants: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    let mut asked = 0u64;
    for (op, t) in typed(ops) {
        if let TableOp::IfAbsent { key, .. } = t {
            asked += 1;
            if op.outcome == Outcome::Ok && granted(&t) {
                grants.entry(key).or_default().push(op);
            }
        }
    }
    let mut violations = Vec::new();
    let (mut regranted_after_kill, mut split) = (0u64, 0u64);
    for (key, mut g) in grants.clone() {
        g.sort_by_key(|op| op.invoked_ms);
        for pair in g.windows(2) {
            let (first, next) = (pair[0], pair[1]);
            let lost = g
                .iter()
                .take_while(|op| op.invoked_ms <= first.invoked_ms)
                .all(|op| ended_after(lives, &op.agent, op.completed_ms));
            if lost && first.completed_ms <= next.invoked_ms {
                regranted_after_kill += 1;
                continue;
            }
            let since = first.invoked_ms.saturating_sub(REMERGE_MS);
            if faults.any_cut(since, next.completed_ms) {
                split += 1;
                continue;
            }
            violations.push(format!(
                "{key:?} granted twice: {} and {}",
                excerpt(first),
                excerpt(next)
            ));
        }
    }
    let counts = BTreeMap::from([
        ("asked".to_string(), asked),
        ("keys_granted".to_string(), grants.len() as u64),
        ("regranted_after_kill".to_string(), regranted_after_kill),
        ("granted_on_both_sides_of_a_split".to_string(), split),
    ]);
    verdict("tables.insert_new_unique", counts, violations)
}

/// `tables.serial_one_order`: for every key written by serial inserts only, no two reads
/// (one after the other, on one agent's process, or on two) saw two of its values in
/// opposite orders, and no agent saw a value again after another replaced it. A replica only
/// ever replaces a record by a newer write, so values read in time order on one process
/// follow the one order in which the writes are applied everywhere.
pub fn serial_one_order(ops: &[Op], lives: &Lives) -> Verdict {
    let ops = typed(ops);
    let mut serial: BTreeMap<&str, bool> = BTreeMap::new();
    for (_, t) in &ops {
        match t {
            TableOp::Insert { key, serial: s, .. } => {
                *serial.entry(key).or_insert(true) &= *s;
            }
            TableOp::IfAbsent { key, .. } | TableOp::Delete { key } => {
                serial.insert(key, false);
            }
            TableOp::Read { .. } => {}
        }
    }
    // Reads of serial keys that found a value, by (key, agent, process).
    let mut reads: BTreeMap<ReadsOf, Vec<(&Op, &str)>> = BTreeMap::new();
    for (op, t) in &ops {
        if let (
            Outcome::Ok,
            TableOp::Read {
                key,
                value: Some(Some(v)),
            },
        ) = (&op.outcome, t)
        {
            if serial.get(key) == Some(&true) {
                let life = life_of(lives, &op.agent, op.completed_ms);
                reads
                    .entry((key, &op.agent, life))
                    .or_default()
                    .push((op, v));
            }
        }
    }
    // "a before b": a read of b began after a read of a ended, on one process.
    let mut before: BTreeMap<(&str, &str, &str), &Op> = BTreeMap::new();
    let mut pairs = 0u64;
    for ((key, _, _), mut rs) in reads {
        rs.sort_by_key(|(op, _)| op.invoked_ms);
        for (i, (a, va)) in rs.iter().enumerate() {
            for (b, vb) in &rs[i + 1..] {
                if va != vb && a.completed_ms < b.invoked_ms {
                    pairs += 1;
                    before.entry((key, va, vb)).or_insert(b);
                }
            }
        }
    }
    let mut violations = Vec::new();
    for ((key, a, b), op) in &before {
        if a < b {
            if let Some(other) = before.get(&(key, b, a)) {
                violations.push(format!(
                    "{key:?}: {a:?} was seen before {b:?} ({}) and after it ({})",
                    excerpt(op),
                    excerpt(other)
                ));
            }
        }
    }
    let counts = BTreeMap::from([
        (
            "serial_keys".to_string(),
            serial.values().filter(|s| **s).count() as u64,
        ),
        ("ordered_pairs_seen".to_string(), pairs),
    ]);
    verdict("tables.serial_one_order", counts, violations)
}

/// A key, an agent and which of its processes.
type ReadsOf<'a> = (&'a str, &'a str, usize);
