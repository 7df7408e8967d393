//! The simulated network and the event loop: a priority queue of timed events (deliveries,
//! dial results, closes, ticks) over the nodes' real [`Stack`]s. Faults are in `faults`,
//! commands to nodes and what is read of them in `nodes`.

mod faults;
mod formed;
mod links;
mod nodes;
mod records;

pub use records::{SimConfig, SimDelivery, SimEvent, SimSingletonEvent, SimUserEvent};

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ensemble_proto::broadcast::events::{EventLog, USER_EVENTS};
use ensemble_proto::broadcast::{self, BroadcastError};
use ensemble_proto::messaging::{self, MessagingConfig};
use ensemble_proto::query;
use ensemble_proto::singleton::{self, SingletonError};
use ensemble_proto::stack::{Input, Output};
use ensemble_proto::table;
use ensemble_proto::topology::{Topology, ROLE_TAG};
use ensemble_proto::view::View;
use ensemble_proto::wire::{self, Message, PeerInfo};
use ensemble_proto::{EventKind, Member, Stack, StackConfig, Status, Tags};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Index of a simulated node.
pub type NodeId = usize;

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
    /// Overload: each message to it is handled up to this much late.
    lag: Duration,
    /// Overload: each of its timers fires up to this much late.
    timer_lag: Duration,
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
    /// Dials that completed a handshake (including those that lost to a connection the two
    /// nodes already had).
    pub handshakes: u64,
    /// Whether broadcast deliveries are kept in [`Sim::deliveries`].
    pub record_deliveries: bool,
    /// Broadcast deliveries so far (if recorded).
    pub deliveries: Vec<SimDelivery>,
    /// User events the nodes' event logs delivered, once recording is on.
    user_events: Arc<Mutex<Option<Vec<SimUserEvent>>>>,
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
    /// What the nodes' queries yielded (requests, events, answers), in order.
    pub query_outputs: Vec<(Duration, NodeId, query::Output)>,
}

/// The address of node `id`.
fn node_addr(id: NodeId) -> SocketAddr {
    SocketAddr::from(([10, (id >> 16) as u8, (id >> 8) as u8, id as u8], 7946))
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
            handshakes: 0,
            other_bytes: 0,
            record_deliveries: false,
            deliveries: Vec::new(),
            user_events: Arc::default(),
            boots: 0,
            by_kind: BTreeMap::new(),
            fifo: BTreeMap::new(),
            table_outputs: Vec::new(),
            singleton_events: Vec::new(),
            singleton_answers: Vec::new(),
            broadcast_answer: None,
            message_outputs: Vec::new(),
            query_outputs: Vec::new(),
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
        let id = self.push_node(name, seeds, topology);
        self.boot(id, None);
        id
    }

    /// Adds a node without starting it (its seeds need not be added yet).
    fn push_node(&mut self, name: &str, seeds: &[NodeId], topology: Topology) -> NodeId {
        let id = self.nodes.len();
        let addr = node_addr(id);
        let seeds = seeds.iter().map(|s| node_addr(*s)).collect();
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
            lag: Duration::ZERO,
            timer_lag: Duration::ZERO,
        });
        self.by_name.insert(name.to_owned(), id);
        self.by_addr.insert(addr, id);
        id
    }

    /// Node `id` as it announces itself when it boots now.
    fn local_member(&self, id: NodeId) -> Member {
        let node = &self.nodes[id];
        // A restart must look newer than the old process: incarnations come from the clock.
        let incarnation = 1_000_000 + self.elapsed().as_millis() as u64;
        let tags = match node.topology.role() {
            Some(role) => Tags::default().with(ROLE_TAG, role.as_str()),
            None => Tags::default(),
        };
        Member {
            name: node.name.clone(),
            addr: node.addr,
            incarnation,
            status: Status::Alive,
            tags,
        }
    }

    /// Starts node `id`: alone, joining through its seeds, or (`formed`) as a member of the
    /// cluster this view holds.
    fn boot(&mut self, id: NodeId, formed: Option<View>) {
        let local = self.local_member(id);
        let node = &self.nodes[id];
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
            queries: Default::default(),
        };
        let mut stack = match formed {
            Some(view) => Stack::formed(config, local, view, seed, self.now),
            None => Stack::new(config, local, node.seeds.clone(), seed, self.now),
        };
        self.boots += 1;
        let record = self.user_events.clone();
        let events = EventLog::new(name, self.boots, 4096, move |event| {
            if let Some(v) = record.lock().expect("not poisoned").as_mut() {
                v.push(SimUserEvent { node: id, event });
            }
        });
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

    /// A random extra delay for a message to `id` if it is overloaded (see `Sim::overload`).
    fn lag(&mut self, id: NodeId) -> Duration {
        let lag = self.nodes[id].lag;
        self.up_to(lag)
    }

    /// A random extra delay for a timer of `id` if it is overloaded.
    fn timer_lag(&mut self, id: NodeId) -> Duration {
        let lag = self.nodes[id].timer_lag;
        self.up_to(lag)
    }

    fn up_to(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return max;
        }
        max.mul_f64(self.rng.gen::<f64>())
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
        let reschedule = node.tick_at != Some(next);
        node.tick_at = Some(next);
        if reschedule {
            let after = next.saturating_duration_since(self.now) + self.timer_lag(id);
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
                let at = self.now + self.delay() + self.lag(to);
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
            // The simulator's handlers exchange by summaries; a custom one would expire.
            Output::Broadcast(broadcast::Output::Send { .. })
            | Output::Broadcast(broadcast::Output::CustomExchange { .. }) => {}
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
            Output::Query(o) => self.query_outputs.push((self.elapsed(), from, o)),
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
        PeerInfo::of(m, self.nodes[id].instance)
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
            Event::DialDone { from, addr, to } => self.dial_done(from, addr, to),
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
}
