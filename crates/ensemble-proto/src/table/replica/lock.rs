//! A replica's side of a join: locked and paused by the coordinator, its snapshot sent, the
//! merged records applied, and released again (also when the lock expires).

use std::time::Instant;

use super::{Deferred, Lock, Replica};
use crate::table::effects::Fx;
use crate::table::msg::{Record, Refusal, TableMsg};
use crate::table::store;

/// Join step 3 as a replica receives it (`TableMsg::Apply`).
#[derive(Debug)]
pub(crate) struct ApplyJoin {
    /// The join.
    pub join: u64,
    /// How many records the chunks sent before it held.
    pub total: u64,
    /// Every replica of the joined segment (members known down left out).
    pub members: Vec<String>,
    /// The new join id.
    pub join_id: u64,
}

impl Replica {
    /// Tells the coordinator of `join` that this replica will not take part, and why.
    fn refuse(&self, fx: &mut Fx, coordinator: &str, join: u64, reason: Refusal) {
        let table = self.name.clone();
        let msg = TableMsg::Refused {
            table,
            join,
            reason,
        };
        fx.send(coordinator, msg);
    }

    pub(super) fn check_drained(&mut self, fx: &mut Fx) {
        if self.awaiting_drain.is_some() && self.drained() {
            let (coordinator, join) = self.awaiting_drain.take().expect("checked");
            self.send_paused(fx, &coordinator, join);
        }
    }

    pub(super) fn send_paused(&self, fx: &mut Fx, coordinator: &str, join: u64) {
        fx.send(
            coordinator,
            TableMsg::Paused {
                table: self.name.clone(),
                join,
                peers: self.peers.iter().cloned().collect(),
                join_id: self.join_id,
                digest: self.read().digest(),
                kind: self.spec.kind,
            },
        );
    }

    fn locked_by(&self, coordinator: &str, join: u64) -> bool {
        self.lock
            .as_ref()
            .is_some_and(|l| l.coordinator == coordinator && l.join == join)
    }

    /// Join step 1 at a replica.
    pub fn on_pause(&mut self, now: Instant, fx: &mut Fx, from: &str, join: u64) {
        if let Some(l) = &self.lock {
            if l.coordinator != from || l.join != join {
                let reason = Refusal::Busy {
                    coordinator: l.coordinator.clone(),
                };
                return self.refuse(fx, from, join, reason);
            }
        }
        self.lock = Some(Lock {
            coordinator: from.to_string(),
            join,
            expires: now + fx.config.lock_timeout,
        });
        self.incoming.clear();
        if self.drained() {
            self.send_paused(fx, from, join);
        } else {
            self.awaiting_drain = Some((from.to_string(), join));
        }
    }

    pub fn on_snapshot_request(&self, fx: &mut Fx, from: &str, join: u64) {
        if !self.locked_by(from, join) {
            return self.refuse(fx, from, join, Refusal::NotLocked);
        }
        let chunks = self.read().chunks(fx.config.chunk_bytes);
        let total = store::count(&chunks);
        fx.send_chunks(from, &self.name, join, chunks);
        fx.send(
            from,
            TableMsg::SnapshotEnd {
                table: self.name.clone(),
                join,
                total,
            },
        );
    }

    pub fn on_chunk(&mut self, from: &str, join: u64, records: Vec<Record>) {
        if self.locked_by(from, join) {
            self.incoming.push(records);
        }
    }

    /// Join step 3 at a replica: apply the chunks that arrived and take the new segment.
    pub fn on_apply(&mut self, now: Instant, fx: &mut Fx, from: &str, apply: ApplyJoin) {
        let ApplyJoin {
            join,
            total,
            members,
            join_id,
        } = apply;
        let got = store::count(&self.incoming);
        let refuse = if !self.locked_by(from, join) {
            Some(Refusal::NotLocked)
        } else if got != total {
            Some(Refusal::Incomplete { got, total })
        } else {
            None
        };
        if let Some(reason) = refuse {
            self.incoming.clear();
            return self.refuse(fx, from, join, reason);
        }
        let mut changes = Vec::new();
        {
            let chunks = std::mem::take(&mut self.incoming);
            self.store().force_all(now, chunks, &mut changes);
        }
        self.changed(fx, changes);
        self.peers = members.into_iter().filter(|m| *m != fx.me).collect();
        self.set_join_id(join_id);
        fx.send(
            from,
            TableMsg::Applied {
                table: self.name.clone(),
                join,
            },
        );
    }

    /// Releases the join lock (if `coordinator`'s `join` holds it) and replays queued writes.
    pub fn unlock(&mut self, now: Instant, fx: &mut Fx, coordinator: &str, join: Option<u64>) {
        let held = self
            .lock
            .as_ref()
            .is_some_and(|l| l.coordinator == coordinator && join.is_none_or(|j| j == l.join));
        if held {
            self.lock = None;
            self.awaiting_drain = None;
            self.incoming.clear();
            self.replay(now, fx);
        }
    }

    pub fn expire_lock(&mut self, now: Instant, fx: &mut Fx) {
        if let Some(l) = &self.lock {
            if now >= l.expires {
                let c = l.coordinator.clone();
                self.unlock(now, fx, &c, None);
            }
        }
    }

    /// Does what was asked while paused, in order, until paused again.
    pub fn replay(&mut self, now: Instant, fx: &mut Fx) {
        while !self.paused() {
            match self.queued.pop_front() {
                Some(Deferred::Write(ops, then)) => self.write(now, fx, ops, then, false),
                Some(Deferred::Leader { from, id, op }) => self.on_leader(now, fx, &from, id, op),
                None => break,
            }
        }
    }
}
