//! The driver's side of broadcast: broadcasts, handler registrations and exchange
//! cancellations into the core, and the [`BroadcastStatus`] snapshot (with the frames the
//! connection table shed or dropped).

use std::time::Instant;

use bytes::Bytes;
use ensemble_proto::broadcast::{self, BroadcastError, Plumtree, Reply};
use ensemble_proto::stack::Input;
use tokio::sync::oneshot;

use super::Driver;
use crate::command::{BroadcastCommand, BroadcastStatus, ExchangeRequest};
use tracing::{debug, warn};

/// A caller waiting for the core's answer to a broadcast command (`Done { token }`, which
/// comes out of the same call).
pub(super) enum BroadcastWaiter {
    Broadcast(oneshot::Sender<Result<Bytes, BroadcastError>>),
    Register(oneshot::Sender<Result<(), BroadcastError>>),
    Cancel(oneshot::Sender<usize>),
    ExchangeDone(oneshot::Sender<bool>),
}

impl Driver {
    pub(super) fn on_broadcast_command(&mut self, now: Instant, c: BroadcastCommand) {
        let token = self.next_token();
        let (input, waiter) = match c {
            BroadcastCommand::Broadcast {
                handler,
                msg,
                reply,
            } => {
                let input = broadcast::Input::Broadcast {
                    token,
                    handler,
                    msg,
                };
                (input, BroadcastWaiter::Broadcast(reply))
            }
            BroadcastCommand::Register {
                name,
                handler,
                reply,
            } => {
                let input = broadcast::Input::Register {
                    token,
                    name,
                    handler,
                };
                (input, BroadcastWaiter::Register(reply))
            }
            BroadcastCommand::CancelExchanges { selector, reply } => {
                let input = broadcast::Input::CancelExchanges { token, selector };
                (input, BroadcastWaiter::Cancel(reply))
            }
            BroadcastCommand::RunExchanges { handler, tx, reply } => {
                self.exchange_runners.insert(handler, tx);
                let _ = reply.send(());
                return;
            }
            BroadcastCommand::ExchangeDone {
                session,
                items,
                reply,
            } => {
                let input = broadcast::Input::ExchangeDone {
                    token,
                    session,
                    items,
                };
                (input, BroadcastWaiter::ExchangeDone(reply))
            }
            BroadcastCommand::Peers {
                node,
                root,
                timeout,
                reply,
            } => return self.on_peers_command(now, node, root, timeout, reply),
            BroadcastCommand::Tree {
                root,
                timeout,
                reply,
            } => return self.on_tree_command(now, root, timeout, reply),
            BroadcastCommand::Status { root, reply } => {
                let membership = self.core.membership();
                let me = &membership.local().name;
                let mut members: Vec<String> = (membership.members())
                    .filter(|m| m.status.is_up() && m.name != *me)
                    .map(|m| m.name.clone())
                    .collect();
                members.sort();
                let status = BroadcastStatus::of(
                    self.core.broadcast(),
                    members,
                    root.as_deref(),
                    Counters {
                        shed_frames: self.shed_frames,
                        dropped_frames: self.dropped_frames,
                        connections_closed: self.connections_closed,
                    },
                );
                let _ = reply.send(status);
                return;
            }
        };
        self.broadcast_waiters.insert(token, waiter);
        self.core.handle(now, Input::Broadcast(input));
    }

    pub(super) fn on_broadcast_output(&mut self, out: broadcast::Output) {
        if let broadcast::Output::CustomExchange {
            session,
            handler,
            peer,
        } = out
        {
            return self.run_custom_exchange(session, handler, peer);
        }
        let broadcast::Output::Done { token, result } = out else {
            // Handlers hand deliveries to the application themselves; sends come out of the
            // stack as frames.
            return;
        };
        match (self.broadcast_waiters.remove(&token), result) {
            (Some(BroadcastWaiter::Broadcast(reply)), Ok(Reply::Broadcast(id))) => {
                let _ = reply.send(Ok(id));
            }
            (Some(BroadcastWaiter::Broadcast(reply)), Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (Some(BroadcastWaiter::Register(reply)), result) => {
                let _ = reply.send(result.map(|_| ()));
            }
            (Some(BroadcastWaiter::Cancel(reply)), Ok(Reply::Cancelled(n))) => {
                let _ = reply.send(n);
            }
            (Some(BroadcastWaiter::ExchangeDone(reply)), Ok(Reply::ExchangeDone(done))) => {
                let _ = reply.send(done);
            }
            // Nobody waits (the handler registered at start), or an answer of another kind.
            _ => {}
        }
    }
}

impl Driver {
    /// Hands a custom exchange to the application; with nobody to run it, it expires
    /// (`exchange_timeout`).
    fn run_custom_exchange(&mut self, session: u64, handler: String, peer: String) {
        let Some(tx) = self.exchange_runners.get(&handler) else {
            debug!("no runner for {handler:?}'s custom exchange with {peer}");
            return;
        };
        let request = ExchangeRequest {
            session,
            handler,
            peer,
        };
        if let Err(e) = tx.try_send(request) {
            let request = e.into_inner();
            warn!(
                "{:?}'s custom exchange with {} was not run: its runner is gone or behind",
                request.handler, request.peer
            );
            if tx.is_closed() {
                self.exchange_runners.remove(&request.handler);
            }
        }
    }
}

impl BroadcastStatus {
    fn of(p: &Plumtree, members: Vec<String>, root: Option<&str>, counters: Counters) -> Self {
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
            shed_frames: counters.shed_frames,
            dropped_frames: counters.dropped_frames,
            connections_closed: counters.connections_closed,
        }
    }
}

/// The driver's own counters a [`BroadcastStatus`] reports.
struct Counters {
    shed_frames: u64,
    dropped_frames: u64,
    connections_closed: u64,
}
