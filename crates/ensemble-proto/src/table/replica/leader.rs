//! The leader's side of leader operations (`insert_new`, `insert_new_or_lookup`,
//! `insert_serial`): decided once at the table's leader, answered from memory when asked again.

use std::time::Instant;

use bytes::Bytes;

use super::{Deferred, Replica};
use crate::table::effects::{Completion, Fx};
use crate::table::msg::{LeaderOp, LeaderResult, TableMsg};
use crate::table::WriteOp;

/// How long leader answers are remembered, so that a retried request is not done twice.
const RECENT_LEADER_ANSWERS: usize = 4096;

impl Replica {
    /// A leader operation asked of this replica.
    pub fn on_leader(&mut self, now: Instant, fx: &mut Fx, from: &str, id: u64, op: LeaderOp) {
        if self.paused() {
            self.queued.push_back(Deferred::Leader {
                from: from.to_string(),
                id,
                op,
            });
            return;
        }
        let key = (from.to_string(), id);
        let result = if let Some(r) = self.recent.get(&key) {
            Some(r.clone())
        } else if self.leader(&fx.me) != fx.me {
            Some(LeaderResult::NotLeader)
        } else {
            match &op {
                LeaderOp::InsertNew { key, .. } | LeaderOp::InsertNewOrLookup { key, .. } => self
                    .read()
                    .get(key)
                    .map(|v| LeaderResult::Exists(Bytes::copy_from_slice(v))),
                LeaderOp::InsertSerial { .. } => None,
            }
        };
        if let Some(result) = result {
            if result != LeaderResult::NotLeader {
                self.remember(key, result.clone());
            }
            fx.send(
                from,
                TableMsg::LeaderReply {
                    table: self.name.clone(),
                    id,
                    result,
                },
            );
            return;
        }
        let ops = match op {
            LeaderOp::InsertNew { key, value } | LeaderOp::InsertNewOrLookup { key, value } => {
                vec![WriteOp::Insert(key, value)]
            }
            LeaderOp::InsertSerial { records } => records
                .into_iter()
                .map(|(k, v)| WriteOp::Insert(k, v))
                .collect(),
        };
        self.write(
            now,
            fx,
            ops,
            Completion::LeaderReply {
                table: self.name.clone(),
                to: from.to_string(),
                id,
            },
            false,
        );
    }

    pub fn remember(&mut self, key: (String, u64), result: LeaderResult) {
        if self.recent.insert(key.clone(), result).is_none() {
            self.recent_order.push_back(key);
            if self.recent_order.len() > RECENT_LEADER_ANSWERS {
                if let Some(old) = self.recent_order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
    }
}
