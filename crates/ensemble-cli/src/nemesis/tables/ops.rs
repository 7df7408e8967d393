//! The operations of the `tables` workload, read back from the history: their kinds, what
//! each one's detail holds, and which values a key could hold (what its writes could have
//! written).

use std::collections::BTreeMap;

use crate::nemesis::history::{Op, Outcome};

/// A plain insert (`{"key", "value"}`).
pub const INSERT: &str = "tables.insert";
/// A put with `if_absent` (`{"key", "value"}`, and when answered `inserted` and `held`).
pub const IF_ABSENT: &str = "tables.insert_if_absent";
/// A put with `serial` (`{"key", "value"}`).
pub const SERIAL: &str = "tables.insert_serial";
/// A delete (`{"key"}`).
pub const DELETE: &str = "tables.delete";
/// A read (`{"key"}`, and when answered `value`: the value, or null for no record).
pub const READ: &str = "tables.read";

/// One operation of the workload, typed.
#[derive(Debug, Clone, Copy)]
pub enum TableOp<'a> {
    /// A plain or serial insert of `value`.
    Insert {
        key: &'a str,
        value: &'a str,
        serial: bool,
    },
    /// An insert if absent: `inserted` and `held` once answered.
    IfAbsent {
        key: &'a str,
        value: &'a str,
        inserted: Option<bool>,
        held: Option<&'a str>,
    },
    Delete {
        key: &'a str,
    },
    /// A read: `Some(None)` found no record, `None` not answered.
    Read {
        key: &'a str,
        value: Option<Option<&'a str>>,
    },
}

impl<'a> TableOp<'a> {
    /// The operation `op` of this workload (`None` for another workload's, or a malformed one).
    pub fn of(op: &'a Op) -> Option<TableOp<'a>> {
        let d = &op.detail;
        let s = |f: &str| d.get(f).and_then(|v| v.as_str());
        let key = s("key")?;
        Some(match op.kind.as_str() {
            INSERT | SERIAL => TableOp::Insert {
                key,
                value: s("value")?,
                serial: op.kind == SERIAL,
            },
            IF_ABSENT => TableOp::IfAbsent {
                key,
                value: s("value")?,
                inserted: d.get("inserted").and_then(|v| v.as_bool()),
                held: s("held"),
            },
            DELETE => TableOp::Delete { key },
            READ => TableOp::Read {
                key,
                value: d.get("value").map(|v| v.as_str()),
            },
            _ => return None,
        })
    }

    pub fn key(&self) -> &'a str {
        match *self {
            TableOp::Insert { key, .. }
            | TableOp::IfAbsent { key, .. }
            | TableOp::Delete { key }
            | TableOp::Read { key, .. } => key,
        }
    }
}

/// Every operation of the workload with its typed form.
pub fn typed(ops: &[Op]) -> Vec<(&Op, TableOp<'_>)> {
    ops.iter()
        .filter_map(|op| TableOp::of(op).map(|t| (op, t)))
        .collect()
}

/// Whether the operation may have taken effect (its outcome is `Ok` or `Unknown`).
pub fn may_have_happened(op: &Op) -> bool {
    !matches!(op.outcome, Outcome::Fail(_))
}

/// The value `op` may have written: an insert's that may have happened, an insert if absent
/// that was granted or not answered.
pub fn written<'a>(op: &Op, t: &TableOp<'a>) -> Option<(&'a str, &'a str)> {
    match *t {
        TableOp::Insert { key, value, .. } if may_have_happened(op) => Some((key, value)),
        TableOp::IfAbsent { key, value, .. }
            if granted(t) || matches!(op.outcome, Outcome::Unknown(_)) =>
        {
            Some((key, value))
        }
        _ => None,
    }
}

/// Whether an answered insert if absent inserted its value: `inserted`, or the value held is
/// its own (values are unique): the leader inserted it, its answer was lost on a leader change,
/// and the retry found the key held (`insert_new_or_lookup` then answers `inserted: false`).
pub fn granted(t: &TableOp<'_>) -> bool {
    matches!(*t, TableOp::IfAbsent { value, inserted, held, .. }
        if inserted == Some(true) || held == Some(value))
}

/// The value `op` wrote for sure (its outcome `Ok`): an insert's, a granted insert if absent's.
pub fn acknowledged<'a>(op: &Op, t: &TableOp<'a>) -> Option<(&'a str, &'a str)> {
    match op.outcome {
        Outcome::Ok => written(op, t),
        _ => None,
    }
}

/// For each key, every value some write may have written, with the earliest invocation of
/// a write of it.
pub fn possible<'a>(ops: &[(&Op, TableOp<'a>)]) -> BTreeMap<&'a str, BTreeMap<&'a str, u64>> {
    let mut out: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for (op, t) in ops {
        if let Some((key, value)) = written(op, t) {
            let at = out.entry(key).or_default().entry(value).or_insert(u64::MAX);
            *at = (*at).min(op.invoked_ms);
        }
    }
    out
}

/// One line of history for a violation's excerpt.
pub fn excerpt(op: &Op) -> String {
    format!(
        "{} on {} [{}..{} ms] {:?} {}",
        op.kind, op.agent, op.invoked_ms, op.completed_ms, op.outcome, op.detail
    )
}
