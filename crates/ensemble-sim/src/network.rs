//! The simulated network and the event loop.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ensemble_proto::broadcast::events::{EventInput, EventLog, USER_EVENTS};
use ensemble_proto::broadcast::{self, BroadcastConfig, BroadcastError, Plumtree};
use ensemble_proto::membership::{self, keeps_new, Connection};
use ensemble_proto::messaging::{self, MessagingConfig};
use ensemble_proto::singleton::{self, SingletonConfig, SingletonError};
use ensemble_proto::stack::{Input, Output};
use ensemble_proto::table::{self, Store, TableConfig};
use ensemble_proto::topology::Topology;
use ensemble_proto::wire::{self, Message, PeerInfo};
use ensemble_proto::{Config, EventKind, Member, Stack, StackConfig, Status, Tags};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Index of a simulated node.
pub type NodeId = usize;

/// A membership event reported by one simulated node about another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimEvent {
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// The node that reported it.
    pub observer: NodeId,
    /// What happened.
    pub kind: EventKind,
    /// The node it happened to.
    pub target: NodeId,
    /// The target's incarnation in the event.
    pub incarnation: u64,
}

/// Settings of a simulated network.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// One-way latency of every message.
    pub latency: Duration,
    /// Uniform jitter added to the latency (0 to this much).
    pub jitter: Duration,
    /// Probability that a message is lost.
    pub loss: f64,
    /// How long a dial to a hung or unreachable node takes to fail.
    pub dial_timeout: Duration,
    /// Seed of the network's and the nodes' RNGs.
    pub seed: u64,
    /// Membership settings of every node.
    pub membership: Config,
    /// Broadcast settings of every node.
    pub broadcast: BroadcastConfig,
    /// Replicated-table settings of every node.
    pub tables: TableConfig,
    /// Singleton settings of every node.
    pub singletons: SingletonConfig,
}

/// A broadcast message delivered at a simulated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDelivery {
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// The node it was delivered at.
    pub node: NodeId,
    /// The message id.
    pub id: Bytes,
    /// Hops from its root.
    pub round: u32,
    /// True if anti-entropy delivered it.
    pub repaired: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            dial_timeout: Duration::from_secs(2),
            seed: 1,
            membership: Config::default(),
            broadcast: BroadcastConfig::default(),
            tables: TableConfig::default(),
            singletons: SingletonConfig::default(),
        }
    }
}

#[derive(Debug)]
enum Event {
    Tick(NodeId),
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: Message,
        /// The connection it was sent on.
        link: u64,
    },
    DialDone {
        from: NodeId,
        addr: SocketAddr,
        to: Option<NodeId>,
    },
    Closed {
        at: NodeId,
        peer: NodeId,
        link: u64,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, the earliest event must come first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// An input that reached a node (kept while it is paused).
type Pending = Input;

struct SimNode {
    name: String,
    addr: SocketAddr,
    seeds: Vec<SocketAddr>,
    topology: Topology,
    /// Random per boot, like a process's (announced in handshakes).
    instance: u64,
    state: Option<Stack>,
    paused: bool,
    /// Inputs that reached the node while it was paused.
    inbox: VecDeque<Pending>,
    tick_at: Option<Instant>,
}

/// A simulated cluster.
pub struct Sim {
    config: SimConfig,
    start: Instant,
    now: Instant,
    rng: SmallRng,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<SimNode>,
    /// Open connections, as (lower id, higher id), with a unique id per connection.
    links: BTreeMap<(NodeId, NodeId), u64>,
    /// Who dialled each open connection.
    dialers: BTreeMap<u64, NodeId>,
    next_link: u64,
    /// Connections closed by one side whose last messages are still in flight.
    draining: BTreeSet<u64>,
    /// Pairs that cannot talk, as (lower id, higher id).
    blocked: BTreeSet<(NodeId, NodeId)>,
    by_name: BTreeMap<String, NodeId>,
    by_addr: BTreeMap<SocketAddr, NodeId>,
    events: Vec<SimEvent>,
    /// Whether `up` and `updated` events are kept (a join storm of n nodes makes n^2 of them).
    pub record_up_events: bool,
    /// Membership messages sent (delivered or lost).
    pub messages: u64,
    /// Bytes of the membership messages sent.
    pub bytes: u64,
    /// Broadcast messages sent (delivered or lost).
    pub broadcast_messages: u64,
    /// Bytes of the broadcast messages sent.
    pub broadcast_bytes: u64,
    /// Messages of the other protocols sent (named messages and their relays, tables,
    /// singletons), delivered or lost.
    pub other_messages: u64,
    /// Bytes of the other protocols' messages sent.
    pub other_bytes: u64,
    /// Whether broadcast deliveries are kept in [`Sim::deliveries`].
    pub record_deliveries: bool,
    /// Broadcast deliveries so far (if recorded).
    pub deliveries: Vec<SimDelivery>,
    boots: u64,
    /// Messages sent, by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// When the last message on each (from, to) link arrives: links are FIFO, like TCP.
    fifo: BTreeMap<(NodeId, NodeId), Instant>,
    /// What the nodes' replicated tables yielded (completions, changes, re-merges).
    pub table_outputs: Vec<(NodeId, table::Output)>,
    /// What the nodes' singleton activators reported, in order.
    pub singleton_events: Vec<SimSingletonEvent>,
    /// The answers to singleton commands: (node, token, result), in order.
    pub singleton_answers: Vec<(NodeId, u64, Result<(), SingletonError>)>,
    /// The answer to the last broadcast command.
    broadcast_answer: Option<Result<broadcast::Reply, BroadcastError>>,
    /// What the nodes' named messaging yielded (deliveries, acks, failures), in order.
    pub message_outputs: Vec<(Duration, NodeId, messaging::Output)>,
}

/// A singleton event on a node, at a simulated time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSingletonEvent {
    /// Simulated time since the start.
    pub at: Duration,
    /// The node.
    pub node: NodeId,
    /// The singleton.
    pub name: String,
    /// What happened.
    pub event: singleton::SingletonEvent,
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl Sim {
    /// An empty cluster.
    pub fn new(config: SimConfig) -> Self {
        let start = Instant::now();
        Sim {
            rng: SmallRng::seed_from_u64(config.seed),
            config,
            start,
            now: start,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            links: BTreeMap::new(),
            dialers: BTreeMap::new(),
            next_link: 0,
            draining: BTreeSet::new(),
            blocked: BTreeSet::new(),
            by_name: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            events: Vec::new(),
            record_up_events: true,
            messages: 0,
            bytes: 0,
            broadcast_messages: 0,
            broadcast_bytes: 0,
            other_messages: 0,
            other_bytes: 0,
            record_deliveries: false,
            deliveries: Vec::new(),
            boots: 0,
            by_kind: BTreeMap::new(),
            fifo: BTreeMap::new(),
            table_outputs: Vec::new(),
            singleton_events: Vec::new(),
            singleton_answers: Vec::new(),
            broadcast_answer: None,
            message_outputs: Vec::new(),
        }
    }

    /// The virtual clock now (for deadlines given to the nodes).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Adds and starts a node named `name` that will join through `seeds` (node ids).
    pub fn add_node(&mut self, name: &str, seeds: &[NodeId]) -> NodeId {
        let topology = self.config.membership.topology;
        self.add_node_as(name, seeds, topology)
    }

    /// Adds and starts a node with a topology of its own (a client or a server).
    pub fn add_node_as(&mut self, name: &str, seeds: &[NodeId], topology: Topology) -> NodeId {
        let id = self.nodes.len();
        let addr = SocketAddr::from(([10, (id >> 16) as u8, (id >> 8) as u8, id as u8], 7946));
        let seeds = seeds.iter().map(|s| self.nodes[*s].addr).collect();
        self.nodes.push(SimNode {
            name: name.to_owned(),
            addr,
            seeds,
            topology,
            instance: 0,
            state: None,
            paused: false,
            inbox: VecDeque::new(),
            tick_at: None,
        });
        self.by_name.insert(name.to_owned(), id);
        self.by_addr.insert(addr, id);
        self.boot(id);
        id
    }

    fn boot(&mut self, id: NodeId) {
        let node = &self.nodes[id];
        // A restart must look newer than the old process: incarnations come from the clock.
        let incarnation = 1_000_000 + self.elapsed().as_millis() as u64;
        let local = Member {
            name: node.name.clone(),
            addr: node.addr,
            incarnation,
            status: Status::Alive,
            tags: Tags::default(),
        };
        let seed = self.rng.gen();
        let name = node.name.clone();
        let mut membership = self.config.membership.clone();
        membership.topology = node.topology;
        let config = StackConfig {
            membership,
            broadcast: self.config.broadcast.clone(),
            messaging: MessagingConfig::default(),
            tables: self.config.tables.clone(),
            singletons: self.config.singletons.clone(),
        };
        let seeds = node.seeds.clone();
        let mut stack = Stack::new(config, local, seeds, seed, self.now);
        self.boots += 1;
        let events = EventLog::new(name, self.boots, 4096, |_| {});
        let register = broadcast::Input::Register {
            token: 0,
            name: USER_EVENTS.into(),
            handler: Box::new(events),
        };
        stack.handle(self.now, Input::Broadcast(register));
        while stack.poll_output().is_some() {}
        self.nodes[id].state = Some(stack);
        self.nodes[id].instance = self.boots;
        self.nodes[id].paused = false;
        self.nodes[id].inbox.clear();
        self.input(id, Input::Tick);
    }

    fn schedule(&mut self, after: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after,
            seq: self.seq,
            event,
        });
    }

    fn delay(&mut self) -> Duration {
        let jitter = self.config.jitter.as_secs_f64() * self.rng.gen::<f64>();
        self.config.latency + Duration::from_secs_f64(jitter)
    }

    fn running(&self, id: NodeId) -> bool {
        self.nodes[id].state.is_some()
    }

    /// Feeds one input to a node, or keeps it for later if the node is paused.
    fn input(&mut self, id: NodeId, input: Input) {
        self.feed(id, input);
    }

    /// Feeds one message to a node, or keeps it for later if the node is paused.
    fn message(&mut self, id: NodeId, from: String, msg: Message) {
        self.feed(id, Input::Message { from, msg });
    }

    fn feed(&mut self, id: NodeId, input: Pending) {
        let node = &mut self.nodes[id];
        if node.paused {
            node.inbox.push_back(input);
            return;
        }
        let Some(m) = node.state.as_mut() else { return };
        m.handle(self.now, input);
        self.after_input(id);
    }

    /// Carries out what a node's last input produced and schedules its next tick.
    fn after_input(&mut self, id: NodeId) {
        let node = &mut self.nodes[id];
        let Some(m) = node.state.as_mut() else { return };
        let mut outputs = Vec::new();
        while let Some(o) = m.poll_output() {
            outputs.push(o);
        }
        let next = m.poll_timeout().expect("membership always has a timer");
        if node.tick_at != Some(next) {
            node.tick_at = Some(next);
            let after = next.saturating_duration_since(self.now);
            self.schedule(after, Event::Tick(id));
        }
        for o in outputs {
            self.output(id, o);
        }
    }

    fn output(&mut self, from: NodeId, output: Output) {
        match output {
            Output::Send { to, msg } => {
                let Some(&to) = self.by_name.get(&to) else {
                    return;
                };
                *self.by_kind.entry(msg.kind()).or_default() += 1;
                // Frame header (4-byte length) included.
                let bytes = wire::message_len(&msg) as u64 + 4;
                match msg {
                    Message::Membership(_) => {
                        self.messages += 1;
                        self.bytes += bytes;
                    }
                    Message::Broadcast(_) => {
                        self.broadcast_messages += 1;
                        self.broadcast_bytes += bytes;
                    }
                    Message::Direct(_)
                    | Message::Relay(_)
                    | Message::Table(_)
                    | Message::Singleton(_) => {
                        self.other_messages += 1;
                        self.other_bytes += bytes;
                    }
                }
                let lost = self.config.loss > 0.0 && self.rng.gen_bool(self.config.loss);
                let Some(&link) = self.links.get(&pair(from, to)).filter(|_| !lost) else {
                    return;
                };
                let at = self.now + self.delay();
                let last = self.fifo.entry((from, to)).or_insert(at);
                let at = at.max(*last);
                *last = at;
                let d = at - self.now;
                self.schedule(
                    d,
                    Event::Deliver {
                        from,
                        to,
                        msg,
                        link,
                    },
                );
            }
            Output::Disconnect { name } => {
                let Some(&to) = self.by_name.get(&name) else {
                    return;
                };
                if let Some(link) = self.links.remove(&pair(from, to)) {
                    self.drain_link(from, to, link);
                }
            }
            Output::Dial { addr } => {
                let to = self.by_addr.get(&addr).copied();
                let reachable = to.filter(|t| self.running(*t));
                let after = match reachable {
                    Some(t) if self.blocked.contains(&pair(from, t)) || self.nodes[t].paused => {
                        self.config.dial_timeout
                    }
                    // Refused at once: nothing listens.
                    None => self.config.latency * 2,
                    Some(_) => self.config.latency * 3,
                };
                self.schedule(after, Event::DialDone { from, addr, to });
            }
            Output::Broadcast(broadcast::Output::Done { result, .. }) => {
                self.broadcast_answer = Some(result);
            }
            Output::Broadcast(broadcast::Output::Send { .. }) => {}
            Output::Broadcast(broadcast::Output::Delivered(d)) => {
                if self.record_deliveries {
                    self.deliveries.push(SimDelivery {
                        at: self.elapsed(),
                        node: from,
                        id: d.id,
                        round: d.round,
                        repaired: d.repaired,
                    });
                }
            }
            Output::Messaging(o) => {
                let at = self.elapsed();
                self.message_outputs.push((at, from, o));
            }
            Output::Table(o) => self.table_outputs.push((from, o)),
            Output::Singleton(singleton::Output::Done { token, result }) => {
                self.singleton_answers.push((from, token, result));
            }
            Output::Singleton(singleton::Output::Send { .. }) => {}
            Output::Singleton(singleton::Output::Event { name, event }) => {
                let at = self.elapsed();
                self.singleton_events.push(SimSingletonEvent {
                    at,
                    node: from,
                    name,
                    event,
                });
            }
            Output::Event(e) => {
                if !self.record_up_events && matches!(e.kind, EventKind::Up | EventKind::Updated) {
                    return;
                }
                let Some(&target) = self.by_name.get(&e.member.name) else {
                    return;
                };
                self.events.push(SimEvent {
                    at: self.elapsed(),
                    observer: from,
                    kind: e.kind,
                    target,
                    incarnation: e.member.incarnation,
                });
            }
        }
    }

    fn info(&self, id: NodeId) -> PeerInfo {
        let m = self.nodes[id]
            .state
            .as_ref()
            .expect("running node")
            .membership()
            .local();
        PeerInfo {
            name: m.name.clone(),
            addr: m.addr,
            incarnation: m.incarnation,
            instance: self.nodes[id].instance,
            role: ensemble_proto::topology::role_of(m),
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick(id) => {
                self.nodes[id].tick_at = None;
                self.input(id, Input::Tick);
            }
            Event::Deliver {
                from,
                to,
                msg,
                link,
            } => {
                let open = self.links.get(&pair(from, to)) == Some(&link);
                if (open || self.draining.contains(&link))
                    && !self.blocked.contains(&pair(from, to))
                {
                    let from = self.nodes[from].name.clone();
                    self.message(to, from, msg);
                }
            }
            Event::DialDone { from, addr, to } => {
                if !self.running(from) {
                    return;
                }
                let ok = to.filter(|t| {
                    self.running(*t)
                        && !self.nodes[*t].paused
                        && !self.blocked.contains(&pair(from, *t))
                });
                let Some(t) = ok else {
                    // Refused at once (nothing listens) or timed out (hung, cut off).
                    let no_listener = to.is_none_or(|t| !self.running(t));
                    return self.input(from, Input::DialFailed { addr, no_listener });
                };
                let (fi, ti) = (self.info(from), self.info(t));
                let keep = match self.links.get(&pair(from, t)) {
                    None => true,
                    // A second connection between the two (they dialled each other at once):
                    // both ends keep the one the runtime's rule picks, without talking.
                    Some(old) => {
                        let old_dialer = &self.nodes[self.dialers[old]].name;
                        let old = Connection {
                            dialer: old_dialer,
                            peer: &ti,
                        };
                        let new = Connection {
                            dialer: &fi.name,
                            peer: &ti,
                        };
                        keeps_new(&old, &new)
                    }
                };
                if keep {
                    self.next_link += 1;
                    let link = self.next_link;
                    if let Some(old) = self.links.insert(pair(from, t), link) {
                        self.replaced(from, t, old);
                    }
                    self.dialers.insert(link, from);
                }
                // Both ends hear of the handshake, as in the runtime; a connection that loses
                // is closed, and the dial still completes.
                self.input(
                    from,
                    Input::Connected {
                        peer: ti,
                        dialed: Some(addr),
                    },
                );
                self.input(
                    t,
                    Input::Connected {
                        peer: fi,
                        dialed: None,
                    },
                );
            }
            Event::Closed { at, peer, link } => {
                self.draining.remove(&link);
                // A newer connection between the two may exist already (a quick restart): the
                // runtime ignores the close of a replaced connection, and so does the simulator.
                if self.links.get(&pair(at, peer)).is_some_and(|l| *l != link) {
                    return;
                }
                let name = self.nodes[peer].name.clone();
                self.input(at, Input::Disconnected { name });
            }
        }
    }

    /// Runs the simulation for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(top) = self.queue.peek() {
            if top.at > until {
                break;
            }
            let s = self.queue.pop().expect("peeked");
            self.now = s.at;
            self.dispatch(s.event);
        }
        self.now = until;
    }

    /// Runs until `done` holds (checked every 10 ms of virtual time) or `limit` passes; returns
    /// the virtual time it took, or None on time-out.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.run_for(Duration::from_millis(10));
        }
        done(self).then(|| self.now - start)
    }

    /// `from` closes connection `link` to `to`. Like the runtime, a node that closes a
    /// connection writes what it queued first: messages in flight still arrive, then the close.
    fn drain_link(&mut self, from: NodeId, to: NodeId, link: u64) {
        self.dialers.remove(&link);
        self.draining.insert(link);
        let last = self.fifo.get(&(from, to)).copied().unwrap_or(self.now);
        let d = self
            .config
            .latency
            .max(last.saturating_duration_since(self.now));
        self.schedule(
            d,
            Event::Closed {
                at: to,
                peer: from,
                link,
            },
        );
    }

    /// Connection `old` between `a` and `b` lost to a newer one: both ends drop it, what is in
    /// flight on it still arrives, and its close is ignored (a newer connection is open).
    fn replaced(&mut self, a: NodeId, b: NodeId, old: u64) {
        self.drain_link(a, b, old);
    }

    /// Closes every connection of `id` (after one latency at the peers).
    fn close_links(&mut self, id: NodeId) {
        let mine: Vec<((NodeId, NodeId), u64)> = self
            .links
            .iter()
            .filter(|((a, b), _)| *a == id || *b == id)
            .map(|(k, v)| (*k, *v))
            .collect();
        for ((a, b), link) in mine {
            self.links.remove(&(a, b));
            self.dialers.remove(&link);
            let peer = if a == id { b } else { a };
            let d = self.config.latency;
            self.schedule(
                d,
                Event::Closed {
                    at: peer,
                    peer: id,
                    link,
                },
            );
        }
    }

    /// Kills a node: its connections close, dials to it are refused.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes[id].state = None;
        self.nodes[id].tick_at = None;
        self.close_links(id);
    }

    /// Restarts a crashed node, as a new incarnation on the same address.
    pub fn restart(&mut self, id: NodeId) {
        if self.running(id) {
            self.crash(id);
        }
        self.boot(id);
    }

    /// Hangs a node: it reads nothing and sends nothing; its connections stay open.
    pub fn pause(&mut self, id: NodeId) {
        self.nodes[id].paused = true;
    }

    /// Resumes a hung node: it handles what arrived meanwhile, then ticks.
    pub fn resume(&mut self, id: NodeId) {
        self.nodes[id].paused = false;
        while let Some(i) = self.nodes[id].inbox.pop_front() {
            self.feed(id, i);
        }
        self.input(id, Input::Tick);
    }

    /// Hands a running node an input at once (paused or not, as a local API call would be),
    /// then carries out what it yields. None if the node is not running.
    fn call(&mut self, id: NodeId, input: Input) -> Option<()> {
        let now = self.now;
        self.nodes[id].state.as_mut()?.handle(now, input);
        self.after_input(id);
        Some(())
    }

    /// Broadcasts a user event with `payload` from node `id`; returns its message id, or None
    /// if the node is crashed or hung.
    pub fn broadcast(&mut self, id: NodeId, payload: Bytes) -> Option<Bytes> {
        if self.nodes[id].paused {
            return None;
        }
        let input = EventInput {
            name: "sim".into(),
            payload,
        };
        let input = broadcast::Input::Broadcast {
            token: 0,
            handler: USER_EVENTS.into(),
            msg: input.encode(),
        };
        self.broadcast_answer = None;
        self.call(id, Input::Broadcast(input))?;
        match self.broadcast_answer.take()? {
            Ok(broadcast::Reply::Broadcast(msg_id)) => Some(msg_id),
            _ => None,
        }
    }

    /// The broadcast protocol of a running node.
    pub fn plumtree(&self, id: NodeId) -> Option<&Plumtree> {
        Some(self.nodes[id].state.as_ref()?.broadcast())
    }

    /// Gives a running node a table input (create, write, join...), then carries out what it
    /// yields; answers arrive in [`Sim::table_outputs`]. None if the node is not running.
    pub fn table(&mut self, id: NodeId, input: table::Input) -> Option<()> {
        self.call(id, Input::Table(input))
    }

    /// Gives a running node a singleton input (register, unregister), then carries out what it
    /// yields; answers arrive in [`Sim::singleton_answers`]. None if the node is not running.
    pub fn singleton(&mut self, id: NodeId, input: singleton::Input) -> Option<()> {
        self.call(id, Input::Singleton(input))
    }

    /// A singleton as a running node sees it.
    pub fn singleton_info(&self, id: NodeId, name: &str) -> Option<singleton::SingletonInfo> {
        self.nodes[id].state.as_ref()?.singletons().info(name)
    }

    /// A table's replica on a running node: its records, shared for reads.
    pub fn table_store(&self, id: NodeId, table: &str) -> Option<Arc<RwLock<Store>>> {
        self.nodes[id].state.as_ref()?.tables().store(table)
    }

    /// The records of a table's replica on a running node.
    pub fn table_records(&self, id: NodeId, table: &str) -> Option<Vec<table::Record>> {
        let store = self.table_store(id, table)?;
        let records = store.read().unwrap_or_else(|e| e.into_inner()).records();
        Some(records)
    }

    /// A table's replica state on a running node.
    pub fn table_info(&self, id: NodeId, table: &str) -> Option<table::TableInfo> {
        self.nodes[id].state.as_ref()?.tables().info(table)
    }

    /// Gives a running node a named-messaging input (register a name, send a message).
    pub fn messaging(&mut self, id: NodeId, input: messaging::Input) {
        self.call(id, Input::Messaging(input));
    }

    /// Named messages relayed for others and dropped for lack of a route, summed over nodes.
    pub fn relay_counts(&self) -> (u64, u64) {
        let stacks = self.nodes.iter().filter_map(|n| n.state.as_ref());
        stacks.fold((0, 0), |(r, d), s| {
            let (r2, d2) = s.relay_counts();
            (r + r2, d + d2)
        })
    }

    /// The members one running node holds connections to.
    pub fn peers_of(&self, id: NodeId) -> Vec<&str> {
        let s = self.nodes[id].state.as_ref();
        s.map_or(Vec::new(), |s| s.membership().connected().collect())
    }

    /// Who dialled the open connection between `a` and `b`, if there is one.
    pub fn dialer(&self, a: NodeId, b: NodeId) -> Option<NodeId> {
        let link = self.links.get(&pair(a, b))?;
        self.dialers.get(link).copied()
    }

    /// Gives a node a membership command (leave, remove, tags).
    pub fn command(&mut self, id: NodeId, input: membership::Input) {
        self.input(id, Input::Membership(input));
    }

    /// Has node `id` join node `to`, as the runtime does: the join input, and a dial at once.
    pub fn join(&mut self, id: NodeId, to: NodeId) {
        let addr = self.nodes[to].addr;
        self.input(id, Input::Membership(membership::Input::Join { addr }));
        if self.running(id) {
            self.output(id, Output::Dial { addr });
        }
    }

    /// Splits the cluster: nodes of `a` and nodes of `b` can no longer talk.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for x in a {
            for y in b {
                self.blocked.insert(pair(*x, *y));
            }
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The node's name.
    pub fn name(&self, id: NodeId) -> &str {
        &self.nodes[id].name
    }

    /// How node `observer` sees `name`, if it is running and knows it.
    pub fn seen(&self, observer: NodeId, name: &str) -> Option<&Member> {
        self.nodes[observer]
            .state
            .as_ref()?
            .membership()
            .member(name)
    }

    /// The status `observer` holds for node `id`.
    pub fn status(&self, observer: NodeId, id: NodeId) -> Option<Status> {
        self.seen(observer, &self.nodes[id].name).map(|m| m.status)
    }

    /// The node's own incarnation, if running.
    pub fn incarnation(&self, id: NodeId) -> Option<u64> {
        Some(
            self.nodes[id]
                .state
                .as_ref()?
                .membership()
                .local()
                .incarnation,
        )
    }

    /// Ids of running, unpaused nodes.
    pub fn live(&self) -> Vec<NodeId> {
        (0..self.nodes.len())
            .filter(|i| self.running(*i) && !self.nodes[*i].paused)
            .collect()
    }

    /// True if every live node sees every node in `ids` with status `status`.
    pub fn all_see(&self, ids: &[NodeId], status: Status) -> bool {
        self.live().iter().all(|o| {
            ids.iter()
                .filter(|i| *i != o)
                .all(|i| self.status(*o, *i) == Some(status))
        })
    }

    /// Events reported so far.
    pub fn events(&self) -> &[SimEvent] {
        &self.events
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// True if every live node counts exactly `n` members up (itself included).
    pub fn all_count_up(&self, n: usize) -> bool {
        self.nodes
            .iter()
            .filter(|node| !node.paused)
            .filter_map(|node| node.state.as_ref())
            .all(|m| m.membership().up_count() == n)
    }

    /// The largest estimated state size of one node, in bytes.
    pub fn max_state_bytes(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.state.as_ref())
            .map(|s| s.membership().estimated_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.links.len()
    }
}
