//! The checkers of the table's replicas and records at the end of a campaign: the replicas
//! agree, acknowledged writes survive under the documented rule, reads return written values
//! (docs/TABLES.md, "What a campaign checks"). Pure functions of the history and the final
//! state.

use std::collections::BTreeMap;

use crate::nemesis::check_util::{ended_after, verdict};
use crate::nemesis::history::{Op, Outcome, Verdict};
use crate::nemesis::workload::Lives;

use super::ops::{acknowledged, excerpt, may_have_happened, possible, typed, TableOp};

/// What the agents held at the end, by agent name: its records' digest and its records
/// (`None` for an agent that did not answer).
#[derive(Debug, Clone, Default)]
pub struct Final {
    pub digests: BTreeMap<String, Option<String>>,
    pub records: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

impl Final {
    /// The records of the first agent that answered: the table's final state.
    pub fn reference(&self) -> Option<(&str, &BTreeMap<String, String>)> {
        self.records
            .iter()
            .find_map(|(n, r)| r.as_ref().map(|r| (n.as_str(), r)))
    }
}

/// `tables.replicas_agree`: every agent answered, with the same digest and the same records.
pub fn replicas_agree(f: &Final) -> Verdict {
    let mut violations = Vec::new();
    for (name, d) in &f.digests {
        if d.is_none() {
            violations.push(format!("{name} did not answer its table's digest"));
        }
    }
    let digests: std::collections::BTreeSet<&String> = f.digests.values().flatten().collect();
    if digests.len() > 1 {
        violations.push(format!("the replicas' digests differ: {:?}", f.digests));
    }
    if let Some((first, reference)) = f.reference() {
        for (name, records) in &f.records {
            let Some(records) = records else { continue };
            let differ: Vec<&String> = reference
                .iter()
                .filter(|(k, v)| records.get(*k) != Some(v))
                .map(|(k, _)| k)
                .chain(records.keys().filter(|k| !reference.contains_key(*k)))
                .take(5)
                .collect();
            if !differ.is_empty() {
                violations.push(format!(
                    "{name} and {first} hold different records, for keys such as {differ:?}"
                ));
            }
        }
    }
    let counts = BTreeMap::from([
        ("replicas".to_string(), f.digests.len() as u64),
        ("distinct_digests".to_string(), digests.len() as u64),
    ]);
    verdict("tables.replicas_agree", counts, violations)
}

/// `tables.acknowledged_writes_survive`: every key's final value was written by an insert of
/// it that may have happened (`Ok` or `Unknown`), and a key with an acknowledged insert and no
/// delete that may have happened is present, unless every agent that acknowledged one of its
/// inserts ended (was killed) after invoking it.
pub fn acknowledged_writes_survive(ops: &[Op], f: &Final, lives: &Lives) -> Verdict {
    let ops = typed(ops);
    let possible = possible(&ops);
    let mut violations = Vec::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let Some((agent, records)) = f.reference() else {
        let v = vec!["no agent answered its records".to_string()];
        return verdict("tables.acknowledged_writes_survive", counts, v);
    };
    for (key, value) in records {
        if !possible
            .get(key.as_str())
            .is_some_and(|p| p.contains_key(value.as_str()))
        {
            violations.push(format!(
                "{agent} holds {key:?} = {value:?}, which no insert of {key:?} wrote"
            ));
        }
    }
    // For each key: its acknowledged inserts, and whether a delete may have happened.
    let mut acked: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    let mut deleted: BTreeMap<&str, bool> = BTreeMap::new();
    for (op, t) in &ops {
        if let Some((key, _)) = acknowledged(op, t) {
            acked.entry(key).or_default().push(op);
        }
        if matches!(t, TableOp::Delete { .. }) && may_have_happened(op) {
            deleted.insert(t.key(), true);
        }
    }
    for (key, writes) in &acked {
        *counts.entry("acknowledged_inserts".into()).or_default() += writes.len() as u64;
        if deleted.contains_key(key) {
            *counts.entry("keys_deleted".into()).or_default() += 1;
            continue;
        }
        let kept: Vec<&&Op> = writes
            .iter()
            .filter(|w| !ended_after(lives, &w.agent, w.invoked_ms))
            .collect();
        if kept.is_empty() {
            *counts
                .entry("keys_whose_writers_were_killed".into())
                .or_default() += 1;
            continue;
        }
        *counts.entry("keys_checked".into()).or_default() += 1;
        if !records.contains_key(*key) {
            violations.push(format!(
                "{key:?} is missing on {agent}, never deleted, though acknowledged by: {}",
                excerpt(kept[0])
            ));
        }
    }
    counts.insert("final_records".into(), records.len() as u64);
    verdict("tables.acknowledged_writes_survive", counts, violations)
}

/// `tables.reads_valid`: every value a read returned (and every value an insert if absent
/// found held) was written by an insert of that key invoked before the read completed.
pub fn reads_valid(ops: &[Op]) -> Verdict {
    let ops = typed(ops);
    let possible = possible(&ops);
    let mut violations = Vec::new();
    let (mut checked, mut absent) = (0u64, 0u64);
    for (op, t) in &ops {
        if op.outcome != Outcome::Ok {
            continue;
        }
        let seen = match *t {
            TableOp::Read { value: Some(v), .. } => v,
            TableOp::IfAbsent {
                inserted: Some(false),
                held,
                ..
            } => held,
            _ => continue,
        };
        let Some(v) = seen else {
            absent += 1;
            continue;
        };
        checked += 1;
        let written_before = possible
            .get(t.key())
            .and_then(|p| p.get(v))
            .is_some_and(|at| *at <= op.completed_ms);
        if !written_before {
            violations.push(format!(
                "read a value no write of the key had written by then: {}",
                excerpt(op)
            ));
        }
    }
    let counts = BTreeMap::from([
        ("values_read".to_string(), checked),
        ("absent_read".to_string(), absent),
    ]);
    verdict("tables.reads_valid", counts, violations)
}
