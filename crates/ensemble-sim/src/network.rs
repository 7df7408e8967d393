//! The simulated network and the event loop.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ensemble_proto::wire::{self, MembershipMsg, PeerInfo};
use ensemble_proto::{Config, EventKind, Input, Member, Membership, Output, Status, Tags};
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
        }
    }
}

#[derive(Debug)]
enum Event {
    Tick(NodeId),
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: MembershipMsg,
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

struct SimNode {
    name: String,
    addr: SocketAddr,
    seeds: Vec<SocketAddr>,
    state: Option<Membership>,
    paused: bool,
    /// Inputs that reached the node while it was paused.
    inbox: VecDeque<Input>,
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
    /// Pairs that cannot talk, as (lower id, higher id).
    blocked: BTreeSet<(NodeId, NodeId)>,
    by_name: BTreeMap<String, NodeId>,
    by_addr: BTreeMap<SocketAddr, NodeId>,
    events: Vec<SimEvent>,
    /// Whether `up` and `updated` events are kept (a join storm of n nodes makes n^2 of them).
    pub record_up_events: bool,
    /// Messages delivered or lost, and their encoded size.
    pub messages: u64,
    /// Bytes of all messages sent.
    pub bytes: u64,
    /// Messages sent, by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// The name of a message's kind, for counting.
fn kind(msg: &MembershipMsg) -> &'static str {
    match msg {
        MembershipMsg::Heartbeat => "heartbeat",
        MembershipMsg::Ping { .. } => "ping",
        MembershipMsg::Ack { .. } => "ack",
        MembershipMsg::ProbeRequest { .. } => "probe_request",
        MembershipMsg::ProbeResult { .. } => "probe_result",
        MembershipMsg::Gossip { .. } => "gossip",
        MembershipMsg::Digest { .. } => "digest",
        MembershipMsg::Sync { .. } => "sync",
    }
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
            blocked: BTreeSet::new(),
            by_name: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            events: Vec::new(),
            record_up_events: true,
            messages: 0,
            bytes: 0,
            by_kind: BTreeMap::new(),
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Adds and starts a node named `name` that will join through `seeds` (node ids).
    pub fn add_node(&mut self, name: &str, seeds: &[NodeId]) -> NodeId {
        let id = self.nodes.len();
        let addr = SocketAddr::from(([10, (id >> 16) as u8, (id >> 8) as u8, id as u8], 7946));
        let seeds = seeds.iter().map(|s| self.nodes[*s].addr).collect();
        self.nodes.push(SimNode {
            name: name.to_owned(),
            addr,
            seeds,
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
        let m = Membership::new(
            self.config.membership.clone(),
            local,
            node.seeds.clone(),
            seed,
            self.now,
        );
        self.nodes[id].state = Some(m);
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
        let node = &mut self.nodes[id];
        if node.paused {
            node.inbox.push_back(input);
            return;
        }
        let Some(m) = node.state.as_mut() else { return };
        m.handle(self.now, input);
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

    fn output(&mut self, from: NodeId, output: Output) {
        match output {
            Output::Send { to, msg } => {
                let Some(&to) = self.by_name.get(&to) else {
                    return;
                };
                self.messages += 1;
                *self.by_kind.entry(kind(&msg)).or_default() += 1;
                // Frame header (4-byte length) included.
                self.bytes += wire::membership_len(&msg) as u64 + 4;
                let lost = self.config.loss > 0.0 && self.rng.gen_bool(self.config.loss);
                if lost || !self.links.contains_key(&pair(from, to)) {
                    return;
                }
                let d = self.delay();
                self.schedule(d, Event::Deliver { from, to, msg });
            }
            Output::Disconnect { name } => {
                let Some(&to) = self.by_name.get(&name) else {
                    return;
                };
                if let Some(link) = self.links.remove(&pair(from, to)) {
                    let d = self.config.latency;
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
        let m = self.nodes[id].state.as_ref().expect("running node").local();
        PeerInfo {
            name: m.name.clone(),
            addr: m.addr,
            incarnation: m.incarnation,
            instance: id as u64,
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick(id) => {
                self.nodes[id].tick_at = None;
                self.input(id, Input::Tick);
            }
            Event::Deliver { from, to, msg } => {
                if self.links.contains_key(&pair(from, to))
                    && !self.blocked.contains(&pair(from, to))
                {
                    let from = self.nodes[from].name.clone();
                    self.input(to, Input::Message { from, msg });
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
            self.input(id, i);
        }
        self.input(id, Input::Tick);
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
        self.nodes[observer].state.as_ref()?.member(name)
    }

    /// The status `observer` holds for node `id`.
    pub fn status(&self, observer: NodeId, id: NodeId) -> Option<Status> {
        self.seen(observer, &self.nodes[id].name).map(|m| m.status)
    }

    /// The node's own incarnation, if running.
    pub fn incarnation(&self, id: NodeId) -> Option<u64> {
        Some(self.nodes[id].state.as_ref()?.local().incarnation)
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
            .all(|m| m.up_count() == n)
    }

    /// The largest estimated state size of one node, in bytes.
    pub fn max_state_bytes(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.state.as_ref())
            .map(Membership::estimated_bytes)
            .max()
            .unwrap_or(0)
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.links.len()
    }
}
