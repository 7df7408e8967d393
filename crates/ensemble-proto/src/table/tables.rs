//! [`Tables`]: this node's replicas, and what each input does to them. Messages from replicas
//! are in `dispatch`, the joins this node coordinates in `coordinator`, re-merges in
//! `remerge`, leader calls and pings in `calls`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::calls::Call;
use super::coordinator::RetryJoin;
use super::effects::{Completion, Fx};
use super::join::Join;
use super::msg::{LeaderResult, TableMsg};
use super::remerge::Remerge;
use super::replica::{check_limits, Replica};
use super::store::{Kind, Store};
use super::{
    origin_of, Input, JoinStats, Output, Reply, TableConfig, TableError, TableInfo, TableSpec,
    WriteOp,
};

/// The replicated tables of one node.
pub struct Tables {
    pub(super) me: String,
    pub(super) origin: u64,
    pub(super) config: TableConfig,
    pub(super) replicas: BTreeMap<String, Replica>,
    pub(super) connected: BTreeSet<String>,
    /// Members seen down (or left) and not up since: a join's `Apply` that still lists one
    /// (decided before the verdict reached us) must not make it a peer again, or writes would
    /// wait for its ack for ever.
    pub(super) down: BTreeSet<String>,
    pub(super) joins: BTreeMap<u64, Join>,
    pub(super) calls: BTreeMap<u64, Call>,
    pub(super) remerges: BTreeMap<(String, String), Remerge>,
    next_call: u64,
    pub(super) rng: SmallRng,
    outputs: VecDeque<Output>,
    /// Messages this node sends itself (its own replica in a join it coordinates, a leader
    /// call to itself): handled in order before the input that sent them returns.
    local: VecDeque<TableMsg>,
    /// Joins to start again after a back-off.
    pub(super) delayed: Vec<RetryJoin>,
    /// The joins this node coordinated, per table.
    pub(super) join_stats: BTreeMap<String, JoinStats>,
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
pub(super) const TICK: Duration = Duration::from_millis(100);

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
            local: VecDeque::new(),
            delayed: Vec::new(),
            join_stats: BTreeMap::new(),
            unsettled: BTreeSet::new(),
            clock: None,
            last_tick: None,
        }
    }

    /// Feeds one input; see [`Input`] for what each does and answers.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            // Create, Pause and PeerGone touch no records and leave the clock alone.
            Input::Create { token, table, spec } => {
                let result = self.create(&table, spec).map(|()| Reply::Created);
                self.outputs.push_back(Output::Done { token, result });
            }
            Input::Write { token, table, ops } => {
                self.enter(now);
                if let Err(e) = self.write(now, &table, token, ops) {
                    self.refuse(token, e);
                }
            }
            Input::Leader {
                token,
                table,
                op,
                deadline,
            } => {
                self.enter(now);
                if let Err(e) = self.leader(now, &table, token, op, deadline) {
                    self.refuse(token, e);
                }
            }
            Input::PingAll {
                token,
                table,
                deadline,
            } => {
                self.enter(now);
                if let Err(e) = self.ping_all(&table, token, deadline) {
                    self.refuse(token, e);
                }
            }
            Input::Pause {
                token,
                table,
                pause,
            } => {
                let result = self.pause(&table, pause).map(|()| Reply::Paused);
                self.outputs.push_back(Output::Done { token, result });
            }
            Input::Unpause { table, pause } => {
                self.enter(now);
                self.unpause(now, &table, pause);
            }
            Input::Join {
                token,
                table,
                node,
                deadline,
            } => {
                self.enter(now);
                if !self.replicas.contains_key(&table) {
                    self.refuse(token, TableError::Unknown(table));
                } else {
                    self.start_join(now, &table, &node, Completion::Token(token), deadline, 0);
                }
            }
            Input::Settle => self.settle(now),
            Input::PeerUp(peer) => {
                self.enter(now);
                self.peer_up(now, peer);
            }
            Input::PeerGone(peer) => {
                self.connected.remove(&peer);
            }
            Input::MemberUp(node) => {
                self.enter(now);
                self.member_up(node);
            }
            Input::MemberDown(node) => {
                self.enter(now);
                self.member_down(now, &node);
            }
            Input::Message { from, msg } => {
                self.enter(now);
                self.on_message(now, &from, msg);
            }
            Input::Tick => {
                self.enter(now);
                self.tick(now);
            }
        }
        // Messages to ourselves, in order, until none is left.
        while let Some(msg) = self.local.pop_front() {
            let me = self.me.clone();
            self.on_message(now, &me, msg);
        }
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next wanted (None: nothing to do until another input).
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
            .chain(self.delayed.iter().map(|d| d.at))
            .min();
        Some(due.map_or(tick, |d| d.min(tick)))
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
    /// applied: feed [`Input::Settle`] first to count the ones left for it.
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
            digest: store.digest(),
            join_id: r.join_id,
            down_history: r.down_history.clone(),
            paused: r.paused(),
            joins: self.join_stats.get(table).cloned().unwrap_or_default(),
        })
    }

    /// Every table's live records and estimated bytes here, by name.
    pub fn sizes(&self) -> impl Iterator<Item = (&str, usize, usize)> {
        self.replicas.iter().map(|(name, r)| {
            let store = r.read();
            (name.as_str(), store.len(), store.memory())
        })
    }

    /// Whether writes made here wait for [`Input::Settle`].
    pub fn unsettled(&self) -> bool {
        !self.unsettled.is_empty()
    }

    // ---- what the inputs do ----

    fn see(&mut self, now: Instant) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
    }

    /// Every input that may read or change a replica's records starts here: the writes
    /// [`Input::Write`] left unapplied are applied first.
    fn enter(&mut self, now: Instant) {
        self.see(now);
        self.settle(now);
    }

    fn settle(&mut self, now: Instant) {
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

    /// A command refused at once.
    fn refuse(&mut self, token: u64, e: TableError) {
        self.outputs.push_back(Output::Done {
            token,
            result: Err(e),
        });
    }

    fn create(&mut self, table: &str, spec: TableSpec) -> Result<(), TableError> {
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
            return Ok(());
        }
        let join_id = self.rng.gen();
        let r = Replica::new(table.to_string(), spec, join_id);
        self.replicas.insert(table.to_string(), r);
        for p in self.connected.clone() {
            self.push_send(
                p,
                TableMsg::Hosted {
                    tables: vec![table.to_string()],
                },
            );
        }
        Ok(())
    }

    fn write(
        &mut self,
        now: Instant,
        table: &str,
        token: u64,
        ops: Vec<WriteOp>,
    ) -> Result<(), TableError> {
        let r = self.replica(table)?;
        check_limits(table, &r.spec, &self.config, &r.read(), &ops)?;
        let mut fx = self.fx();
        let r = self.replicas.get_mut(table).expect("checked");
        r.write(now, &mut fx, ops, Completion::Token(token), true);
        self.finish(now, fx);
        Ok(())
    }

    fn pause(&mut self, table: &str, pause: u64) -> Result<(), TableError> {
        self.replica(table)?;
        if let Some(r) = self.replicas.get_mut(table) {
            r.pauses.insert(pause);
        }
        Ok(())
    }

    fn unpause(&mut self, now: Instant, table: &str, pause: u64) {
        let mut fx = self.fx();
        if let Some(r) = self.replicas.get_mut(table) {
            if r.pauses.remove(&pause) {
                r.replay(now, &mut fx);
            }
        }
        self.finish(now, fx);
    }

    fn peer_up(&mut self, now: Instant, peer: String) {
        self.connected.insert(peer.clone());
        if !self.replicas.is_empty() {
            let tables = self.replicas.keys().cloned().collect();
            self.push_send(peer.clone(), TableMsg::Hosted { tables });
        }
        let mut fx = self.fx();
        for r in self.replicas.values_mut() {
            r.resend(now, &mut fx, &peer, true);
        }
        self.finish(now, fx);
    }

    fn member_up(&mut self, node: String) {
        self.down.remove(&node);
        if self.connected.contains(&node) && !self.replicas.is_empty() {
            let tables = self.replicas.keys().cloned().collect();
            self.push_send(node, TableMsg::Hosted { tables });
        }
    }

    fn member_down(&mut self, now: Instant, node: &str) {
        self.down.insert(node.to_string());
        let mut fx = self.fx();
        for r in self.replicas.values_mut() {
            if r.peers.contains(node) {
                r.remove_peer(now, &mut fx, node, Some(now));
            }
            r.unlock(now, &mut fx, node, None);
        }
        self.calls_without(now, node);
        self.finish(now, fx);
        self.complete_pings();
        self.joins_without(now, node);
    }

    fn tick(&mut self, now: Instant) {
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
        self.tick_calls(now);
        self.tick_joins(now);
        self.tick_remerges(now);
    }

    // ---- effects ----

    /// This node's replica of `table`, or the error a command on an unknown table answers.
    pub(super) fn replica(&self, table: &str) -> Result<&Replica, TableError> {
        self.replicas
            .get(table)
            .ok_or_else(|| TableError::Unknown(table.to_string()))
    }

    pub(super) fn fx(&self) -> Fx {
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

    pub(super) fn next_call(&mut self) -> u64 {
        self.next_call = self.next_call.wrapping_add(1);
        self.next_call
    }

    /// Sends `msg` to `to`; to this node itself, it is handled before the input returns.
    pub(super) fn push_send(&mut self, to: String, msg: TableMsg) {
        if to == self.me {
            self.local.push_back(msg);
        } else {
            self.outputs.push_back(Output::Send { to, msg });
        }
    }

    pub(super) fn push_output(&mut self, out: Output) {
        self.outputs.push_back(out);
    }

    /// Moves effects to outputs, completing operations.
    pub(super) fn finish(&mut self, now: Instant, fx: Fx) {
        self.unsettled.extend(fx.unsettled);
        for (to, msg) in fx.sends {
            self.push_send(to, msg);
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

    pub(super) fn complete(&mut self, then: Completion, result: Result<Reply, TableError>) {
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
                self.push_send(to, TableMsg::LeaderReply { table, id, result });
            }
            Completion::Merge => {}
        }
    }
}

#[cfg(test)]
impl Tables {
    /// Takes the answer with `token` out of the outputs (only one `which` picks), so that
    /// tests can treat a command like a call.
    pub(super) fn take_done(
        &mut self,
        token: u64,
        which: impl Fn(&Result<Reply, TableError>) -> bool,
    ) -> Option<Result<Reply, TableError>> {
        let at = self.outputs.iter().rposition(
            |o| matches!(o, Output::Done { token: t, result } if *t == token && which(result)),
        )?;
        match self.outputs.remove(at) {
            Some(Output::Done { result, .. }) => Some(result),
            _ => None,
        }
    }
}
