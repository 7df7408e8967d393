//! The protocols of one node, composed: membership, broadcast, named messaging, replicated
//! tables and singletons behind one [`Input`]/[`Output`] pair.
//!
//! The runtime and the simulator both run a [`Stack`], so the glue between the protocols is
//! one piece of code: connections membership keeps become every protocol's peers, membership
//! events become their member lists, messages are routed by protocol, and named messages to
//! members this node has no connection to are relayed (client-server topology). The machines
//! stay private: inputs go through [`Stack::handle`], and the accessors only read.

use crate::member::NodeName;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::broadcast::{self, BroadcastConfig, Plumtree};
use crate::config::Config;
use crate::member::Member;
use crate::membership::{self, EventKind, MemberEvent, Membership};
use crate::messaging::{self, DirectMsg, Messaging, MessagingConfig, RelayMsg};
use crate::query::{self, Queries, QueryConfig};
use crate::singleton::{self, SingletonConfig, Singletons};
use crate::table::{self, TableConfig, Tables};
use crate::topology::Role;
use crate::wire::{Message, PeerInfo};

mod formed;
mod queries;

/// The settings of every protocol of a node.
#[derive(Debug, Clone, Default)]
pub struct StackConfig {
    /// Membership and failure detection.
    pub membership: Config,
    /// Plumtree broadcast.
    pub broadcast: BroadcastConfig,
    /// Named messaging.
    pub messaging: MessagingConfig,
    /// Replicated tables.
    pub tables: TableConfig,
    /// Singletons.
    pub singletons: SingletonConfig,
    /// Queries.
    pub queries: QueryConfig,
}

/// An input to a node's protocols.
#[derive(Debug)]
pub enum Input {
    /// Time passed: every protocol whose timer is due runs it. Call at
    /// [`Stack::poll_timeout`].
    Tick,
    /// A connection completed its handshake; `dialed` is the address this node dialled, if it
    /// was the dialer (see [`membership::Input::Connected`]).
    Connected {
        /// Who is on the other end.
        peer: PeerInfo,
        /// The address this node dialled to reach it (None for accepted connections).
        dialed: Option<SocketAddr>,
    },
    /// The connection to `name` closed.
    Disconnected {
        /// Who was on the other end.
        name: NodeName,
    },
    /// A dial asked by [`Output::Dial`] (or made for a join) failed. `no_listener`: it was
    /// refused or reset before the handshake, so no process listens there; singletons then
    /// take over from a leader at that address without waiting for failure detection.
    DialFailed {
        /// The dialled address.
        addr: SocketAddr,
        /// The dial was refused: nothing listens there.
        no_listener: bool,
    },
    /// A message from the connected member `from`.
    Message {
        /// The sender.
        from: NodeName,
        /// The message.
        msg: Message,
    },
    /// A membership command: join, leave, remove, set tags.
    Membership(membership::Input),
    /// A broadcast command: register a handler, broadcast, cancel exchanges.
    Broadcast(broadcast::Input),
    /// A named-messaging command: register or unregister a name, send.
    Messaging(messaging::Input),
    /// A table command: create, write, leader operations, ping, pause, join, settle.
    Table(table::Input),
    /// A singleton command: register or unregister.
    Singleton(singleton::Input),
    /// A query command: start a query, answer one (a query without a timeout gets Serf's
    /// default for the current member count, [`query::default_timeout`]).
    Query(query::Input),
}

/// An output of a node's protocols.
#[derive(Debug)]
pub enum Output {
    /// Send `msg` to the connected member `to`.
    Send {
        /// The member.
        to: NodeName,
        /// The message.
        msg: Message,
    },
    /// Open a connection to `addr`; answer with [`Input::Connected`] or [`Input::DialFailed`].
    Dial {
        /// The address.
        addr: SocketAddr,
    },
    /// Close the connection to `name`.
    Disconnect {
        /// The member.
        name: NodeName,
    },
    /// A change of another member.
    Event(MemberEvent),
    /// Broadcast: a delivery, or a command's answer (never a `Send`: those are [`Output::Send`]).
    Broadcast(broadcast::Output),
    /// Named messaging: a message for a local handler, an ack, a failure (never a `Send`).
    Messaging(messaging::Output),
    /// Replicated tables: a completed operation, a change, a replica down, a re-merge (never a
    /// `Send`).
    Table(table::Output),
    /// Singletons: an activator's event, or a command's answer (never a `Send`).
    Singleton(singleton::Output),
    /// Queries: a query for a local handler, an event of a running query, a command's answer
    /// (never a `Broadcast` or a `Send`: the stack carries those out).
    Query(query::Output),
}

/// The protocols of one node.
#[derive(Debug)]
pub struct Stack {
    membership: Membership,
    broadcast: Plumtree,
    messaging: Messaging,
    tables: Tables,
    singletons: Singletons,
    queries: Queries,
    /// The connections the other protocols know about, with the incarnation each was opened
    /// with.
    neighbours: BTreeMap<String, u64>,
    /// Membership's connections version `neighbours` reflects.
    synced: Option<u64>,
    outputs: VecDeque<Output>,
    relayed: u64,
    relay_dropped: u64,
}

/// Relays a named message may pass: client, its server, the receiver's server, receiver.
const RELAY_HOPS: u8 = 2;

/// Spreads one seed over the protocols' generators.
const BROADCAST_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const QUERY_SEED: u64 = 0x5851_f42d_4c95_7f2d;

impl Stack {
    /// The protocols of the node `local`, alone in its view, that will dial `seeds`.
    /// `local.incarnation` must grow across restarts (see [`Membership::new`]); `rng_seed`
    /// seeds every protocol's random choices.
    pub fn new(
        config: StackConfig,
        local: Member,
        seeds: impl IntoIterator<Item = SocketAddr>,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let membership = Membership::new(config.membership.clone(), local, seeds, rng_seed, now);
        Self::with_membership(config, membership, rng_seed, now)
    }

    fn with_membership(
        config: StackConfig,
        membership: Membership,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let local = membership.local();
        let name = local.name.clone();
        let table_seed = table::origin_of(&name) ^ local.incarnation.rotate_left(32);
        // A run's message ids start past any its previous runs used (see `first_id`).
        let first_message_id = local.incarnation.wrapping_mul(1 << 20);
        let broadcast = Plumtree::new(
            config.broadcast,
            name.clone(),
            rng_seed ^ BROADCAST_SEED,
            now,
        );
        let tables = Tables::new(name.clone(), config.tables, table_seed);
        let singletons =
            Singletons::new(name.clone(), config.singletons, !table_seed).untracked_while_idle();
        let mut s = Stack {
            membership,
            broadcast,
            messaging: Messaging::new(config.messaging).first_id(first_message_id),
            tables,
            singletons,
            queries: Queries::new(name.clone(), config.queries, rng_seed ^ QUERY_SEED),
            neighbours: BTreeMap::new(),
            synced: None,
            outputs: VecDeque::new(),
            relayed: 0,
            relay_dropped: 0,
        };
        s.broadcast.handle(now, broadcast::Input::MemberUp(name));
        s.register_queries(now);
        s.drain(now);
        s
    }

    /// Feeds one input; see [`Input`] for what each does.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Tick => self.tick(now),
            Input::Connected { peer, dialed } => {
                let input = membership::Input::Connected { peer, dialed };
                self.membership.handle(now, input);
            }
            Input::Disconnected { name } => {
                let input = membership::Input::Disconnected { name };
                self.membership.handle(now, input);
            }
            Input::DialFailed { addr, no_listener } => {
                let input = membership::Input::DialFailed { addr, no_listener };
                self.membership.handle(now, input);
                if no_listener {
                    self.drain(now);
                    self.no_listener(now, addr);
                }
            }
            Input::Message { from, msg } => self.on_message(now, from, msg),
            Input::Membership(input) => self.membership.handle(now, input),
            Input::Broadcast(input) => self.broadcast.handle(now, input),
            Input::Messaging(input) => self.messaging.handle(now, input),
            Input::Table(input) => self.tables.handle(now, input),
            Input::Singleton(input) => {
                if matches!(input, singleton::Input::Register { .. }) && self.singletons.is_idle() {
                    let up = self.membership.members().filter(|m| m.status.is_up());
                    let up = up.map(|m| m.name.clone()).collect();
                    self.singletons
                        .handle(now, singleton::Input::SeedMembers(up));
                }
                self.singletons.handle(now, input);
            }
            Input::Query(input) => self.query_input(now, input),
        }
        self.drain(now);
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next wanted: the earliest of the protocols' timers (membership
    /// always has one).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.membership.poll_timeout(),
            self.broadcast.poll_timeout(),
            self.messaging.poll_timeout(),
            self.tables.poll_timeout(),
            self.singletons.poll_timeout(),
            self.queries.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Membership and failure detection (read only).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Plumtree broadcast (read only).
    pub fn broadcast(&self) -> &Plumtree {
        &self.broadcast
    }

    /// Named messaging (read only).
    pub fn messaging(&self) -> &Messaging {
        &self.messaging
    }

    /// Replicated tables (read only; the records are read through [`Tables::store`]).
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Singletons (read only).
    pub fn singletons(&self) -> &Singletons {
        &self.singletons
    }

    /// Queries (read only).
    pub fn queries(&self) -> &Queries {
        &self.queries
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

    fn tick(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        if due(self.membership.poll_timeout()) {
            self.membership.handle(now, membership::Input::Tick);
        }
        if due(self.broadcast.poll_timeout()) {
            self.broadcast.handle(now, broadcast::Input::Tick);
        }
        if due(self.messaging.poll_timeout()) {
            self.messaging.handle(now, messaging::Input::Tick);
        }
        if due(self.tables.poll_timeout()) {
            self.tables.handle(now, table::Input::Tick);
        }
        if due(self.singletons.poll_timeout()) {
            self.singletons.handle(now, singleton::Input::Tick);
        }
        if due(self.queries.poll_timeout()) {
            self.queries.handle(now, query::Input::Tick);
        }
    }

    /// A dial to `addr` was refused (or reset before the handshake): no process listens there.
    /// Membership learns it through its own dial failure; singletons use it to take over from
    /// a leader that died, without waiting for failure detection.
    fn no_listener(&mut self, now: Instant, addr: SocketAddr) {
        let me = &self.membership.local().name;
        let gone = self
            .membership
            .members()
            .find(|m| m.addr == addr && &m.name != me)
            .map(|m| m.name.clone());
        if let Some(name) = gone {
            self.singletons.handle(now, singleton::Input::Gone(name));
        }
    }

    /// A message from the connected member `from`, to the protocol it belongs to.
    fn on_message(&mut self, now: Instant, from: String, msg: Message) {
        match msg {
            Message::Membership(msg) => {
                let input = membership::Input::Message { from, msg };
                self.membership.handle(now, input)
            }
            Message::Broadcast(msg) => {
                let input = broadcast::Input::Message { from, msg };
                self.broadcast.handle(now, input)
            }
            Message::Direct(msg) => {
                let input = messaging::Input::Message { from, msg };
                self.messaging.handle(now, input)
            }
            Message::Table(msg) => {
                let input = table::Input::Message { from, msg };
                self.tables.handle(now, input)
            }
            Message::Singleton(msg) => {
                let input = singleton::Input::Message { from, msg };
                self.singletons.handle(now, input)
            }
            Message::Relay(r) => self.on_relay(now, r),
        }
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
                let relayed = Relayed { from: r.from, hops };
                let out = self.route_direct(Some(relayed), r.to, r.msg);
                self.outputs.extend(out);
            }
            None => self.relay_dropped += 1,
        }
    }

    /// Where a named message to `to` goes next: straight to `to` if connected, else through a
    /// relay (client-server). `relayed` is set for a message this node relays for another;
    /// None for one sent from here.
    fn route_direct(
        &mut self,
        relayed: Option<Relayed>,
        to: String,
        msg: DirectMsg,
    ) -> Option<Output> {
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
            return Some(Output::Send { to, msg });
        }
        let hop = via.unwrap_or_else(|| to.clone());
        let Relayed { from, hops } = relayed.unwrap_or_else(|| Relayed {
            from: self.membership.local().name.clone(),
            hops: RELAY_HOPS,
        });
        let msg = Message::Relay(RelayMsg {
            from,
            to,
            hops,
            msg,
        });
        Some(Output::Send { to: hop, msg })
    }

    /// Moves every protocol's outputs out, telling the others what they mean, until none is
    /// left.
    fn drain(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(o) = self.membership.poll_output() {
                any = true;
                let out = match o {
                    membership::Output::Send { to, msg } => Output::Send {
                        to,
                        msg: Message::Membership(msg),
                    },
                    membership::Output::Dial { addr } => Output::Dial { addr },
                    membership::Output::Disconnect { name } => Output::Disconnect { name },
                    membership::Output::Event(e) => {
                        self.member_event(now, &e);
                        Output::Event(e)
                    }
                };
                self.outputs.push_back(out);
            }
            self.sync_neighbours(now);
            while let Some(o) = self.broadcast.poll_output() {
                any = true;
                let out = match o {
                    broadcast::Output::Send { to, msg } => Output::Send {
                        to,
                        msg: Message::Broadcast(msg),
                    },
                    other => match self.query_broadcast(now, other) {
                        Some(other) => Output::Broadcast(other),
                        None => continue,
                    },
                };
                self.outputs.push_back(out);
            }
            while let Some(o) = self.messaging.poll_output() {
                any = true;
                match o {
                    messaging::Output::Send { to, msg } => {
                        let out = self.route_direct(None, to, msg);
                        self.outputs.extend(out);
                    }
                    other => {
                        if let Some(other) = self.query_message(now, other) {
                            self.outputs.push_back(Output::Messaging(other));
                        }
                    }
                }
            }
            any |= self.drain_queries(now);
            while let Some(o) = self.singletons.poll_output() {
                any = true;
                self.outputs.push_back(match o {
                    singleton::Output::Send { to, msg } => Output::Send {
                        to,
                        msg: Message::Singleton(msg),
                    },
                    other => Output::Singleton(other),
                });
            }
            while let Some(o) = self.tables.poll_output() {
                any = true;
                self.outputs.push_back(match o {
                    table::Output::Send { to, msg } => Output::Send {
                        to,
                        msg: Message::Table(msg),
                    },
                    other => Output::Table(other),
                });
            }
            if !any {
                return;
            }
        }
    }

    /// A member came up, went down or left: the other protocols' member lists follow.
    fn member_event(&mut self, now: Instant, e: &MemberEvent) {
        let name = &e.member.name;
        match e.kind {
            EventKind::Up => {
                let input = broadcast::Input::MemberUp(name.clone());
                self.broadcast.handle(now, input);
                self.tables
                    .handle(now, table::Input::MemberUp(name.clone()));
                self.singletons
                    .handle(now, singleton::Input::MemberUp(name.clone()));
            }
            EventKind::Down | EventKind::Left => {
                let input = broadcast::Input::MemberDown(name.clone());
                self.broadcast.handle(now, input);
                self.tables
                    .handle(now, table::Input::MemberDown(name.clone()));
                self.singletons
                    .handle(now, singleton::Input::MemberDown(name.clone()));
            }
            EventKind::Updated => {}
        }
    }

    /// The other protocols' peers are membership's connections.
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
            self.tables.handle(now, table::Input::PeerGone(n.clone()));
            self.singletons
                .handle(now, singleton::Input::PeerGone(n.clone()));
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
            // A server's clients: the ring layout of a tree skips a client that is not
            // connected to the server whose interval holds it, so servers push to them.
            let server = self.membership.role() == Some(Role::Server);
            if server && self.membership.peer_role(&n) == Some(Role::Client) {
                self.broadcast
                    .handle(now, broadcast::Input::Leaf(n.clone()));
            }
            self.messaging
                .handle(now, messaging::Input::PeerUp(n.clone()));
            self.tables.handle(now, table::Input::PeerUp(n.clone()));
            self.singletons.handle(now, singleton::Input::PeerUp(n));
        }
    }
}

/// A named message this node relays for another: its original sender and the relays it may
/// still pass.
struct Relayed {
    from: String,
    hops: u8,
}
