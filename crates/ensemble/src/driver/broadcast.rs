//! The driver's side of broadcast: broadcasts, handler registrations and exchange
//! cancellations into the core, and the [`BroadcastStatus`] snapshot (with the frames the
//! connection table shed or dropped).

use std::time::Instant;

use ensemble_proto::broadcast::Plumtree;

use super::Driver;
use crate::command::{BroadcastCommand, BroadcastStatus};

impl Driver {
    pub(super) fn on_broadcast_command(&mut self, now: Instant, c: BroadcastCommand) {
        match c {
            BroadcastCommand::Broadcast {
                handler,
                msg,
                reply,
            } => {
                let _ = reply.send(self.core.broadcast(now, &handler, msg));
            }
            BroadcastCommand::Register {
                name,
                handler,
                reply,
            } => {
                let _ = reply.send(self.core.broadcast.register(&name, handler));
            }
            BroadcastCommand::Status { root, reply } => {
                let me = &self.core.membership.local().name;
                let mut members: Vec<String> = (self.core.membership.members())
                    .filter(|m| m.status.is_up() && m.name != *me)
                    .map(|m| m.name.clone())
                    .collect();
                members.sort();
                let status = BroadcastStatus::of(
                    &self.core.broadcast,
                    members,
                    root.as_deref(),
                    self.shed_frames,
                    self.dropped_frames,
                );
                let _ = reply.send(status);
            }
            BroadcastCommand::CancelExchanges { selector, reply } => {
                let _ = reply.send(self.core.broadcast.cancel_exchanges(&selector));
            }
        }
    }
}

impl BroadcastStatus {
    fn of(
        p: &Plumtree,
        members: Vec<String>,
        root: Option<&str>,
        shed_frames: u64,
        dropped_frames: u64,
    ) -> Self {
        let root = root.map_or_else(|| p.name().to_owned(), str::to_owned);
        let (eager, lazy) = p.peers(&root);
        let mut roots: Vec<String> = p.roots().map(str::to_owned).collect();
        roots.sort();
        BroadcastStatus {
            members,
            neighbours: p.neighbours().map(str::to_owned).collect(),
            handlers: p.handlers().map(str::to_owned).collect(),
            root,
            eager,
            lazy,
            roots,
            exchanges: p.exchanges(),
            stats: p.stats(),
            shed_frames,
            dropped_frames,
        }
    }
}
