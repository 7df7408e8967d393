//! [`Tables`]: this node's replicas, the joins it coordinates and the leader calls it waits on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::join::{lacks, Join, Stage};
use super::msg::{LeaderOp, LeaderResult, TableMsg};
use super::replica::{check_limits, Replica};
use super::store::{self, Chunks, Kind, Store};
use super::{
    origin_of, Call, Completion, Fx, Output, Remerge, Reply, TableConfig, TableError, TableInfo,
    TableSpec, WriteOp,
};

/// The replicated tables of one node.
pub struct Tables {
    me: String,
    origin: u64,
    config: TableConfig,
    replicas: BTreeMap<String, Replica>,
    connected: BTreeSet<String>,
    /// Members seen down (or left) and not up since: a join's `Apply` that still lists one
    /// (decided before the verdict reached us) must not make it a peer again, or writes would
    /// wait for its ack for ever.
    down: BTreeSet<String>,
    joins: BTreeMap<u64, Join>,
    calls: BTreeMap<u64, Call>,
    remerges: BTreeMap<(String, String), Remerge>,
    next_call: u64,
    rng: SmallRng,
    outputs: VecDeque<Output>,
    /// Joins to start again after a back-off: (when, table, node, completion, deadline, attempt).
    delayed: Vec<(Instant, String, String, Completion, Instant, u32)>,
    /// Tables with writes made here that are sent but not applied here yet.
    unsettled: BTreeSet<String>,
    /// The latest time seen, and the last tick.
    clock: Option<Instant>,
    last_tick: Option<Instant>,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("me", &self.me)
            .field("replicas", &self.replicas)
            .field("joins", &self.joins.len())
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// How often a busy table protocol wants a tick.
const TICK: Duration = Duration::from_millis(100);

impl Tables {
    /// No tables yet, for the node `me`.
    pub fn new(me: String, config: TableConfig, rng_seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(rng_seed);
        Tables {
            // Call ids start at random, so that a restarted node's calls are not mistaken for
            // its earlier ones (the leader answers a repeated id from its memory).
            next_call: rng.gen(),
            origin: origin_of(&me),
            me,
            config,
            replicas: BTreeMap::new(),
            connected: BTreeSet::new(),
            down: BTreeSet::new(),
            joins: BTreeMap::new(),
            calls: BTreeMap::new(),
            remerges: BTreeMap::new(),
            rng,
            outputs: VecDeque::new(),
            delayed: Vec::new(),
            unsettled: BTreeSet::new(),
            clock: None,
            last_tick: None,
        }
    }

    fn see(&mut self, now: Instant) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
    }

    /// Every input that may read or change a replica's records starts here: the writes
    /// [`Tables::write`] left unapplied are applied first. (`pause` and `peer_gone` touch no
    /// records.)
    fn enter(&mut self, now: Instant) {
        self.see(now);
        self.settle(now);
    }

    /// Applies here the writes made here that [`Tables::write`] sent but left unapplied, so
    /// that a runtime can hand their sends to its connections first and apply them here while
    /// the peers do. Every other input does this first; until then, local reads do not show
    /// them (their writes have not completed: they complete with the peers' acks).
    pub fn settle(&mut self, now: Instant) {
        if self.unsettled.is_empty() {
            return;
        }
        self.see(now);
        let mut fx = self.fx();
        for table in std::mem::take(&mut self.unsettled) {
            if let Some(r) = self.replicas.get_mut(&table) {
                r.settle(now, &mut fx);
            }
        }
        self.finish(now, fx);
    }

    /// Whether writes made here wait for [`Tables::settle`].
    pub fn unsettled(&self) -> bool {
        !self.unsettled.is_empty()
    }

    fn fx(&self) -> Fx {
        Fx {
            me: self.me.clone(),
            origin: self.origin,
            config: self.config.clone(),
            sends: Vec::new(),
            outs: Vec::new(),
            done: Vec::new(),
            diverged: Vec::new(),
            unsettled: Vec::new(),
        }
    }

    /// Creates the local replica of `table` (or opens it again with the same kind) and returns
    /// its records, shared for local reads. Connected nodes are told, and re-merges with the
    /// ones that host it follow.
    pub fn create(
        &mut self,
        table: &str,
        spec: TableSpec,
    ) -> Result<Arc<RwLock<Store>>, TableError> {
        if spec.kind == Kind::Bag && spec.conflict.is_some() {
            return Err(TableError::BagWithConflictHandler(table.to_string()));
        }
        if let Some(r) = self.replicas.get(table) {
            if r.spec.kind != spec.kind {
                return Err(TableError::KindMismatch {
                    table: table.to_string(),
                    existing: r.spec.kind,
                });
            }
            return Ok(r.store.clone());
        }
        let join_id = self.rng.gen();
        let r = Replica::new(table.to_string(), spec, join_id);
        let store = r.store.clone();
        self.replicas.insert(table.to_string(), r);
        for p in self.connected.clone() {
            self.push_send(
                p,
                TableMsg::Hosted {
                    tables: vec![table.to_string()],
                },
            );
        }
        Ok(store)
    }

    /// The tables hosted here.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.replicas.keys().map(String::as_str)
    }

    /// A replica's records, shared for local reads.
    pub fn store(&self, table: &str) -> Option<Arc<RwLock<Store>>> {
        self.replicas.get(table).map(|r| r.store.clone())
    }

    /// The state of a replica. Its size and memory count the writes made here once they are
    /// applied: call [`Tables::settle`] first to count the ones left for it.
    pub fn info(&self, table: &str) -> Option<TableInfo> {
        let r = self.replicas.get(table)?;
        let store = r.read();
        let mut members: Vec<String> = r.peers.iter().cloned().collect();
        members.push(self.me.clone());
        members.sort();
        Some(TableInfo {
            name: r.name.clone(),
            kind: r.spec.kind,
            leader: r.leader(&self.me).to_string(),
            members,
            size: store.len(),
            memory: store.memory(),
            join_id: r.join_id,
            down_history: r.down_history.clone(),
            paused: r.paused(),
        })
    }

    /// Applies `ops` here and sends them to every replica; `Done { token }` follows when every
    /// replica acked or went down. While the replica is paused the write waits, in order. A
    /// large write to a replica with peers is applied here by [`Tables::settle`], after its
    /// sends.
    pub fn write(
        &mut self,
        now: Instant,
        table: &str,
        token: u64,
        ops: Vec<WriteOp>,
    ) -> Result<(), TableError> {
        self.enter(now);
        let config = &self.config;
        let r = self
            .replicas
            .get_mut(table)
            .ok_or_else(|| TableError::Unknown(table.to_string()))?;
        check_limits(table, &r.spec, config, &r.read(), &ops)?;
        let mut fx = self.fx();
        let r = self.replicas.get_mut(table).expect("checked");
        r.write(now, &mut fx, ops, Completion::Token(token), true);
        self.finish(now, fx);
        Ok(())
    }

    /// Sends a leader operation to the table's leader; `Done { token }` follows with
    /// [`Reply::Leader`], retried with back-off across leader changes until `deadline`.
    pub fn leader(
        &mut self,
        now: Instant,
        table: &str,
        token: u64,
        op: LeaderOp,
        deadline: Instant,
    ) -> Result<(), TableError> {
        self.enter(now);
        let r = self
            .replicas
            .get(table)
            .ok_or_else(|| TableError::Unknown(table.to_string()))?;
        if let LeaderOp::InsertNew { key, value } | LeaderOp::InsertNewOrLookup { key, value } = &op
        {
            check_limits(
                table,
                &r.spec,
                &self.config,
                &r.read(),
                &[WriteOp::Insert(key.clone(), value.clone())],
            )?;
        }
        let id = self.next_call();
        self.calls.insert(
            id,
            Call::Leader {
                table: table.to_string(),
                op,
                token,
                deadline,
                attempts: 0,
                retry_at: now,
            },
        );
        self.retry_call(now, id);
        Ok(())
    }

    /// Pings every replica of the table; `Done { token }` follows with [`Reply::Pinged`] when
    /// each answered (so each has applied every write made here before) or went down.
    pub fn ping_all(
        &mut self,
        now: Instant,
        table: &str,
        token: u64,
        deadline: Instant,
    ) -> Result<(), TableError> {
        self.enter(now);
        let r = self
            .replicas
            .get(table)
            .ok_or_else(|| TableError::Unknown(table.to_string()))?;
        let waiting = r.peers.clone();
        if waiting.is_empty() {
            self.outputs.push_back(Output::Done {
                token,
                result: Ok(Reply::Pinged),
            });
            return Ok(());
        }
        let before = r.next_write();
        let id = self.next_call();
        for p in &waiting {
            self.push_send(
                p.clone(),
                TableMsg::Ping {
                    table: table.to_string(),
                    id,
                },
            );
        }
        self.calls.insert(
            id,
            Call::Ping {
                token,
                deadline,
                waiting,
                table: table.to_string(),
                before,
            },
        );
        Ok(())
    }

    /// Pauses local writes (they wait, in order) until [`Tables::unpause`] with the same
    /// `pause` number.
    pub fn pause(&mut self, table: &str, pause: u64) -> Result<(), TableError> {
        let r = self
            .replicas
            .get_mut(table)
            .ok_or_else(|| TableError::Unknown(table.to_string()))?;
        r.pauses.insert(pause);
        Ok(())
    }

    /// Ends a [`Tables::pause`]; queued writes run when no pause is left.
    pub fn unpause(&mut self, now: Instant, table: &str, pause: u64) {
        self.enter(now);
        let mut fx = self.fx();
        if let Some(r) = self.replicas.get_mut(table) {
            if r.pauses.remove(&pause) {
                r.replay(now, &mut fx);
            }
        }
        self.finish(now, fx);
    }

    /// Joins the local segment of `table` with `node`'s; `Done { token }` follows with
    /// [`Reply::Joined`] or the reason it failed.
    pub fn join(
        &mut self,
        now: Instant,
        table: &str,
        node: &str,
        token: u64,
        deadline: Instant,
    ) -> Result<(), TableError> {
        self.enter(now);
        if !self.replicas.contains_key(table) {
            return Err(TableError::Unknown(table.to_string()));
        }
        self.start_join(now, table, node, Completion::Token(token), deadline, 0);
        Ok(())
    }

    fn next_call(&mut self) -> u64 {
        self.next_call = self.next_call.wrapping_add(1);
        self.next_call
    }

    /// A connection to `peer` opened: tell it our tables and send it what it has not acked.
    pub fn peer_up(&mut self, now: Instant, peer: &str) {
        self.enter(now);
        self.connected.insert(peer.to_string());
        if !self.replicas.is_empty() {
            let tables = self.replicas.keys().cloned().collect();
            self.push_send(peer.to_string(), TableMsg::Hosted { tables });
        }
        let mut fx = self.fx();
        for r in self.replicas.values_mut() {
            r.resend(now, &mut fx, peer, true);
        }
        self.finish(now, fx);
    }

    /// `node` is up (again): if connected, it hears our tables, so that segments split while
    /// it was down re-merge.
    pub fn member_up(&mut self, now: Instant, node: &str) {
        self.enter(now);
        self.down.remove(node);
        if self.connected.contains(node) && !self.replicas.is_empty() {
            let tables = self.replicas.keys().cloned().collect();
            self.push_send(node.to_string(), TableMsg::Hosted { tables });
        }
    }

    /// The connection to `peer` closed (the member may still be up).
    pub fn peer_gone(&mut self, peer: &str) {
        self.connected.remove(peer);
    }

    /// `node` went down or left: it is out of every segment, and joins and calls that need it
    /// move on.
    pub fn member_down(&mut self, now: Instant, node: &str) {
        self.enter(now);
        self.down.insert(node.to_string());
        let mut fx = self.fx();
        for r in self.replicas.values_mut() {
            if r.peers.contains(node) {
                r.remove_peer(now, &mut fx, node, Some(now));
            }
            r.unlock(now, &mut fx, node, None);
        }
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            let retry = self.config.leader_retry / 4;
            match self.calls.get_mut(&id) {
                Some(Call::Ping { waiting, .. }) => {
                    waiting.remove(node);
                }
                Some(Call::Leader {
                    table, retry_at, ..
                }) => {
                    let leader = self
                        .replicas
                        .get(table.as_str())
                        .map(|r| r.leader(&self.me));
                    if leader.is_some() {
                        *retry_at = (*retry_at).min(now + retry);
                    }
                }
                None => {}
            }
        }
        self.finish(now, fx);
        self.complete_pings();
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
                self.abort(now, j, format!("replica {node} went down"), false);
            }
        }
    }

    /// A message from the member `from`.
    pub fn handle_message(&mut self, now: Instant, from: &str, msg: TableMsg) {
        self.enter(now);
        let mut queue = VecDeque::from([(from.to_string(), msg)]);
        while let Some((from, msg)) = queue.pop_front() {
            self.on_message(now, &from, msg);
            // Messages to ourselves are handled here, in order.
            let mut rest = VecDeque::new();
            while let Some(o) = self.outputs.pop_front() {
                match o {
                    Output::Send { to, msg } if to == self.me => {
                        queue.push_back((self.me.clone(), msg))
                    }
                    other => rest.push_back(other),
                }
            }
            self.outputs = rest;
        }
    }

    fn on_message(&mut self, now: Instant, from: &str, msg: TableMsg) {
        let mut fx = self.fx();
        match msg {
            TableMsg::Hosted { tables } => {
                for t in tables {
                    self.consider_remerge(now, &t, from);
                }
            }
            TableMsg::Ops {
                table,
                join_id,
                seq,
                ops,
            } => match self.replicas.get_mut(&table) {
                Some(r) => r.on_ops(now, &mut fx, from, join_id, seq, ops),
                None => fx.send(from, TableMsg::NotHosted { table }),
            },
            TableMsg::Ack { table, seq } => {
                if let Some(r) = self.replicas.get_mut(&table) {
                    r.on_ack(now, &mut fx, from, seq);
                }
            }
            TableMsg::NotHosted { table } => {
                if let Some(r) = self.replicas.get_mut(&table) {
                    r.not_hosted(now, &mut fx, from);
                }
                for (j, join) in &self.joins {
                    if join.table == table && join.asked.contains(from) {
                        let j = *j;
                        self.finish(now, fx);
                        self.abort(now, j, format!("{from} does not host the table"), false);
                        return;
                    }
                }
            }
            TableMsg::LeaderRequest { table, id, op } => match self.replicas.get_mut(&table) {
                Some(r) => r.on_leader(now, &mut fx, from, id, op),
                None => fx.send(from, TableMsg::NotHosted { table }),
            },
            TableMsg::LeaderReply { id, result, .. } => self.on_leader_reply(now, id, result),
            TableMsg::Ping { table, id } => fx.send(from, TableMsg::Pong { table, id }),
            TableMsg::Pong { id, .. } => {
                if let Some(Call::Ping { waiting, .. }) = self.calls.get_mut(&id) {
                    waiting.remove(from);
                }
                self.complete_pings();
            }
            TableMsg::Pause { table, join } => match self.replicas.get_mut(&table) {
                Some(r) => r.on_pause(now, &mut fx, from, join),
                None => fx.send(from, TableMsg::NotHosted { table }),
            },
            TableMsg::Paused {
                join,
                peers,
                join_id,
                digest,
                kind,
                ..
            } => {
                self.finish(now, fx);
                self.on_paused(now, from, join, peers, (join_id, digest, kind));
                return;
            }
            TableMsg::Refused { join, reason, .. } => {
                if self.joins.contains_key(&join) {
                    let retry = reason.starts_with("busy");
                    self.finish(now, fx);
                    self.abort(now, join, format!("{from}: {reason}"), retry);
                    return;
                }
            }
            TableMsg::SnapshotRequest { table, join } => {
                if let Some(r) = self.replicas.get(&table) {
                    r.on_snapshot_request(&mut fx, from, join);
                }
            }
            TableMsg::Chunk {
                table,
                join,
                records,
            } => {
                let source = match self.joins.get_mut(&join).map(|j| &mut j.stage) {
                    Some(Stage::Snapshot { from: sources }) if from != self.me => {
                        sources.get_mut(from)
                    }
                    _ => None,
                };
                if let Some((got, None)) = source {
                    got.push(records);
                } else if let Some(r) = self.replicas.get_mut(&table) {
                    r.on_chunk(from, join, records);
                }
            }
            TableMsg::SnapshotEnd { join, total, .. } => {
                self.finish(now, fx);
                self.on_snapshot(now, from, join, total);
                return;
            }
            TableMsg::Apply {
                table,
                join,
                total,
                members,
                join_id,
            } => {
                if let Some(r) = self.replicas.get_mut(&table) {
                    let members = members
                        .into_iter()
                        .filter(|m| !self.down.contains(m))
                        .collect();
                    r.on_apply(now, &mut fx, (from, join), (total, members, join_id));
                }
            }
            TableMsg::Applied { join, .. } => {
                if let Some(Stage::Applying { waiting }) =
                    self.joins.get_mut(&join).map(|j| &mut j.stage)
                {
                    waiting.remove(from);
                }
                self.finish(now, fx);
                self.maybe_unpause(now, join);
                return;
            }
            TableMsg::Forget { table } => {
                if let Some(r) = self.replicas.get_mut(&table) {
                    r.remove_peer(now, &mut fx, from, None);
                }
                self.finish(now, fx);
                self.consider_remerge(now, &table, from);
                return;
            }
            TableMsg::Unpause { table, join } => {
                if let Some(r) = self.replicas.get_mut(&table) {
                    r.unlock(now, &mut fx, from, Some(join));
                }
            }
        }
        self.finish(now, fx);
    }

    /// Time passed: retransmissions, expired locks, retries, deadlines, re-merges.
    pub fn tick(&mut self, now: Instant) {
        self.enter(now);
        self.last_tick = Some(now);
        let mut fx = self.fx();
        let ttl = self.config.tombstone_ttl;
        for r in self.replicas.values_mut() {
            r.resend_all_due(now, &mut fx);
            r.expire_lock(now, &mut fx);
            r.store
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .collect_tombstones(now, ttl);
        }
        self.finish(now, fx);
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            match self.calls.get(&id) {
                Some(Call::Leader {
                    deadline, retry_at, ..
                }) if now >= *retry_at || now >= *deadline => self.retry_call(now, id),
                Some(Call::Ping {
                    deadline,
                    token,
                    waiting,
                    table,
                    before,
                }) if now >= *deadline => {
                    let mut late = waiting.clone();
                    if let Some(r) = self.replicas.get(table) {
                        late.extend(r.lagging(*before));
                    }
                    let result = Err(TableError::Timeout(late.into_iter().collect()));
                    self.outputs.push_back(Output::Done {
                        token: *token,
                        result,
                    });
                    self.calls.remove(&id);
                }
                _ => {}
            }
        }
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|d| now >= d.0);
        self.delayed = later;
        for (_, table, node, then, deadline, attempt) in ready {
            if self.replicas.contains_key(&table) {
                self.start_join(now, &table, &node, then, deadline, attempt);
            }
        }
        let late: Vec<u64> = self
            .joins
            .iter()
            .filter(|(_, j)| now >= j.deadline)
            .map(|(id, _)| *id)
            .collect();
        for j in late {
            self.abort(now, j, "deadline passed".into(), false);
        }
        let due: Vec<(String, String)> = self
            .remerges
            .iter()
            .filter(|(_, m)| now >= m.due)
            .map(|(k, _)| k.clone())
            .collect();
        for (table, node) in due {
            let wanted = self.connected.contains(&node)
                && self
                    .replicas
                    .get(&table)
                    .is_some_and(|r| !r.peers.contains(&node));
            let running = self.joins.values().any(|j| j.table == table);
            if !wanted {
                self.remerges.remove(&(table, node));
            } else if running {
                // One join per table at a time: look again later.
                if let Some(m) = self.remerges.get_mut(&(table, node)) {
                    m.due = now + TICK;
                }
            } else {
                let deadline = now + self.config.merge_timeout;
                let m = self
                    .remerges
                    .get_mut(&(table.clone(), node.clone()))
                    .expect("due");
                m.due = now + m.backoff;
                m.backoff = (m.backoff * 2).min(Duration::from_secs(30));
                self.start_join(now, &table, &node, Completion::Merge, deadline, 0);
            }
        }
    }

    /// When [`Tables::tick`] is next wanted.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let busy = !self.replicas.is_empty()
            || !self.calls.is_empty()
            || !self.joins.is_empty()
            || !self.delayed.is_empty();
        if !busy {
            return None;
        }
        // Writes left for `settle` are applied by the next input at the latest: make it now.
        if self.unsettled() {
            return self.clock;
        }
        let tick = match self.last_tick {
            Some(t) => t + TICK,
            None => self.clock?,
        };
        // Re-merges and retried joins start when due, not at the next periodic tick.
        let due = self
            .remerges
            .values()
            .map(|m| m.due)
            .chain(self.delayed.iter().map(|d| d.0))
            .min();
        Some(due.map_or(tick, |d| d.min(tick)))
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            match self.outputs.pop_front()? {
                // A message to ourselves made outside `handle_message` (a replayed leader
                // request's answer, say) is handled here rather than sent to nobody.
                Output::Send { to, msg } if to == self.me && self.clock.is_some() => {
                    let now = self.clock.expect("checked");
                    let me = self.me.clone();
                    self.handle_message(now, &me, msg);
                }
                other => return Some(other),
            }
        }
    }

    // ---- internals ----

    fn push_send(&mut self, to: String, msg: TableMsg) {
        self.outputs.push_back(Output::Send { to, msg });
    }

    /// Moves effects to outputs, completing operations.
    fn finish(&mut self, now: Instant, fx: Fx) {
        self.unsettled.extend(fx.unsettled);
        for (to, msg) in fx.sends {
            self.outputs.push_back(Output::Send { to, msg });
        }
        self.outputs.extend(fx.outs);
        let wrote = !fx.done.is_empty();
        for (then, result) in fx.done {
            self.complete(then, result);
        }
        if wrote {
            self.complete_pings();
        }
        for (table, node) in fx.diverged {
            self.consider_remerge(now, &table, &node);
        }
    }

    fn complete(&mut self, then: Completion, result: Result<Reply, TableError>) {
        match then {
            Completion::Token(token) => self.outputs.push_back(Output::Done { token, result }),
            Completion::LeaderReply { table, to, id } => {
                // A write the leader made for a request: answer it, and remember the answer
                // in case the request comes again.
                let result = match result {
                    Ok(_) | Err(TableError::NotHosted { .. }) => LeaderResult::Inserted,
                    Err(_) => LeaderResult::NotLeader,
                };
                if let Some(r) = self.replicas.get_mut(&table) {
                    r.remember((to.clone(), id), result.clone());
                }
                self.outputs.push_back(Output::Send {
                    to,
                    msg: TableMsg::LeaderReply { table, id, result },
                });
            }
            Completion::Merge => {}
        }
    }

    fn complete_pings(&mut self) {
        // Done when every replica answered and every write made here before the ping was
        // acked (or its replica went down): a write beyond the window, or one lost and sent
        // again, may arrive after the answer.
        let replicas = &self.replicas;
        let done: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| match c {
                Call::Ping {
                    waiting,
                    table,
                    before,
                    ..
                } => {
                    waiting.is_empty()
                        && !replicas
                            .get(table)
                            .is_some_and(|r| r.writes_pending_before(*before))
                }
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(Call::Ping { token, .. }) = self.calls.remove(&id) {
                self.outputs.push_back(Output::Done {
                    token,
                    result: Ok(Reply::Pinged),
                });
            }
        }
    }

    /// Sends (again) a leader call to the current leader, or fails it past its deadline.
    fn retry_call(&mut self, now: Instant, id: u64) {
        let retry = self.config.leader_retry;
        let Some(Call::Leader {
            table,
            op,
            token,
            deadline,
            attempts,
            retry_at,
        }) = self.calls.get_mut(&id)
        else {
            return;
        };
        let leader = self
            .replicas
            .get(table.as_str())
            .map(|r| r.leader(&self.me).to_string());
        let (Some(leader), true) = (leader, now < *deadline) else {
            let result = Err(TableError::LeaderUnavailable {
                table: table.clone(),
                attempts: *attempts,
            });
            let token = *token;
            self.calls.remove(&id);
            self.outputs.push_back(Output::Done { token, result });
            return;
        };
        *attempts += 1;
        *retry_at = now + retry;
        let msg = TableMsg::LeaderRequest {
            table: table.clone(),
            id,
            op: op.clone(),
        };
        if leader == self.me {
            self.handle_message(now, &self.me.clone(), msg);
        } else {
            self.push_send(leader, msg);
        }
    }

    fn on_leader_reply(&mut self, now: Instant, id: u64, result: LeaderResult) {
        let Some(Call::Leader {
            token,
            attempts,
            retry_at,
            ..
        }) = self.calls.get_mut(&id)
        else {
            return;
        };
        if result == LeaderResult::NotLeader {
            // The leader is changing: ask again after a back-off.
            let backoff = Duration::from_millis(20 << (*attempts).min(6));
            *retry_at = now + backoff;
            return;
        }
        let token = *token;
        self.calls.remove(&id);
        self.outputs.push_back(Output::Done {
            token,
            result: Ok(Reply::Leader(result)),
        });
    }

    fn consider_remerge(&mut self, now: Instant, table: &str, node: &str) {
        let Some(r) = self.replicas.get(table) else {
            return;
        };
        if r.peers.contains(node) || node == self.me {
            return;
        }
        // Usually one join per pair of segments: the lower-named segment leader starts it at
        // once, the other leader a little later, other replicas only if both leaders failed
        // (they may not reach each other in a partial partition).
        let delay = self.config.merge_delay;
        let jitter = Duration::from_millis(self.rng.gen_range(0..200));
        let wait = match (r.leader(&self.me) == self.me, self.me.as_str() < node) {
            (true, true) => jitter / 40,
            (true, false) => delay + jitter,
            (false, _) => delay * 3 + jitter,
        };
        self.remerges
            .entry((table.to_string(), node.to_string()))
            .or_insert(Remerge {
                due: now + wait,
                backoff: Duration::from_secs(1),
            });
    }

    fn start_join(
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
                reason: "it is down".to_string(),
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
            },
        );
        for n in asked {
            let msg = TableMsg::Pause {
                table: table.to_string(),
                join: id,
            };
            if n == self.me {
                self.handle_message(now, &self.me.clone(), msg);
            } else {
                self.push_send(n, msg);
            }
        }
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
                self.outputs.push_back(Output::Merged {
                    table: table.to_string(),
                    node: node.to_string(),
                    result,
                });
            }
            other => self.complete(other, result.map(|_| Reply::Joined)),
        }
    }

    fn on_paused(
        &mut self,
        now: Instant,
        from: &str,
        id: u64,
        peers: Vec<String>,
        (join_id, digest, kind): (u64, u64, Kind),
    ) {
        let Some(join) = self.joins.get_mut(&id) else {
            // A join we gave up on: release the replica.
            self.push_unpause_unknown(from, id);
            return;
        };
        let mine = self.replicas.get(&join.table).map(|r| r.spec.kind);
        if mine.is_some_and(|m| m != kind) {
            let reason = format!(
                "the table is a {} on {} and a {} here: open it with the same kind everywhere",
                kind.as_str(),
                from,
                mine.map_or("?", Kind::as_str)
            );
            self.abort(now, id, reason, false);
            return;
        }
        let mut segment: BTreeSet<String> = peers.into_iter().collect();
        segment.insert(from.to_string());
        if from == join.remote {
            join.right = segment.clone();
            let more: Vec<String> = segment
                .iter()
                .filter(|n| !join.asked.contains(*n))
                .cloned()
                .collect();
            if let Some(n) = segment.iter().find(|n| join.left.contains(*n)) {
                let reason = format!("segments overlap: {n} is in both");
                join.views
                    .insert(from.to_string(), (segment, join_id, digest));
                self.abort(now, id, reason, false);
                return;
            }
            for n in more {
                join.asked.insert(n.clone());
                let msg = TableMsg::Pause {
                    table: join.table.clone(),
                    join: id,
                };
                self.outputs.push_back(Output::Send { to: n, msg });
            }
        }
        join.views
            .insert(from.to_string(), (segment, join_id, digest));
        if !join.all_paused() {
            return;
        }
        if let Some(reason) = join.check() {
            self.abort(now, id, reason, false);
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

    fn on_snapshot(&mut self, now: Instant, from: &str, id: u64, total: u64) {
        let Some(Stage::Snapshot { from: sources }) = self.joins.get_mut(&id).map(|j| &mut j.stage)
        else {
            return;
        };
        let Some((got, done @ None)) = sources.get_mut(from) else {
            return;
        };
        let arrived = store::count(got);
        if arrived != total {
            let reason = format!("{arrived} of {total} snapshot records arrived from {from}");
            self.abort(now, id, reason, true);
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
            .map(|rep| (join.views[rep].2, rep.clone()))
            .collect();
        let snapshots: BTreeMap<String, Chunks> = sources
            .into_iter()
            .map(|(rep, (records, _))| (rep, records))
            .collect();
        let mut lacks = lacks(
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
        if let Stage::Applying { waiting } = &mut join.stage {
            waiting.extend(members.iter().cloned());
        }
        let digests: BTreeMap<String, u64> =
            join.views.iter().map(|(n, v)| (n.clone(), v.2)).collect();
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
            let total = store::count(&chunks);
            let me = self.me.clone();
            if let Some(r) = self.replicas.get_mut(&table) {
                chunks.into_iter().for_each(|c| r.on_chunk(&me, id, c));
            }
            let msg = TableMsg::Apply {
                table,
                join: id,
                total,
                members,
                join_id,
            };
            self.handle_message(now, &me, msg);
        }
    }

    fn maybe_unpause(&mut self, now: Instant, id: u64) {
        let done = self
            .joins
            .get(&id)
            .is_some_and(|j| matches!(&j.stage, Stage::Applying { waiting } if waiting.is_empty()));
        if !done {
            return;
        }
        let join = self.joins.remove(&id).expect("present");
        self.release(now, &join, id);
        self.join_done(&join.table, &join.remote, join.then, Ok(()));
    }

    /// Unpauses every replica the join asked.
    fn release(&mut self, now: Instant, join: &Join, id: u64) {
        for n in &join.asked {
            let msg = TableMsg::Unpause {
                table: join.table.clone(),
                join: id,
            };
            if *n == self.me {
                self.handle_message(now, &self.me.clone(), msg);
            } else {
                self.push_send(n.clone(), msg);
            }
        }
    }

    fn abort(&mut self, now: Instant, id: u64, reason: String, retry: bool) {
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
        if retry && now + backoff < join.deadline {
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
                    self.retry_join_later(
                        now + backoff,
                        join.table,
                        join.remote,
                        then,
                        join.deadline,
                        join.attempt + 1,
                    );
                    return;
                }
            }
        }
        let inconsistent =
            reason.starts_with("segments overlap") || reason.starts_with("replicas disagree");
        if inconsistent && join.then == Completion::Merge {
            // Replicas that count this one while it does not count them (it restarted, or
            // dropped them) must drop it too before a join can succeed.
            let listing: Vec<String> = join
                .views
                .iter()
                .filter(|(n, (segment, _, _))| **n != self.me && segment.contains(&self.me))
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

    /// Leaves this replica's segment: the replicas' views of it disagree (a partial partition
    /// left some replicas dropping others). Everyone drops this replica, and re-merges bring it
    /// back with its records, so views converge one secession at a time.
    fn secede(&mut self, now: Instant, table: &str) {
        let join_id = self.rng.gen();
        let mut fx = self.fx();
        let Some(r) = self.replicas.get_mut(table) else {
            return;
        };
        let peers: Vec<String> = r.peers.iter().cloned().collect();
        for p in &peers {
            fx.send(
                p,
                TableMsg::Forget {
                    table: table.to_string(),
                },
            );
            r.remove_peer(now, &mut fx, p, None);
        }
        r.set_join_id(join_id);
        self.finish(now, fx);
        for p in peers {
            self.consider_remerge(now, table, &p);
        }
    }

    fn retry_join_later(
        &mut self,
        at: Instant,
        table: String,
        node: String,
        then: Completion,
        deadline: Instant,
        attempt: u32,
    ) {
        self.delayed
            .push((at, table, node, then, deadline, attempt));
    }
}
