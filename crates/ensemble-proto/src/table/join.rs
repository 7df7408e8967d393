//! The coordinator's side of a join of two table segments.
//!
//! 1. Lock and pause every replica of both segments (`Pause`); each answers `Paused` with its
//!    segment, join id and records' digest once its own writes are acked everywhere, so no
//!    write is in flight.
//! 2. Check that the segments do not overlap and that every replica of each agrees on its
//!    segment and join id.
//! 3. Take the records of one replica per distinct digest (usually one per side: the
//!    coordinator's own and the remote's, by `SnapshotRequest`), merge them, and send every
//!    replica what it lacks (`Chunk`s, `Apply`): a key held with different values goes through
//!    the conflict handler (or the newer write wins), and the result is written everywhere.
//!    Replicas of one segment whose records differ (after a partial partition) get theirs
//!    repaired too.
//! 4. When every replica has applied, `Unpause` them all: they replay their queued writes under
//!    the new join id.
//!
//! Any refusal, a replica going down before step 4, or the deadline aborts the join: every
//! locked replica is unpaused. A busy replica (locked by another join) makes the join retry
//! with back-off until its deadline.

use std::collections::{BTreeMap, BTreeSet};

use std::time::Instant;

use super::effects::Completion;
use super::error::JoinFailure;
use super::msg::{Record, Version};
use super::store::{chunk_cost, count, Chunks, Kind};
use super::ConflictHandler;

/// Where a join is.
#[derive(Debug)]
pub(crate) enum Stage {
    /// Waiting for `Paused` from every replica asked.
    Pausing,
    /// Waiting for one snapshot per distinct digest: from these replicas (the value is what
    /// arrived so far, and the announced total once complete).
    Snapshot {
        from: BTreeMap<String, (Chunks, Option<u64>)>,
    },
    /// Waiting for `Applied` from these replicas.
    Applying { waiting: BTreeSet<String> },
}

/// A replica's answer to `Pause`: its segment as it sees it, its join id and its records'
/// digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentView {
    /// Every replica of its segment, itself included.
    pub segment: BTreeSet<String>,
    /// Its join id.
    pub join_id: u64,
    /// Its records' digest: replicas with equal digests hold equal records.
    pub digest: u64,
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
    /// Each replica's view, from its `Paused`.
    pub views: BTreeMap<String, SegmentView>,
    pub stage: Stage,
    /// When this attempt started.
    pub started: Instant,
    /// Records the sides held with different values, settled when the merge was computed.
    pub conflicts: u64,
}

impl Join {
    /// Every replica asked has answered `Paused`, and the remote's segment is known.
    pub fn all_paused(&self) -> bool {
        !self.right.is_empty() && self.asked.iter().all(|n| self.views.contains_key(n))
    }

    /// Why the segments cannot be joined as they are, if they cannot.
    pub fn check(&self) -> Option<JoinFailure> {
        if let Some(n) = self.left.intersection(&self.right).next() {
            return Some(JoinFailure::Overlap(n.clone()));
        }
        for side in [&self.left, &self.right] {
            let mut ids = BTreeSet::new();
            for n in side {
                let view = &self.views[n];
                if &view.segment != side {
                    return Some(JoinFailure::SegmentDisagreement {
                        node: n.clone(),
                        has: view.segment.clone(),
                        expected: side.clone(),
                    });
                }
                ids.insert(view.join_id);
            }
            if ids.len() > 1 {
                return Some(JoinFailure::JoinIdDisagreement(ids));
            }
        }
        None
    }
}

/// One replica per distinct digest: the replicas whose snapshots the join needs (this node's
/// own first when it has one of the digests).
impl Join {
    pub fn snapshot_sources(&self, me: &str) -> BTreeMap<u64, String> {
        let mut by_digest: BTreeMap<u64, String> = BTreeMap::new();
        for (n, view) in &self.views {
            let e = by_digest.entry(view.digest).or_insert_with(|| n.clone());
            if n == me {
                *e = n.clone();
            }
        }
        by_digest
    }
}

/// The records every replica should hold after a join: the union of the snapshots, a key with
/// different values going through the conflict handler (or the later write wins).
pub(crate) fn union(
    kind: Kind,
    conflict: Option<&ConflictHandler>,
    origin: u64,
    snapshots: Vec<Vec<Record>>,
) -> (Vec<Record>, usize) {
    let newest = snapshots
        .iter()
        .flatten()
        .map(|r| r.version.time)
        .max()
        .unwrap_or(0);
    let mut conflicts = 0;
    let mut snapshots = snapshots.into_iter();
    let mut target = snapshots.next().unwrap_or_default();
    for other in snapshots {
        target = union2(
            kind,
            conflict,
            origin,
            newest,
            target,
            other,
            &mut conflicts,
        );
    }
    (target, conflicts)
}

/// Merges two snapshots in key order (bags: in (key, value) order).
fn union2(
    kind: Kind,
    conflict: Option<&ConflictHandler>,
    origin: u64,
    newest: u64,
    left: Vec<Record>,
    right: Vec<Record>,
    conflicts: &mut usize,
) -> Vec<Record> {
    let mut out = Vec::with_capacity(left.len().max(right.len()));
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let order = match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => id_cmp(kind, a, b),
        };
        match order {
            std::cmp::Ordering::Less => out.push(l.next().expect("peeked")),
            std::cmp::Ordering::Greater => out.push(r.next().expect("peeked")),
            std::cmp::Ordering::Equal => {
                let (x, y) = (l.next().expect("peeked"), r.next().expect("peeked"));
                if x.value == y.value {
                    out.push(if x.version >= y.version { x } else { y });
                    continue;
                }
                *conflicts += 1;
                out.push(match conflict {
                    Some(f) => Record {
                        value: f(&x.key, &x.value, &y.value),
                        key: x.key,
                        version: Version {
                            time: newest + 1,
                            origin,
                        },
                    },
                    None if x.version >= y.version => x,
                    None => y,
                });
            }
        }
    }
    out
}

/// What a replica holding `have` lacks of `target` (both in order): records missing or held
/// with another value or version.
pub(crate) fn diff(kind: Kind, target: &[Record], have: &[Record]) -> Vec<Record> {
    use std::cmp::Ordering::{Equal, Less};
    let mut out = Vec::new();
    let mut h = have.iter().peekable();
    for t in target {
        while h.peek().is_some_and(|x| id_cmp(kind, x, t) == Less) {
            h.next();
        }
        match h.peek() {
            Some(x)
                if id_cmp(kind, x, t) == Equal && x.value == t.value && x.version == t.version => {}
            _ => out.push(t.clone()),
        }
    }
    out
}

/// What the replicas behind each snapshot lack to hold the union of all snapshots, in chunks
/// of about `chunk_bytes`, and how many keys the snapshots held with different values (each
/// settled by the conflict handler, or the later write).
///
/// The usual join, an empty node joining a segment, has one non-empty snapshot: it is the
/// union as it is, handed to the empty side in the chunks it came in, without a copy or a
/// comparison.
pub(crate) fn lacks(
    kind: Kind,
    conflict: Option<&ConflictHandler>,
    origin: u64,
    chunk_bytes: usize,
    mut snapshots: BTreeMap<String, Chunks>,
) -> (BTreeMap<String, Chunks>, u64) {
    let full: Vec<String> = snapshots
        .iter()
        .filter(|(_, s)| count(s) > 0)
        .map(|(rep, _)| rep.clone())
        .collect();
    if full.len() <= 1 {
        let target = full
            .first()
            .and_then(|rep| snapshots.insert(rep.clone(), Vec::new()))
            .unwrap_or_default();
        let empty: Vec<String> = snapshots
            .iter()
            .filter(|(rep, _)| !full.contains(rep))
            .map(|(rep, _)| rep.clone())
            .collect();
        if let Some((last, others)) = empty.split_last() {
            for rep in others {
                snapshots.insert(rep.clone(), target.clone());
            }
            snapshots.insert(last.clone(), target);
        }
        return (snapshots, 0);
    }
    let snapshots: BTreeMap<String, Vec<Record>> = snapshots
        .into_iter()
        .map(|(rep, chunks)| (rep, chunks.into_iter().flatten().collect()))
        .collect();
    let (target, conflicts) = union(
        kind,
        conflict,
        origin,
        snapshots.values().cloned().collect(),
    );
    let lacks = snapshots
        .iter()
        .map(|(rep, have)| (rep.clone(), cut(diff(kind, &target, have), chunk_bytes)))
        .collect();
    (lacks, conflicts as u64)
}

/// Cuts records into chunks as [`super::Store::chunks`] does.
pub(crate) fn cut(records: Vec<Record>, chunk_bytes: usize) -> Chunks {
    let mut chunks = Vec::new();
    let mut rest = records.into_iter();
    while !rest.as_slice().is_empty() {
        let mut size = 0usize;
        let n = rest
            .as_slice()
            .iter()
            .position(|r| {
                size = size.saturating_add(chunk_cost(&r.key, &r.value));
                size >= chunk_bytes
            })
            .map_or(rest.len(), |i| i + 1);
        chunks.push(rest.by_ref().take(n).collect());
    }
    chunks
}

/// The order of records in a snapshot: by key, then (a bag) by value. Compared in place: a
/// join compares every record at least once.
fn id_cmp(kind: Kind, a: &Record, b: &Record) -> std::cmp::Ordering {
    match kind {
        Kind::Set => a.key.cmp(&b.key),
        Kind::Bag => a.key.cmp(&b.key).then_with(|| a.value.cmp(&b.value)),
    }
}
