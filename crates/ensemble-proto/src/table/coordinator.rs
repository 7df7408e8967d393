//! The joins this node coordinates (see `join` for the steps): starting one, collecting the
//! replicas' `Paused` views, the snapshots, applying the merge everywhere, unpausing, and
//! aborting (with a retry after a back-off when the failure is transient).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::Rng;

use super::effects::{Completion, Fx};
use super::error::JoinFailure;
use super::join::{lacks, Join, SegmentView, Stage};
use super::msg::TableMsg;
use super::replica::{ApplyJoin, Replica};
use super::store::{self, Chunks, Kind};
use super::tables::Tables;
use super::{Output, Reply, TableError};

/// A join to start again after a back-off.
#[derive(Debug)]
pub(crate) struct RetryJoin {
    /// When to start it.
    pub at: Instant,
    pub table: String,
    pub node: String,
    pub then: Completion,
    pub deadline: Instant,
    /// Attempts so far (the back-off doubles with each).
    pub attempt: u32,
}

impl Tables {
    pub(super) fn start_join(
        &mut self,
        now: Instant,
        table: &str,
        node: &str,
        then: Completion,
        deadline: Instant,
        attempt: u32,
    ) {
        let r = &self.replicas[table];
        if node == self.me || r.peers.contains(node) {
            self.join_done(table, node, then, Ok(()));
            return;
        }
        if self.down.contains(node) {
            let err = TableError::Join {
                table: table.to_string(),
                node: node.to_string(),
                reason: JoinFailure::Down,
            };
            self.join_done(table, node, then, Err(err));
            return;
        }
        let mut left: BTreeSet<String> = r.peers.clone();
        left.insert(self.me.clone());
        let mut asked = left.clone();
        asked.insert(node.to_string());
        let id = self.rng.gen();
        self.joins.insert(
            id,
            Join {
                table: table.to_string(),
                remote: node.to_string(),
                then,
                deadline,
                attempt,
                left,
                right: BTreeSet::new(),
                asked: asked.clone(),
                views: BTreeMap::new(),
                stage: Stage::Pausing,
                started: now,
                conflicts: 0,
            },
        );
        for n in asked {
            if n == self.me {
                // This node's own replica is locked at once; its `Paused` comes back as a
                // message to itself.
                let me = self.me.clone();
                self.with_replica(now, table, |r, fx| r.on_pause(now, fx, &me, id));
            } else {
                let msg = TableMsg::Pause {
                    table: table.to_string(),
                    join: id,
                };
                self.push_send(n, msg);
            }
        }
    }

    /// Runs `f` on this node's replica of `table`, then carries out its effects.
    fn with_replica(&mut self, now: Instant, table: &str, f: impl FnOnce(&mut Replica, &mut Fx)) {
        let mut fx = self.fx();
        if let Some(r) = self.replicas.get_mut(table) {
            f(r, &mut fx);
        }
        self.finish(now, fx);
    }

    fn join_done(
        &mut self,
        table: &str,
        node: &str,
        then: Completion,
        result: Result<(), TableError>,
    ) {
        match then {
            Completion::Merge => {
                if result.is_ok() {
                    self.remerges.remove(&(table.to_string(), node.to_string()));
                }
                self.push_output(Output::Merged {
                    table: table.to_string(),
                    node: node.to_string(),
                    result,
                });
            }
            other => self.complete(other, result.map(|_| Reply::Joined)),
        }
    }

    /// A replica is locked for join `id` and sent its view of its segment.
    pub(super) fn on_paused(
        &mut self,
        now: Instant,
        from: &str,
        id: u64,
        view: SegmentView,
        kind: Kind,
    ) {
        let Some(join) = self.joins.get_mut(&id) else {
            // A join we gave up on: release the replica.
            self.push_unpause_unknown(from, id);
            return;
        };
        let mine = self.replicas.get(&join.table).map(|r| r.spec.kind);
        if let Some(ours) = mine.filter(|m| *m != kind) {
            let reason = JoinFailure::KindMismatch {
                node: from.to_string(),
                theirs: kind,
                ours,
            };
            self.abort(now, id, reason);
            return;
        }
        if from == join.remote {
            join.right = view.segment.clone();
            let more: Vec<String> = view
                .segment
                .iter()
                .filter(|n| !join.asked.contains(*n))
                .cloned()
                .collect();
            if let Some(n) = view.segment.iter().find(|n| join.left.contains(*n)) {
                let reason = JoinFailure::Overlap(n.clone());
                join.views.insert(from.to_string(), view);
                self.abort(now, id, reason);
                return;
            }
            let table = join.table.clone();
            join.asked.extend(more.iter().cloned());
            for n in more {
                let msg = TableMsg::Pause {
                    table: table.clone(),
                    join: id,
                };
                self.push_send(n, msg);
            }
        }
        let Some(join) = self.joins.get_mut(&id) else {
            return;
        };
        join.views.insert(from.to_string(), view);
        if !join.all_paused() {
            return;
        }
        if let Some(reason) = join.check() {
            self.abort(now, id, reason);
            return;
        }
        // One snapshot per distinct digest; this node's own is read directly.
        let sources = join.snapshot_sources(&self.me);
        let table = join.table.clone();
        let mut from = BTreeMap::new();
        for rep in sources.into_values() {
            if rep == self.me {
                let own = self.replicas[&table].read().chunks(self.config.chunk_bytes);
                let total = store::count(&own);
                from.insert(rep, (own, Some(total)));
            } else {
                from.insert(rep.clone(), (Vec::new(), None));
                let msg = TableMsg::SnapshotRequest {
                    table: table.clone(),
                    join: id,
                };
                self.push_send(rep, msg);
            }
        }
        if let Some(j) = self.joins.get_mut(&id) {
            j.stage = Stage::Snapshot { from };
        }
        self.maybe_apply(now, id);
    }

    fn push_unpause_unknown(&mut self, to: &str, join: u64) {
        // Without the table name the replica matches on (coordinator, join) alone.
        for t in self.replicas.keys().cloned().collect::<Vec<_>>() {
            self.push_send(to.to_string(), TableMsg::Unpause { table: t, join });
        }
    }

    /// A snapshot source says it sent `total` records.
    pub(super) fn on_snapshot(&mut self, now: Instant, from: &str, id: u64, total: u64) {
        let Some(Stage::Snapshot { from: sources }) = self.joins.get_mut(&id).map(|j| &mut j.stage)
        else {
            return;
        };
        let Some((got, done @ None)) = sources.get_mut(from) else {
            return;
        };
        let arrived = store::count(got);
        if arrived != total {
            let reason = JoinFailure::SnapshotIncomplete {
                from: from.to_string(),
                arrived,
                total,
            };
            self.abort(now, id, reason);
            return;
        }
        *done = Some(total);
        self.maybe_apply(now, id);
    }

    /// Every snapshot is in: merge them and send every replica what it lacks.
    fn maybe_apply(&mut self, now: Instant, id: u64) {
        let Some(join) = self.joins.get_mut(&id) else {
            return;
        };
        let complete = matches!(&join.stage, Stage::Snapshot { from } if from.values().all(|(_, t)| t.is_some()));
        if !complete {
            return;
        }
        let Stage::Snapshot { from: sources } = std::mem::replace(
            &mut join.stage,
            Stage::Applying {
                waiting: BTreeSet::new(),
            },
        ) else {
            return;
        };
        let r = &self.replicas[&join.table];
        let kind = r.spec.kind;
        // Which snapshot stands for which replica: the source with the same digest.
        let source_of: BTreeMap<u64, String> = sources
            .keys()
            .map(|rep| (join.views[rep].digest, rep.clone()))
            .collect();
        let snapshots: BTreeMap<String, Chunks> = sources
            .into_iter()
            .map(|(rep, (records, _))| (rep, records))
            .collect();
        let (mut lacks, conflicts) = lacks(
            kind,
            r.spec.conflict.as_ref(),
            self.origin,
            self.config.chunk_bytes,
            snapshots,
        );
        // How many members each lack list still goes to: the last one takes it.
        let mut uses: BTreeMap<String, usize> = BTreeMap::new();
        let members: Vec<String> = join.left.union(&join.right).cloned().collect();
        let join_id: u64 = self.rng.gen();
        let table = join.table.clone();
        join.conflicts = conflicts;
        if let Stage::Applying { waiting } = &mut join.stage {
            waiting.extend(members.iter().cloned());
        }
        let digests: BTreeMap<String, u64> = join
            .views
            .iter()
            .map(|(n, v)| (n.clone(), v.digest))
            .collect();
        for n in &members {
            *uses.entry(source_of[&digests[n]].clone()).or_default() += 1;
        }
        let mut fx = self.fx();
        let mut own = None;
        for n in &members {
            let rep = &source_of[&digests[n]];
            let left = uses.get_mut(rep).expect("counted");
            *left -= 1;
            let records = if *left == 0 {
                lacks.remove(rep).unwrap_or_default()
            } else {
                lacks[rep].clone()
            };
            if *n == self.me {
                own = Some(records);
                continue;
            }
            let total = store::count(&records);
            fx.send_chunks(n, &table, id, records);
            fx.send(
                n,
                TableMsg::Apply {
                    table: table.clone(),
                    join: id,
                    total,
                    members: members.clone(),
                    join_id,
                },
            );
        }
        self.finish(now, fx);
        if let Some(chunks) = own {
            // This node's own replica applies at once; its `Applied` comes back as a message
            // to itself.
            let total = store::count(&chunks);
            let me = self.me.clone();
            let members: Vec<String> = members
                .into_iter()
                .filter(|m| !self.down.contains(m))
                .collect();
            self.with_replica(now, &table, |r, fx| {
                chunks.into_iter().for_each(|c| r.on_chunk(&me, id, c));
                let apply = ApplyJoin {
                    join: id,
                    total,
                    members,
                    join_id,
                };
                r.on_apply(now, fx, &me, apply);
            });
        }
    }

    pub(super) fn maybe_unpause(&mut self, now: Instant, id: u64) {
        let done = self
            .joins
            .get(&id)
            .is_some_and(|j| matches!(&j.stage, Stage::Applying { waiting } if waiting.is_empty()));
        if !done {
            return;
        }
        let join = self.joins.remove(&id).expect("present");
        self.release(now, &join, id);
        let took = now.saturating_duration_since(join.started);
        let stats = self.join_stats.entry(join.table.clone()).or_default();
        stats.joins += 1;
        stats.conflicts_resolved += join.conflicts;
        stats.last = Some((join.remote.clone(), now, took));
        self.push_output(Output::Joined {
            table: join.table.clone(),
            node: join.remote.clone(),
            took,
            conflicts: join.conflicts,
        });
        self.join_done(&join.table, &join.remote, join.then, Ok(()));
    }

    /// Unpauses every replica the join asked (this node's own at once).
    fn release(&mut self, now: Instant, join: &Join, id: u64) {
        for n in &join.asked {
            if *n == self.me {
                let me = self.me.clone();
                self.with_replica(now, &join.table, |r, fx| r.unlock(now, fx, &me, Some(id)));
            } else {
                let msg = TableMsg::Unpause {
                    table: join.table.clone(),
                    join: id,
                };
                self.push_send(n.clone(), msg);
            }
        }
    }

    /// Ends join `id` without joining: every replica is released; a transient failure is
    /// tried again after a back-off, an inconsistent view of the segments leads to secession.
    pub(super) fn abort(&mut self, now: Instant, id: u64, reason: JoinFailure) {
        let Some(join) = self.joins.remove(&id) else {
            return;
        };
        self.release(now, &join, id);
        if matches!(join.stage, Stage::Applying { .. }) {
            // Some replicas may have applied the join and others not: they would count each
            // other differently and ignore each other's writes. Everyone drops this replica
            // and re-merges bring the segments together again.
            let others: Vec<String> = join
                .asked
                .iter()
                .filter(|n| **n != self.me)
                .cloned()
                .collect();
            for n in others {
                let msg = TableMsg::Forget {
                    table: join.table.clone(),
                };
                self.push_send(n, msg);
            }
            self.secede(now, &join.table);
        }
        let backoff = Duration::from_millis(self.rng.gen_range(20..100) << join.attempt.min(5));
        if reason.is_transient() && now + backoff < join.deadline {
            // Try again later: re-merges come back through their schedule, callers' joins here.
            match join.then {
                Completion::Merge => {
                    let key = (join.table.clone(), join.remote.clone());
                    if let Some(m) = self.remerges.get_mut(&key) {
                        m.due = now + backoff + m.backoff / 2;
                    }
                    return;
                }
                then => {
                    self.delayed.push(RetryJoin {
                        at: now + backoff,
                        table: join.table,
                        node: join.remote,
                        then,
                        deadline: join.deadline,
                        attempt: join.attempt + 1,
                    });
                    return;
                }
            }
        }
        if reason.is_inconsistent() && join.then == Completion::Merge {
            // Replicas that count this one while it does not count them (it restarted, or
            // dropped them) must drop it too before a join can succeed.
            let listing: Vec<String> = join
                .views
                .iter()
                .filter(|(n, v)| **n != self.me && v.segment.contains(&self.me))
                .filter(|(n, _)| !self.replicas[&join.table].peers.contains(*n))
                .map(|(n, _)| n.clone())
                .collect();
            for n in listing {
                let msg = TableMsg::Forget {
                    table: join.table.clone(),
                };
                self.push_send(n, msg);
            }
            self.secede(now, &join.table);
        }
        let err = TableError::Join {
            table: join.table.clone(),
            node: join.remote.clone(),
            reason,
        };
        self.join_done(&join.table, &join.remote, join.then, Err(err));
    }

    /// `node` went down or left: joins that asked it move on (applied joins stop waiting for
    /// it, others abort).
    pub(super) fn joins_without(&mut self, now: Instant, node: &str) {
        let joins: Vec<u64> = self.joins.keys().copied().collect();
        for j in joins {
            let Some(join) = self.joins.get_mut(&j) else {
                continue;
            };
            if !join.asked.contains(node) && join.remote != node {
                continue;
            }
            if let Stage::Applying { waiting } = &mut join.stage {
                waiting.remove(node);
                self.maybe_unpause(now, j);
            } else {
                self.abort(now, j, JoinFailure::ReplicaDown(node.to_string()));
            }
        }
    }

    /// Joins due again after a back-off start; joins past their deadline abort.
    pub(super) fn tick_joins(&mut self, now: Instant) {
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|d| now >= d.at);
        self.delayed = later;
        for d in ready {
            if self.replicas.contains_key(&d.table) {
                self.start_join(now, &d.table, &d.node, d.then, d.deadline, d.attempt);
            }
        }
        let late: Vec<u64> = self
            .joins
            .iter()
            .filter(|(_, j)| now >= j.deadline)
            .map(|(id, _)| *id)
            .collect();
        for j in late {
            self.abort(now, j, JoinFailure::Deadline);
        }
    }
}
