//! One table's replica on this node: its records, its segment (the replicas it writes to and
//! their join id), the writes in flight to each of them, and the locks that pause it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;

use super::effects::{Completion, Fx};
use super::msg::{LeaderOp, LeaderResult, Op, TableMsg};
use super::store::{Change, Chunks, Kind, Store};
use super::{Output, Reply, TableConfig, TableError, TableSpec, WriteOp};

mod leader;
mod lock;

pub(crate) use lock::ApplyJoin;

/// A lock a join coordinator holds on this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lock {
    pub coordinator: String,
    pub join: u64,
    pub expires: Instant,
}

/// Something asked while the replica was paused, done in order on unpause.
#[derive(Debug)]
enum Deferred {
    Write(Vec<WriteOp>, Completion),
    Leader { from: String, id: u64, op: LeaderOp },
}

#[derive(Debug)]
struct Sent {
    ops: Arc<Vec<Op>>,
    join_id: u64,
    sent_at: Instant,
    writes: Vec<u64>,
}

/// Writes in flight to one peer.
#[derive(Debug, Default)]
struct Link {
    next_seq: u64,
    unacked: BTreeMap<u64, Sent>,
    backlog: VecDeque<(Arc<Vec<Op>>, Vec<u64>)>,
}

#[derive(Debug)]
struct Pending {
    waiting: BTreeSet<String>,
    then: Completion,
    missing: Option<String>,
}

/// Writes of fewer records are applied at once even with `later` (see [`Replica::write`]):
/// their apply takes less than the round of the scheduler that leaving it for later costs.
pub(crate) const LATER_MIN: usize = 16;

/// One table's replica.
pub(crate) struct Replica {
    pub name: String,
    pub spec: TableSpec,
    pub store: Arc<RwLock<Store>>,
    pub peers: BTreeSet<String>,
    pub join_id: u64,
    /// Join ids this replica had before, newest last: writes still carrying one are stale.
    past_ids: VecDeque<u64>,
    pub lock: Option<Lock>,
    pub pauses: BTreeSet<u64>,
    /// Members that went down, newest last, with when.
    pub down_history: Vec<(String, Instant)>,
    queued: VecDeque<Deferred>,
    links: BTreeMap<String, Link>,
    pending: BTreeMap<u64, Pending>,
    next_write: u64,
    awaiting_drain: Option<(String, u64)>,
    incoming: Chunks,
    /// Writes made here and sent, not applied here yet (see [`Replica::write`]).
    unapplied: Vec<Arc<Vec<Op>>>,
    recent: BTreeMap<(String, u64), LeaderResult>,
    recent_order: VecDeque<(String, u64)>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("name", &self.name)
            .field("peers", &self.peers)
            .field("join_id", &self.join_id)
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl Replica {
    pub fn new(name: String, spec: TableSpec, join_id: u64) -> Self {
        Replica {
            store: Arc::new(RwLock::new(Store::new(spec.kind))),
            name,
            spec,
            peers: BTreeSet::new(),
            join_id,
            past_ids: VecDeque::new(),
            lock: None,
            pauses: BTreeSet::new(),
            down_history: Vec::new(),
            queued: VecDeque::new(),
            links: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_write: 0,
            awaiting_drain: None,
            incoming: Vec::new(),
            unapplied: Vec::new(),
            recent: BTreeMap::new(),
            recent_order: VecDeque::new(),
        }
    }

    /// Takes a new join id, remembering the old one.
    pub fn set_join_id(&mut self, id: u64) {
        if id != self.join_id {
            self.past_ids.push_back(self.join_id);
            if self.past_ids.len() > 16 {
                self.past_ids.pop_front();
            }
            self.join_id = id;
        }
    }

    pub fn paused(&self) -> bool {
        self.lock.is_some() || !self.pauses.is_empty()
    }

    /// The replica leader operations go through: the lowest name of the segment.
    pub fn leader<'a>(&'a self, me: &'a str) -> &'a str {
        self.peers.iter().next().map_or(me, |p| p.as_str().min(me))
    }

    /// Nothing of ours is unacknowledged anywhere.
    fn drained(&self) -> bool {
        self.links
            .values()
            .all(|l| l.unacked.is_empty() && l.backlog.is_empty())
    }

    fn store(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The number the next write made here will get.
    pub fn next_write(&self) -> u64 {
        self.next_write
    }

    /// True while a write numbered below `before` waits for a replica's ack.
    pub fn writes_pending_before(&self, before: u64) -> bool {
        self.pending.range(..before).next().is_some()
    }

    /// The replicas that have not acked every write numbered below `before`.
    pub fn lagging(&self, before: u64) -> BTreeSet<String> {
        let waiting = self.pending.range(..before).flat_map(|(_, p)| &p.waiting);
        waiting.cloned().collect()
    }

    /// A write asked here: applied now (or queued while paused) and sent to every peer.
    ///
    /// With `later`, a write of at least [`LATER_MIN`] records that has peers to go to and does
    /// not depend on what the store holds (no set `delete_object`) is versioned and sent now
    /// but applied here by [`Replica::settle`], which the caller runs before anything reads or
    /// writes the store again. The runtime hands the sends to its connections first, so the
    /// local apply overlaps the peers' (no reply can come back before it, and the write
    /// completes only with their acks).
    pub fn write(
        &mut self,
        now: Instant,
        fx: &mut Fx,
        ops: Vec<WriteOp>,
        then: Completion,
        later: bool,
    ) {
        if self.paused() {
            self.queued.push_back(Deferred::Write(ops, then));
            return;
        }
        let origin = fx.origin;
        let kind = self.spec.kind;
        let later = later
            && ops.len() >= LATER_MIN
            && !self.peers.is_empty()
            && ops.iter().all(|w| !reads_store(kind, w));
        let mut changes = Vec::new();
        let ops: Vec<Op> = {
            let mut store = self.store();
            ops.into_iter()
                .filter_map(|w| {
                    let w = resolve(&store, w)?;
                    let version = store.next_version(origin);
                    let op = w.into_op(version);
                    if !later {
                        store.apply(now, &op, &mut changes);
                    }
                    Some(op)
                })
                .collect()
        };
        self.changed(fx, changes);
        if self.peers.is_empty() || ops.is_empty() {
            fx.done.push((then, Ok(Reply::Written)));
            return;
        }
        let id = self.next_write;
        self.next_write += 1;
        self.pending.insert(
            id,
            Pending {
                waiting: self.peers.clone(),
                then,
                missing: None,
            },
        );
        let ops = Arc::new(ops);
        if later {
            self.unapplied.push(ops.clone());
            fx.unsettled.push(self.name.clone());
        }
        let peers: Vec<String> = self.peers.iter().cloned().collect();
        for p in peers {
            let link = self.links.entry(p.clone()).or_default();
            link.backlog.push_back((ops.clone(), vec![id]));
            self.pump(now, fx, &p);
        }
    }

    fn changed(&self, fx: &mut Fx, changes: Vec<Change>) {
        if !changes.is_empty() {
            fx.outs.push(Output::Changed {
                table: self.name.clone(),
                changes,
            });
        }
    }

    /// Sends what the window to `peer` allows.
    fn pump(&mut self, now: Instant, fx: &mut Fx, peer: &str) {
        let window = fx.config.window;
        let Some(link) = self.links.get_mut(peer) else {
            return;
        };
        while link.unacked.len() < window {
            let Some((mut ops, mut writes)) = link.backlog.pop_front() else {
                break;
            };
            // Coalesce what queued up behind a full window into one message of at most
            // `max_ops_per_message` ops and about `chunk_bytes` (so that it fits in a frame: a
            // write larger than that alone goes alone).
            let mut bytes = ops_cost(&ops);
            while let Some((more, ws)) = link.backlog.front() {
                let more_bytes = ops_cost(more);
                if ops.len() + more.len() > fx.config.max_ops_per_message
                    || bytes + more_bytes > fx.config.chunk_bytes
                {
                    break;
                }
                bytes += more_bytes;
                Arc::make_mut(&mut ops).extend(more.iter().cloned());
                writes.extend(ws);
                link.backlog.pop_front();
            }
            let seq = link.next_seq;
            link.next_seq += 1;
            fx.send(
                peer,
                TableMsg::Ops {
                    table: self.name.clone(),
                    join_id: self.join_id,
                    seq,
                    ops: ops.clone(),
                },
            );
            link.unacked.insert(
                seq,
                Sent {
                    ops,
                    join_id: self.join_id,
                    sent_at: now,
                    writes,
                },
            );
        }
    }

    /// Sends again what `peer` has not acked (all of it, or what is older than the retransmit
    /// interval).
    pub fn resend(&mut self, now: Instant, fx: &mut Fx, peer: &str, all: bool) {
        let retransmit = fx.config.retransmit;
        let Some(link) = self.links.get_mut(peer) else {
            return;
        };
        for (seq, sent) in link.unacked.iter_mut() {
            if all || now.saturating_duration_since(sent.sent_at) >= retransmit {
                sent.sent_at = now;
                fx.send(
                    peer,
                    TableMsg::Ops {
                        table: self.name.clone(),
                        join_id: sent.join_id,
                        seq: *seq,
                        ops: sent.ops.clone(),
                    },
                );
            }
        }
    }

    pub fn resend_all_due(&mut self, now: Instant, fx: &mut Fx) {
        let peers: Vec<String> = self.links.keys().cloned().collect();
        for p in peers {
            self.resend(now, fx, &p, false);
        }
    }

    /// Applies here the writes [`Replica::write`] left for later, in the order they were made.
    pub fn settle(&mut self, now: Instant, fx: &mut Fx) {
        if self.unapplied.is_empty() {
            return;
        }
        let unapplied = std::mem::take(&mut self.unapplied);
        let mut changes = Vec::new();
        {
            let mut store = self.store();
            for op in unapplied.iter().flat_map(|ops| ops.iter()) {
                store.apply(now, op, &mut changes);
            }
        }
        self.changed(fx, changes);
    }

    /// Writes from a peer.
    pub fn on_ops(
        &mut self,
        now: Instant,
        fx: &mut Fx,
        from: &str,
        join_id: u64,
        seq: u64,
        ops: Arc<Vec<Op>>,
    ) {
        fx.send(
            from,
            TableMsg::Ack {
                table: self.name.clone(),
                seq,
            },
        );
        if join_id != self.join_id {
            // Another segment's writes: ignored. Unless a join is under way, the sender and this
            // replica disagree on the segment (a join one of them missed, or this replica
            // restarted before anyone noticed): re-merge with it. An earlier id of ours from a
            // node that is still our peer means it missed the join that replaced that id.
            let stale = self.past_ids.contains(&join_id);
            if self.lock.is_none() && (!stale || self.peers.contains(from)) {
                if self.peers.contains(from) {
                    self.remove_peer(now, fx, from, None);
                }
                fx.diverged.push((self.name.clone(), from.to_string()));
            }
            return;
        }
        let mut changes = Vec::new();
        {
            let mut store = self.store();
            ops.iter().for_each(|op| store.apply(now, op, &mut changes));
        }
        self.changed(fx, changes);
    }

    pub fn on_ack(&mut self, now: Instant, fx: &mut Fx, from: &str, seq: u64) {
        let Some(sent) = self
            .links
            .get_mut(from)
            .and_then(|l| l.unacked.remove(&seq))
        else {
            return;
        };
        for w in sent.writes {
            self.acked(fx, w, from);
        }
        self.pump(now, fx, from);
        self.check_drained(fx);
    }

    fn acked(&mut self, fx: &mut Fx, write: u64, by: &str) {
        let Some(p) = self.pending.get_mut(&write) else {
            return;
        };
        p.waiting.remove(by);
        if p.waiting.is_empty() {
            let p = self.pending.remove(&write).expect("present");
            let result = match p.missing {
                None => Ok(Reply::Written),
                Some(node) => Err(TableError::NotHosted {
                    table: self.name.clone(),
                    node,
                }),
            };
            fx.done.push((p.then, result));
        }
    }

    /// `peer` no longer takes this table's writes: it went down (`down` is set), does not host
    /// the table, or diverged. Writes waiting for it complete.
    pub fn remove_peer(&mut self, now: Instant, fx: &mut Fx, peer: &str, down: Option<Instant>) {
        self.peers.remove(peer);
        if let Some(link) = self.links.remove(peer) {
            let writes: Vec<u64> = link
                .unacked
                .into_values()
                .flat_map(|s| s.writes)
                .chain(link.backlog.into_iter().flat_map(|(_, w)| w))
                .collect();
            for w in writes {
                self.acked(fx, w, peer);
            }
        }
        if let Some(at) = down {
            self.down_history.push((peer.to_string(), at));
            if self.down_history.len() > 100 {
                self.down_history.remove(0);
            }
            fx.outs.push(Output::Down {
                table: self.name.clone(),
                node: peer.to_string(),
            });
        }
        self.check_drained(fx);
        let _ = now;
    }

    /// `peer` answered that it does not host this table.
    pub fn not_hosted(&mut self, now: Instant, fx: &mut Fx, peer: &str) {
        let writes: Vec<u64> = self
            .links
            .get(peer)
            .map(|l| {
                l.unacked
                    .values()
                    .flat_map(|s| s.writes.iter().copied())
                    .chain(l.backlog.iter().flat_map(|(_, w)| w.iter().copied()))
                    .collect()
            })
            .unwrap_or_default();
        for w in writes {
            if let Some(p) = self.pending.get_mut(&w) {
                p.missing = Some(peer.to_string());
            }
        }
        self.remove_peer(now, fx, peer, None);
    }
}

/// An upper bound of the bytes `ops` take in a message: each op's key, value, lengths (two
/// varints of at most 10 bytes), tag and version (two of at most 10).
fn ops_cost(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Insert { key, value, .. } | Op::DeleteObject { key, value, .. } => {
                key.len() + value.len() + 48
            }
            Op::Delete { key, .. } => key.len() + 48,
        })
        .sum()
}

/// Checks a write's size against the table's limits before it is applied.
pub(crate) fn check_limits(
    table: &str,
    spec: &TableSpec,
    config: &TableConfig,
    store: &Store,
    ops: &[WriteOp],
) -> Result<(), TableError> {
    let mut added = 0usize;
    let mut bytes = 0usize;
    // Counting new records costs a lookup each: only done when a limit needs the count.
    let limited = spec.max_records.is_some() || spec.max_bytes.is_some();
    for op in ops {
        let (k, v): (&Bytes, Option<&Bytes>) = match op {
            WriteOp::Insert(k, v) => (k, Some(v)),
            WriteOp::Delete(k) => (k, None),
            WriteOp::DeleteObject(k, v) => (k, Some(v)),
        };
        let size = k.len() + v.map_or(0, Bytes::len);
        if size > config.max_record_bytes {
            return Err(TableError::TooLarge {
                table: table.to_string(),
                size,
                max: config.max_record_bytes,
            });
        }
        if limited
            && matches!(op, WriteOp::Insert(..))
            && (store.kind() == super::Kind::Bag || store.get(k).is_none())
        {
            added += 1;
            bytes += size;
        }
    }
    if let Some(max) = spec.max_records {
        if store.len() + added > max {
            return Err(TableError::Full {
                table: table.to_string(),
                limit: format!("max_records = {max}"),
            });
        }
    }
    if let Some(max) = spec.max_bytes {
        if store.memory() + bytes > max {
            return Err(TableError::Full {
                table: table.to_string(),
                limit: format!("max_bytes = {max}"),
            });
        }
    }
    Ok(())
}

/// Whether a write made here depends on what the store holds when it is made.
fn reads_store(kind: Kind, w: &WriteOp) -> bool {
    kind == Kind::Set && matches!(w, WriteOp::DeleteObject(..))
}

/// A set's `delete_object` is decided here, by the writer, and travels as a plain versioned
/// delete (or not at all): evaluated at each replica it would depend on what that replica
/// held when it arrived, and replicas would diverge for good.
fn resolve(store: &Store, w: WriteOp) -> Option<WriteOp> {
    match w {
        WriteOp::DeleteObject(key, value) if store.kind() == Kind::Set => {
            (store.get(&key) == Some(&value)).then_some(WriteOp::Delete(key))
        }
        w => Some(w),
    }
}
