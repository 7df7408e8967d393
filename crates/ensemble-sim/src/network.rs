//! The simulated network and the event loop.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ensemble_proto::broadcast::events::{EventInput, EventLog, USER_EVENTS};
use ensemble_proto::broadcast::{BroadcastConfig, Plumtree};
use ensemble_proto::messaging::{self, Messaging};
use ensemble_proto::singleton::{self, Singletons};
use ensemble_proto::table::{self, Tables};
use ensemble_proto::topology::Topology;
use ensemble_proto::wire::{self, Message, PeerInfo};
use ensemble_proto::{
    Config, EventKind, Input, Member, Membership, Stack, StackOutput, Status, Tags,
};
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

/// An input that reached a node.
enum Pending {
    Input(Input),
    Message(String, Message),
}

struct SimNode {
    name: String,
    addr: SocketAddr,
    seeds: Vec<SocketAddr>,
    topology: Topology,
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
            record_deliveries: false,
            deliveries: Vec::new(),
            boots: 0,
            by_kind: BTreeMap::new(),
            fifo: BTreeMap::new(),
            table_outputs: Vec::new(),
            singleton_events: Vec::new(),
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
        let mut config = self.config.membership.clone();
        config.topology = node.topology;
        let m = Membership::new(config, local, node.seeds.clone(), seed, self.now);
        let mut b = Plumtree::new(self.config.broadcast.clone(), name.clone(), seed, self.now);
        self.boots += 1;
        let events = EventLog::new(name, self.boots, 4096, |_| {});
        b.register(USER_EVENTS, Box::new(events))
            .expect("first handler");
        let messaging = Messaging::new(Duration::from_millis(500));
        self.nodes[id].state = Some(Stack::new(m, b, messaging, self.now));
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
        self.feed(id, Pending::Input(input));
    }

    /// Feeds one message to a node, or keeps it for later if the node is paused.
    fn message(&mut self, id: NodeId, from: String, msg: Message) {
        self.feed(id, Pending::Message(from, msg));
    }

    fn feed(&mut self, id: NodeId, input: Pending) {
        let node = &mut self.nodes[id];
        if node.paused {
            node.inbox.push_back(input);
            return;
        }
        let Some(m) = node.state.as_mut() else { return };
        match input {
            Pending::Input(input) => m.handle(self.now, input),
            Pending::Message(from, msg) => m.handle_message(self.now, from, msg),
        }
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
        let next = m.poll_timeout();
        if node.tick_at != Some(next) {
            node.tick_at = Some(next);
            let after = next.saturating_duration_since(self.now);
            self.schedule(after, Event::Tick(id));
        }
        for o in outputs {
            self.output(id, o);
        }
    }

    fn output(&mut self, from: NodeId, output: StackOutput) {
        match output {
            StackOutput::Send { to, msg } => {
                let Some(&to) = self.by_name.get(&to) else {
                    return;
                };
                *self.by_kind.entry(msg.kind()).or_default() += 1;
                // Frame header (4-byte length) included.
                let bytes = wire::message_len(&msg) as u64 + 4;
                if matches!(msg, Message::Membership(_)) {
                    self.messages += 1;
                    self.bytes += bytes;
                } else {
                    self.broadcast_messages += 1;
                    self.broadcast_bytes += bytes;
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
            StackOutput::Disconnect { name } => {
                let Some(&to) = self.by_name.get(&name) else {
                    return;
                };
                if let Some(link) = self.links.remove(&pair(from, to)) {
                    // Like the runtime, a node that closes a connection writes what it queued
                    // first: messages in flight still arrive, then the close.
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
            }
            StackOutput::Dial { addr } => {
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
            StackOutput::Delivered(d) => {
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
            StackOutput::Messaging(o) => {
                let at = self.elapsed();
                self.message_outputs.push((at, from, o));
            }
            StackOutput::Table(o) => self.table_outputs.push((from, o)),
            StackOutput::Singleton { name, event } => {
                let at = self.elapsed();
                self.singleton_events.push(SimSingletonEvent {
                    at,
                    node: from,
                    name,
                    event,
                });
            }
            StackOutput::Event(e) => {
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
            .membership
            .local();
        PeerInfo {
            name: m.name.clone(),
            addr: m.addr,
            incarnation: m.incarnation,
            instance: id as u64,
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
                match ok {
                    Some(t) if !self.links.contains_key(&pair(from, t)) => {
                        self.next_link += 1;
                        self.links.insert(pair(from, t), self.next_link);
                        let (fi, ti) = (self.info(from), self.info(t));
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
                    // Both dialled each other: the runtime keeps one connection and reports
                    // the dial as done.
                    Some(t) => {
                        let peer = self.info(t);
                        self.input(
                            from,
                            Input::Connected {
                                peer,
                                dialed: Some(addr),
                            },
                        );
                    }
                    None => self.input(from, Input::DialFailed { addr }),
                }
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

    /// Broadcasts a user event with `payload` from node `id`; returns its message id, or None
    /// if the node is crashed or hung.
    pub fn broadcast(&mut self, id: NodeId, payload: Bytes) -> Option<Bytes> {
        let node = &mut self.nodes[id];
        if node.paused {
            return None;
        }
        let m = node.state.as_mut()?;
        let input = EventInput {
            name: "sim".into(),
            payload,
        };
        let msg_id = m.broadcast(self.now, USER_EVENTS, input.encode()).ok()?;
        self.after_input(id);
        Some(msg_id)
    }

    /// The broadcast protocol of a running node.
    pub fn plumtree(&self, id: NodeId) -> Option<&Plumtree> {
        Some(&self.nodes[id].state.as_ref()?.broadcast)
    }

    /// Runs a table command on a running node (create, write, join...), then carries out what
    /// it yields.
    pub fn tables<T>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut Tables, Instant) -> T,
    ) -> Option<T> {
        let now = self.now;
        let out = self.nodes[id]
            .state
            .as_mut()?
            .with_tables(now, |t| f(t, now));
        self.after_input(id);
        Some(out)
    }

    /// Runs a singleton command on a running node (register, unregister), then carries out
    /// what it yields.
    pub fn singletons<T>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut Singletons, Instant) -> T,
    ) -> Option<T> {
        let now = self.now;
        let out = self.nodes[id]
            .state
            .as_mut()?
            .with_singletons(now, |s| f(s, now));
        self.after_input(id);
        Some(out)
    }

    /// A singleton as a running node sees it.
    pub fn singleton_info(&self, id: NodeId, name: &str) -> Option<singleton::SingletonInfo> {
        self.nodes[id].state.as_ref()?.singletons.info(name)
    }

    /// The records of a table's replica on a running node.
    pub fn table_records(&self, id: NodeId, table: &str) -> Option<Vec<table::Record>> {
        let store = self.nodes[id].state.as_ref()?.tables.store(table)?;
        let records = store.read().unwrap_or_else(|e| e.into_inner()).records();
        Some(records)
    }

    /// A table's replica state on a running node.
    pub fn table_info(&self, id: NodeId, table: &str) -> Option<table::TableInfo> {
        self.nodes[id].state.as_ref()?.tables.info(table)
    }

    /// Gives a running node a named-messaging input (register a name, send a message).
    pub fn messaging(&mut self, id: NodeId, input: messaging::Input) {
        let now = self.now;
        if let Some(s) = self.nodes[id].state.as_mut() {
            s.handle_messaging(now, input);
            self.after_input(id);
        }
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
        s.map_or(Vec::new(), |s| s.membership.connected().collect())
    }

    /// Gives a node a command (join, leave, tags).
    pub fn command(&mut self, id: NodeId, input: Input) {
        self.input(id, input);
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
        self.nodes[observer].state.as_ref()?.membership.member(name)
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
                .membership
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
            .all(|m| m.membership.up_count() == n)
    }

    /// The largest estimated state size of one node, in bytes.
    pub fn max_state_bytes(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.state.as_ref())
            .map(|s| s.membership.estimated_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.links.len()
    }
}
