//! What each message from a replica does here.

use std::time::Instant;

use super::error::JoinFailure;
use super::join::{SegmentView, Stage};
use super::msg::TableMsg;
use super::replica::ApplyJoin;
use super::tables::Tables;

impl Tables {
    /// A message from the member `from` (this node itself for the messages it sends itself).
    pub(super) fn on_message(&mut self, now: Instant, from: &str, msg: TableMsg) {
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
                let join = self
                    .joins
                    .iter()
                    .find(|(_, j)| j.table == table && j.asked.contains(from))
                    .map(|(id, _)| *id);
                if let Some(j) = join {
                    self.finish(now, fx);
                    self.abort(now, j, JoinFailure::NotHosted(from.to_string()));
                    return;
                }
            }
            TableMsg::LeaderRequest { table, id, op } => match self.replicas.get_mut(&table) {
                Some(r) => r.on_leader(now, &mut fx, from, id, op),
                None => fx.send(from, TableMsg::NotHosted { table }),
            },
            TableMsg::LeaderReply { id, result, .. } => self.on_leader_reply(now, id, result),
            TableMsg::Ping { table, id } => fx.send(from, TableMsg::Pong { table, id }),
            TableMsg::Pong { id, .. } => self.on_pong(from, id),
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
                let mut segment: std::collections::BTreeSet<String> = peers.into_iter().collect();
                segment.insert(from.to_string());
                let view = SegmentView {
                    segment,
                    join_id,
                    digest,
                };
                self.on_paused(now, from, join, view, kind);
                return;
            }
            TableMsg::Refused { join, reason, .. } => {
                if self.joins.contains_key(&join) {
                    self.finish(now, fx);
                    let reason = JoinFailure::Refused {
                        by: from.to_string(),
                        refusal: reason,
                    };
                    self.abort(now, join, reason);
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
                    let apply = ApplyJoin {
                        join,
                        total,
                        members,
                        join_id,
                    };
                    r.on_apply(now, &mut fx, from, apply);
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
}
