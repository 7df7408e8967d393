//! The coordinator's side of a join of two table segments.
//!
//! 1. Lock and pause every replica of both segments (`Pause`); each answers `Paused` with its
//!    segment and join id once its own writes are acked everywhere, so that any one replica's
//!    records are its whole segment's.
//! 2. Check that the segments do not overlap and that every replica of each agrees on its
//!    segment and join id.
//! 3. Take the records of one replica on each side (the coordinator's own, and the remote's
//!    `SnapshotRequest`), merge them, and send each side what it lacks (`Chunk`s, `Apply`): a
//!    key on both sides with different values goes through the conflict handler (or the newer
//!    write wins), and the result is written to both sides.
//! 4. When every replica has applied, `Unpause` them all: they replay their queued writes under
//!    the new join id.
//!
//! Any refusal, a replica going down before step 4, or the deadline aborts the join: every
//! locked replica is unpaused. A busy replica (locked by another join) makes the join retry
//! with back-off until its deadline.

use std::collections::{BTreeMap, BTreeSet};

use std::time::Instant;

use bytes::Bytes;

use super::msg::{Record, Version};
use super::store::Kind;
use super::{Completion, ConflictHandler};

/// Where a join is.
#[derive(Debug)]
pub(crate) enum Stage {
    /// Waiting for `Paused` from every replica asked.
    Pausing,
    /// Waiting for the remote's snapshot.
    Snapshot { records: Vec<Record> },
    /// Waiting for `Applied` from these replicas.
    Applying { waiting: BTreeSet<String> },
}

/// A join this node coordinates.
#[derive(Debug)]
pub(crate) struct Join {
    pub table: String,
    pub remote: String,
    pub then: Completion,
    pub deadline: Instant,
    pub attempt: u32,
    pub left: BTreeSet<String>,
    pub right: BTreeSet<String>,
    pub asked: BTreeSet<String>,
    pub views: BTreeMap<String, (BTreeSet<String>, u64)>,
    pub stage: Stage,
}

impl Join {
    /// Every replica asked has answered `Paused`, and the remote's segment is known.
    pub fn all_paused(&self) -> bool {
        !self.right.is_empty() && self.asked.iter().all(|n| self.views.contains_key(n))
    }

    /// Why the segments cannot be joined as they are, if they cannot.
    pub fn check(&self) -> Option<String> {
        if let Some(n) = self.left.intersection(&self.right).next() {
            return Some(format!("segments overlap: {n} is in both"));
        }
        for side in [&self.left, &self.right] {
            let mut ids = BTreeSet::new();
            for n in side {
                let (segment, id) = &self.views[n];
                if segment != side {
                    return Some(format!(
                        "replicas disagree on the segment: {n} has {:?}, expected {:?}",
                        segment, side
                    ));
                }
                ids.insert(*id);
            }
            if ids.len() > 1 {
                return Some(format!("replicas disagree on the join id: {ids:?}"));
            }
        }
        None
    }
}

/// What each side lacks after merging the two snapshots.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    pub to_left: Vec<Record>,
    pub to_right: Vec<Record>,
    pub conflicts: usize,
}

/// Merges two snapshots (each in key order, as `Store::records` gives them).
pub(crate) fn merge(
    kind: Kind,
    conflict: Option<&ConflictHandler>,
    origin: u64,
    left: Vec<Record>,
    right: Vec<Record>,
) -> Merged {
    let mut m = Merged::default();
    match kind {
        Kind::Bag => {
            let key = |r: &Record| (r.key.clone(), r.value.clone());
            let l: BTreeSet<(Bytes, Bytes)> = left.iter().map(key).collect();
            let r: BTreeSet<(Bytes, Bytes)> = right.iter().map(key).collect();
            m.to_left = right.into_iter().filter(|x| !l.contains(&key(x))).collect();
            m.to_right = left.into_iter().filter(|x| !r.contains(&key(x))).collect();
        }
        Kind::Set => {
            let newest = left
                .iter()
                .chain(&right)
                .map(|r| r.version.time)
                .max()
                .unwrap_or(0);
            // Both snapshots are in key order: walk them side by side.
            let mut l = left.into_iter().peekable();
            let mut r = right.into_iter().peekable();
            loop {
                let order = match (l.peek(), r.peek()) {
                    (None, None) => break,
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (Some(a), Some(b)) => a.key.cmp(&b.key),
                };
                match order {
                    std::cmp::Ordering::Less => m.to_right.push(l.next().expect("peeked")),
                    std::cmp::Ordering::Greater => m.to_left.push(r.next().expect("peeked")),
                    std::cmp::Ordering::Equal => {
                        let (x, y) = (l.next().expect("peeked"), r.next().expect("peeked"));
                        if x.value == y.value {
                            continue;
                        }
                        m.conflicts += 1;
                        match conflict {
                            Some(f) => {
                                let resolved = Record {
                                    value: f(&x.key, &x.value, &y.value),
                                    key: x.key,
                                    version: Version {
                                        time: newest + 1,
                                        origin,
                                    },
                                };
                                m.to_left.push(resolved.clone());
                                m.to_right.push(resolved);
                            }
                            None if x.version >= y.version => m.to_right.push(x),
                            None => m.to_left.push(y),
                        }
                    }
                }
            }
        }
    }
    m
}
