//! The protocols of one node, composed: membership drives who broadcast and named messaging
//! can send to.
//!
//! The runtime and the simulator both run a [`Stack`], so the glue between the protocols is
//! one piece of code: connections membership keeps become broadcast neighbours, membership
//! events become broadcast's member list, and messages are routed by protocol.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::broadcast::{self, BroadcastError, Delivery, Plumtree};
use crate::membership::{EventKind, Input, MemberEvent, Membership, Output};
use crate::messaging::{self, DirectMsg, Messaging, RelayMsg};
use crate::singleton::{self, SingletonConfig, Singletons};
use crate::table::{self, TableConfig, Tables};
use crate::wire::Message;

/// An output of a node's protocols.
#[derive(Debug)]
pub enum StackOutput {
    /// Send `msg` to the connected member `to`.
    Send {
        /// The member.
        to: String,
        /// The message.
        msg: Message,
    },
    /// Open a connection to `addr`.
    Dial {
        /// The address.
        addr: SocketAddr,
    },
    /// Close the connection to `name`.
    Disconnect {
        /// The member.
        name: String,
    },
    /// A change of another member.
    Event(MemberEvent),
    /// A broadcast message was delivered to its handler.
    Delivered(Delivery),
    /// Named messaging: a message for a local handler, an ack, a failure.
    Messaging(messaging::Output),
    /// Replicated tables: a completed operation, a change, a replica down, a re-merge.
    Table(table::Output),
    /// Singletons: this node leads, follows, or its leadership ends.
    Singleton {
        /// The singleton.
        name: String,
        /// What happened.
        event: singleton::SingletonEvent,
    },
}

/// Membership and broadcast of one node.
#[derive(Debug)]
pub struct Stack {
    /// Membership and failure detection.
    pub membership: Membership,
    /// Plumtree broadcast.
    pub broadcast: Plumtree,
    /// Named messaging.
    pub messaging: Messaging,
    /// Replicated tables.
    pub tables: Tables,
    /// Singleton activators.
    pub singletons: Singletons,
    /// The connections broadcast knows about, with the incarnation each was opened with.
    neighbours: BTreeMap<String, u64>,
    /// Membership's connections version `neighbours` reflects.
    synced: Option<u64>,
    outputs: VecDeque<StackOutput>,
    relayed: u64,
    relay_dropped: u64,
}

/// Relays a named message may pass: client, its server, the receiver's server, receiver.
const RELAY_HOPS: u8 = 2;

impl Stack {
    /// Composes the two protocols of one node.
    pub fn new(
        membership: Membership,
        broadcast: Plumtree,
        messaging: Messaging,
        now: Instant,
    ) -> Self {
        let me = membership.local();
        let seed = table::origin_of(&me.name) ^ me.incarnation.rotate_left(32);
        let tables = Tables::new(me.name.clone(), TableConfig::default(), seed);
        let singletons = Singletons::new(me.name.clone(), SingletonConfig::default(), !seed)
            .untracked_while_idle();
        let mut s = Stack {
            membership,
            broadcast,
            messaging,
            tables,
            singletons,
            neighbours: BTreeMap::new(),
            synced: None,
            outputs: VecDeque::new(),
            relayed: 0,
            relay_dropped: 0,
        };
        let me = s.membership.local().name.clone();
        s.broadcast.handle(now, broadcast::Input::MemberUp(me));
        s.drain(now);
        s
    }

    /// Feeds a membership input (a tick, a connection change, a dial result or a command).
    pub fn handle(&mut self, now: Instant, input: Input) {
        let tick = matches!(input, Input::Tick);
        if !tick || now >= self.membership.poll_timeout() {
            self.membership.handle(now, input);
        }
        if tick && now >= self.broadcast.poll_timeout() {
            self.broadcast.handle(now, broadcast::Input::Tick);
        }
        if tick && self.messaging.poll_timeout().is_some_and(|t| now >= t) {
            self.messaging.handle(now, messaging::Input::Tick);
        }
        if tick && self.tables.poll_timeout().is_some_and(|t| now >= t) {
            self.tables.tick(now);
        }
        if tick && self.singletons.poll_timeout().is_some_and(|t| now >= t) {
            self.singletons.tick(now);
        }
        self.drain(now);
    }

    /// Feeds a named-messaging input (register, send).
    pub fn handle_messaging(&mut self, now: Instant, input: messaging::Input) {
        self.messaging.handle(now, input);
        self.drain(now);
    }

    /// Runs a table command (create, write, join...) and carries out what it yields.
    pub fn with_tables<T>(&mut self, now: Instant, f: impl FnOnce(&mut Tables) -> T) -> T {
        let out = f(&mut self.tables);
        self.drain(now);
        out
    }

    /// A dial to `addr` was refused (or reset before the handshake): no process listens there.
    /// Membership learns it through its own dial failure; singletons use it to take over from
    /// a leader that died, without waiting for failure detection.
    pub fn no_listener(&mut self, now: Instant, addr: SocketAddr) {
        let me = &self.membership.local().name;
        let gone = self
            .membership
            .members()
            .find(|m| m.addr == addr && &m.name != me)
            .map(|m| m.name.clone());
        if let Some(name) = gone {
            self.singletons.gone(now, &name);
            self.drain(now);
        }
    }

    /// Runs a singleton command (register, unregister) and carries out what it yields.
    pub fn with_singletons<T>(&mut self, now: Instant, f: impl FnOnce(&mut Singletons) -> T) -> T {
        if self.singletons.is_idle() {
            let up = self.membership.members().filter(|m| m.status.is_up());
            self.singletons.seed_members(up.map(|m| m.name.as_str()));
        }
        let out = f(&mut self.singletons);
        self.drain(now);
        out
    }

    /// Feeds a message from the connected member `from`.
    pub fn handle_message(&mut self, now: Instant, from: String, msg: Message) {
        match msg {
            Message::Membership(msg) => self.membership.handle(now, Input::Message { from, msg }),
            Message::Broadcast(msg) => self
                .broadcast
                .handle(now, broadcast::Input::Message { from, msg }),
            Message::Direct(msg) => self
                .messaging
                .handle(now, messaging::Input::Message { from, msg }),
            Message::Table(msg) => self.tables.handle_message(now, &from, msg),
            Message::Singleton(msg) => self.singletons.handle_message(now, &from, msg),
            Message::Relay(r) => self.on_relay(now, r),
        }
        self.drain(now);
    }

    /// A relayed named message: delivered here, or handed on towards its receiver.
    fn on_relay(&mut self, now: Instant, r: RelayMsg) {
        if r.to == self.membership.local().name {
            let input = messaging::Input::Message {
                from: r.from,
                msg: r.msg,
            };
            return self.messaging.handle(now, input);
        }
        match r.hops.checked_sub(1) {
            Some(hops) => {
                self.relayed += 1;
                let out = self.route_direct(Some((r.from, hops)), r.to, r.msg);
                self.outputs.extend(out);
            }
            None => self.relay_dropped += 1,
        }
    }

    /// Where a named message to `to` goes next: straight to `to` if connected, else through a
    /// relay (client-server). `relayed` is the original sender and the hops left of a message
    /// this node relays; None for one sent from here.
    fn route_direct(
        &mut self,
        relayed: Option<(String, u8)>,
        to: String,
        msg: DirectMsg,
    ) -> Option<StackOutput> {
        // A relay in between, or None to hand it to `to` itself.
        let via = match self.membership.route(&to) {
            Some(hop) if hop == to => None,
            Some(hop) => Some(hop.to_owned()),
            // Not connected yet: the runtime holds or drops it, and retransmission covers it.
            None if relayed.is_none() => None,
            None => {
                self.relay_dropped += 1;
                return None;
            }
        };
        if via.is_none() && relayed.is_none() {
            let msg = Message::Direct(msg);
            return Some(StackOutput::Send { to, msg });
        }
        let hop = via.unwrap_or_else(|| to.clone());
        let (from, hops) =
            relayed.unwrap_or_else(|| (self.membership.local().name.clone(), RELAY_HOPS));
        let msg = Message::Relay(RelayMsg {
            from,
            to,
            hops,
            msg,
        });
        Some(StackOutput::Send { to: hop, msg })
    }

    /// Named messages handed on for others so far, and dropped for lack of a route.
    pub fn relay_counts(&self) -> (u64, u64) {
        (self.relayed, self.relay_dropped)
    }

    /// The connected member a named message to `to` is handed to (see
    /// [`Membership::route`]).
    pub fn route(&self, to: &str) -> Option<&str> {
        self.membership.route(to)
    }

    /// Broadcasts `msg` through handler `handler`; see [`Plumtree::broadcast`].
    pub fn broadcast(
        &mut self,
        now: Instant,
        handler: &str,
        msg: Bytes,
    ) -> Result<Bytes, BroadcastError> {
        let id = self.broadcast.broadcast(now, handler, msg)?;
        self.drain(now);
        Ok(id)
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<StackOutput> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next wanted.
    pub fn poll_timeout(&self) -> Instant {
        let t = self
            .membership
            .poll_timeout()
            .min(self.broadcast.poll_timeout());
        let t = self.messaging.poll_timeout().map_or(t, |m| t.min(m));
        let t = self.tables.poll_timeout().map_or(t, |m| t.min(m));
        self.singletons.poll_timeout().map_or(t, |m| t.min(m))
    }

    /// Moves membership's outputs out, telling broadcast what they mean, then broadcast's.
    fn drain(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(o) = self.membership.poll_output() {
                any = true;
                let out = match o {
                    Output::Send { to, msg } => StackOutput::Send {
                        to,
                        msg: Message::Membership(msg),
                    },
                    Output::Dial { addr } => StackOutput::Dial { addr },
                    Output::Disconnect { name } => StackOutput::Disconnect { name },
                    Output::Event(e) => {
                        let name = e.member.name.clone();
                        let input = match e.kind {
                            EventKind::Up => Some(broadcast::Input::MemberUp(name)),
                            EventKind::Down | EventKind::Left => {
                                Some(broadcast::Input::MemberDown(name))
                            }
                            EventKind::Updated => None,
                        };
                        if let Some(i) = input {
                            self.broadcast.handle(now, i);
                        }
                        match e.kind {
                            EventKind::Down | EventKind::Left => {
                                self.tables.member_down(now, &e.member.name);
                                self.singletons.member_down(now, &e.member.name);
                            }
                            EventKind::Up => {
                                self.tables.member_up(now, &e.member.name);
                                self.singletons.member_up(now, &e.member.name);
                            }
                            EventKind::Updated => {}
                        }
                        StackOutput::Event(e)
                    }
                };
                self.outputs.push_back(out);
            }
            self.sync_neighbours(now);
            while let Some(o) = self.broadcast.poll_output() {
                any = true;
                self.outputs.push_back(match o {
                    broadcast::Output::Send { to, msg } => StackOutput::Send {
                        to,
                        msg: Message::Broadcast(msg),
                    },
                    broadcast::Output::Delivered(d) => StackOutput::Delivered(d),
                });
            }
            while let Some(o) = self.messaging.poll_output() {
                any = true;
                match o {
                    messaging::Output::Send { to, msg } => {
                        let out = self.route_direct(None, to, msg);
                        self.outputs.extend(out);
                    }
                    other => self.outputs.push_back(StackOutput::Messaging(other)),
                }
            }
            while let Some(o) = self.singletons.poll_output() {
                any = true;
                self.outputs.push_back(match o {
                    singleton::Output::Send { to, msg } => StackOutput::Send {
                        to,
                        msg: Message::Singleton(msg),
                    },
                    singleton::Output::Event { name, event } => {
                        StackOutput::Singleton { name, event }
                    }
                });
            }
            while let Some(o) = self.tables.poll_output() {
                any = true;
                self.outputs.push_back(match o {
                    table::Output::Send { to, msg } => StackOutput::Send {
                        to,
                        msg: Message::Table(msg),
                    },
                    other => StackOutput::Table(other),
                });
            }
            if !any {
                return;
            }
        }
    }

    /// Broadcast's neighbours are membership's connections.
    fn sync_neighbours(&mut self, now: Instant) {
        let version = self.membership.connections_version();
        if self.synced == Some(version) {
            return;
        }
        self.synced = Some(version);
        let current: BTreeMap<&str, u64> = self.membership.connected_incarnations().collect();
        // Gone, or replaced by a connection to another process under the same name (a restart):
        // down first, so per-peer state starts afresh.
        let gone: Vec<String> = self
            .neighbours
            .iter()
            .filter(|(n, inc)| current.get(n.as_str()) != Some(*inc))
            .map(|(n, _)| n.clone())
            .collect();
        for n in gone {
            self.neighbours.remove(&n);
            self.tables.peer_gone(&n);
            self.singletons.peer_gone(&n);
            self.broadcast
                .handle(now, broadcast::Input::NeighborDown(n));
        }
        let new: Vec<(String, u64)> = current
            .iter()
            .filter(|(c, _)| !self.neighbours.contains_key(**c))
            .map(|(c, inc)| (c.to_string(), *inc))
            .collect();
        for (n, inc) in new {
            self.neighbours.insert(n.clone(), inc);
            self.broadcast
                .handle(now, broadcast::Input::NeighborUp(n.clone()));
            self.messaging
                .handle(now, messaging::Input::PeerUp(n.clone()));
            self.tables.peer_up(now, &n);
            self.singletons.peer_up(now, &n);
        }
    }
}
