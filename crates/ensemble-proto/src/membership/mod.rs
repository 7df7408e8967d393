//! The membership protocol as a sans-IO state machine.
//!
//! [`Membership`] owns the [`View`], one phi accrual detector per connected peer, the suspicion
//! and probe bookkeeping, and the dial schedule. The runtime feeds it [`Input`]s with the current
//! time and carries out its [`Output`]s: messages to send, addresses to dial, connections to
//! close, events to report.
//!
//! The code is split by concern: `gossip` (merging, accusations, dissemination, anti-entropy),
//! `detect` (heartbeats, probes, suspicion), `connect` (connections, dialling, the overlay).

mod accusers;
mod connect;
mod detect;

pub use accusers::{Accusation, Accuser};
pub use connect::{keeps_new, Connection};
mod gossip;
mod io;
#[cfg(test)]
mod tests;

pub use io::{EventKind, Input, MemberEvent, Output};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::detector::PhiDetector;
use crate::member::{Member, Status, Tags};
use crate::overlay::Overlay;
use crate::probe::Probes;
use crate::topology::{Role, Topology, ROLE_TAG};
use crate::view::View;
use crate::wire::MembershipMsg;

#[derive(Debug)]
struct Peer {
    incarnation: u64,
    /// Its role, as it announced itself in the handshake.
    role: Option<Role>,
    detector: PhiDetector,
    /// When the connection was established.
    since: Instant,
}

/// Who a change came from, which decides where it is pushed.
enum Origin {
    /// Decided here: push to every peer.
    Local,
    /// Learnt from `from`: forward on.
    Remote(String),
    /// Learnt from anti-entropy: applied here only (status changes still flood a partial view).
    Quiet(String),
}

/// The membership protocol of one node.
#[derive(Debug)]
pub struct Membership {
    config: Config,
    name: String,
    view: View,
    peers: BTreeMap<String, Peer>,
    /// Grows whenever a connection is added or dropped.
    peers_version: u64,
    /// Members this node keeps connections to (the overlay), recomputed when the set of live
    /// members changes.
    targets: BTreeSet<String>,
    targets_dirty: bool,
    /// Peers whose heartbeats this node sends and watches (see `Config::monitor_neighbours`),
    /// recomputed with the targets.
    /// `None`: every connection.
    monitored: Option<BTreeSet<String>>,
    /// Lifeguard's local health: grows when this node's own timers fire late (it is overloaded),
    /// stretching its probe and suspicion timeouts; decays while it keeps time.
    health: u32,
    /// Ticks on time since `health` last changed.
    ticks_on_time: u32,
    /// Changed members waiting to be pushed, by destination; flushed after each input.
    push: BTreeMap<String, Vec<Arc<Member>>>,
    /// Accusations held back (passed on already): member name to (accusation, when to apply
    /// it, who it came from).
    held: BTreeMap<String, (Arc<Member>, Instant, String)>,
    /// The last suspicion of each member this node marked suspect (`accusers.rs`).
    accusations: BTreeMap<String, Accusation>,
    /// When this node last sent its full view to each peer (anti-entropy is rate-limited).
    full_sync_sent: BTreeMap<String, Instant>,
    /// Invalid members received so far.
    rejected: u64,
    overlay: Overlay,
    probes: Probes,
    rng: SmallRng,
    outputs: VecDeque<Output>,
    leaving: bool,
    /// Another member removed this node.
    removed: bool,
    /// News about this node refuted with a higher incarnation ([`Membership::refutations`]).
    refutations: u64,
    last_tick: Option<Instant>,
    next_tick: Instant,
    next_heartbeat: Instant,
    next_sync: Instant,
    next_gc: Instant,
    next_heal: Instant,
    dial_pass_due: bool,
    /// Up members whose connection closed, and when: a refused redial soon after is proof
    /// that the process is gone (`Config::down_on_refused`).
    lost: BTreeMap<String, Instant>,
    /// Dials started since the last tick (see `Config::dials_per_tick`).
    dials_this_tick: usize,
}

impl Membership {
    /// A node named `local.name`, alone in its view, that will dial `seeds`.
    ///
    /// `local.incarnation` must grow across restarts (the runtime uses the start time in
    /// milliseconds) so that a restarted node is told apart from its old self.
    pub fn new(
        config: Config,
        local: Member,
        seeds: impl IntoIterator<Item = SocketAddr>,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        Self::with_view(config, local, View::new(), seeds, rng_seed, now)
    }

    /// A node named `local.name` that starts as a member of a cluster already formed: its
    /// view starts as `view` (every member of the cluster as it was last heard of), merged with
    /// `local`. It dials no seed, only the members its overlay picks from the view, and reports
    /// no event for the members it starts with. Used by the simulator to start large clusters
    /// without a join storm; a `View` clone shares its storage with the original, so n nodes
    /// started from clones of one view hold about one copy of it.
    pub fn formed(config: Config, local: Member, view: View, rng_seed: u64, now: Instant) -> Self {
        Self::with_view(config, local, view, [], rng_seed, now)
    }

    fn with_view(
        config: Config,
        local: Member,
        mut view: View,
        seeds: impl IntoIterator<Item = SocketAddr>,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let name = local.name.clone();
        let tags = with_role(local.tags.clone(), config.topology);
        view.merge(
            now,
            Member {
                status: Status::Alive,
                tags,
                ..local
            },
        );
        let mut overlay = Overlay::default();
        for s in seeds {
            overlay.add_seed(s);
        }
        let mut rng = SmallRng::seed_from_u64(rng_seed);
        // Nodes started together would otherwise run anti-entropy in lockstep for ever.
        let first_sync = config.sync_interval.mul_f64(rng.gen_range(0.5..1.5));
        Membership {
            next_tick: now,
            next_heartbeat: now,
            next_sync: now + first_sync,
            next_gc: now,
            next_heal: now,
            config,
            name,
            view,
            peers: BTreeMap::new(),
            peers_version: 0,
            targets: BTreeSet::new(),
            targets_dirty: true,
            monitored: None,
            health: 0,
            ticks_on_time: 0,
            push: BTreeMap::new(),
            held: BTreeMap::new(),
            accusations: BTreeMap::new(),
            full_sync_sent: BTreeMap::new(),
            rejected: 0,
            overlay,
            probes: Probes::default(),
            rng,
            outputs: VecDeque::new(),
            leaving: false,
            removed: false,
            refutations: 0,
            last_tick: None,
            dial_pass_due: true,
            lost: BTreeMap::new(),
            dials_this_tick: 0,
        }
    }

    /// This node as it announces itself.
    pub fn local(&self) -> &Member {
        self.view
            .get(&self.name)
            .expect("the view always holds the local member")
    }

    /// Every known member, this node and tombstones included, in ring order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.view.members().map(|m| &**m)
    }

    /// Every known member as the shared versions the view holds (cheap to copy), in ring order.
    pub fn versions(&self) -> impl Iterator<Item = &Arc<Member>> {
        self.view.members()
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.view.get(name).map(|m| &**m)
    }

    /// Number of members (this node included) that are `alive` or `suspect`.
    pub fn up_count(&self) -> usize {
        self.view.up_count()
    }

    /// True while the cluster is small enough for every node to connect to every other.
    pub fn is_full_mesh(&self) -> bool {
        self.config.topology == Topology::FullMesh
            && self.view.up_count() <= self.config.full_mesh_limit + 1
    }

    /// This node's role in a client-server topology.
    pub fn role(&self) -> Option<Role> {
        self.config.topology.role()
    }

    /// Members received from the network and dropped as invalid, so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// A rough estimate of the memory this state machine holds, in bytes (for simulations).
    /// It counts every member in full, as if no version were shared with other views or
    /// messages, so it is an upper bound: in the simulator, where versions are shared, the
    /// process uses about a fifth of the sum over all nodes (1,000 nodes: 231 MB).
    pub fn estimated_bytes(&self) -> usize {
        use std::mem::size_of;
        let members = self.view.footprint();
        let window = self.config.detector.window * size_of::<f64>();
        let peers = self.peers.len() * (size_of::<Peer>() + window + 64);
        let queued: usize = self.outputs.len() * size_of::<Output>();
        size_of::<Self>() + members + peers + queued
    }

    /// Grows at every change of the view.
    pub fn view_version(&self) -> u64 {
        self.view.version()
    }

    /// Names of the peers with an open connection.
    pub fn connected(&self) -> impl Iterator<Item = &str> {
        self.peers.keys().map(String::as_str)
    }

    /// The peers with an open connection, with the incarnation each announced when it opened
    /// (a new one means another process under the same name).
    pub fn connected_incarnations(&self) -> impl Iterator<Item = (&str, u64)> {
        self.peers.iter().map(|(n, p)| (n.as_str(), p.incarnation))
    }

    /// The role the connected member `name` announced in its handshake (None: not connected,
    /// or a full-mesh member).
    pub fn peer_role(&self, name: &str) -> Option<Role> {
        self.peers.get(name).and_then(|p| p.role)
    }

    /// Grows whenever [`Membership::connected`] changes.
    pub fn connections_version(&self) -> u64 {
        self.peers_version
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next output to carry out, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next wanted (always: heartbeats and checks run on a timer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_tick)
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        // A tick overdue by more than a few intervals means this node was starved (paused,
        // or its machine overloaded): that tick runs first, so that what arrived meanwhile is
        // judged with the gap known (its detectors restarted, `keep_time`), not against a
        // silence that was this node's own.
        if !matches!(input, Input::Tick)
            && now.saturating_duration_since(self.next_tick) > self.config.tick_interval * 2
        {
            self.on_tick(now);
        }
        match input {
            Input::Connected { peer, dialed } => self.on_connected(now, peer, dialed),
            Input::Disconnected { name } => self.on_disconnected(now, &name),
            Input::DialFailed { addr, no_listener } => self.on_dial_failed(now, addr, no_listener),
            Input::Message { from, msg } => self.on_message(now, from, msg),
            Input::Join { addr } => {
                // The caller's dial is the one in progress: dialling again here would open a
                // second connection from this node, and the two ends could each keep another.
                self.overlay.add_seed(addr);
                self.overlay.dial_started(addr, now, None);
            }
            Input::Leave => self.leave(now),
            Input::Remove(name) => self.remove(now, &name),
            Input::SetTags(tags) => {
                let mut me = self.local().clone();
                me.incarnation = me.incarnation.saturating_add(1);
                me.tags = with_role(tags, self.config.topology);
                self.apply(now, Arc::new(me), Origin::Local);
                // Its reservations may have changed (see `topology::reserved_targets`).
                self.targets_dirty = true;
                self.dial_pass_due = true;
            }
            Input::Tick => self.on_tick(now),
        }
        if self.dial_pass_due {
            self.dial_pass(now);
        }
        for (to, members) in std::mem::take(&mut self.push) {
            self.send(&to, MembershipMsg::Gossip { members });
        }
    }

    fn send(&mut self, to: &str, msg: MembershipMsg) {
        self.outputs.push_back(Output::Send {
            to: to.to_owned(),
            msg,
        });
    }

    fn on_message(&mut self, now: Instant, from: String, msg: MembershipMsg) {
        match msg {
            MembershipMsg::Heartbeat => self.on_heartbeat(now, &from),
            MembershipMsg::Ping { seq } => self.send(&from, MembershipMsg::Ack { seq }),
            MembershipMsg::Ack { seq } => self.on_ack(now, from, seq),
            MembershipMsg::ProbeRequest { seq, target } => {
                self.on_probe_request(now, from, seq, target)
            }
            MembershipMsg::ProbeResult {
                seq,
                target,
                reachable,
            } => self.on_probe_result(now, from, seq, target, reachable),
            MembershipMsg::Gossip { members } => {
                for m in members {
                    self.apply_remote(now, m, &from, true);
                }
            }
            MembershipMsg::Sync { members } => {
                for m in members {
                    // Anti-entropy is bulk, second-hand news: only a member's own entry is
                    // passed on (that is how a joiner's arrival spreads from its seed).
                    let first_hand = m.name == from;
                    self.apply_remote(now, m, &from, first_hand);
                }
            }
            MembershipMsg::Digest { buckets, reply } => self.on_digest(now, from, buckets, reply),
            MembershipMsg::FineDigest {
                buckets,
                digests,
                fine,
                reply,
            } => self.on_fine_digest(from, buckets, digests, fine, reply),
            MembershipMsg::Referral { members } => self.on_referral(now, from, members),
        }
    }

    fn remove(&mut self, now: Instant, name: &str) {
        if name == self.name {
            return self.leave(now);
        }
        let Some(m) = self.view.get(name).filter(|m| m.status != Status::Left) else {
            return;
        };
        let removed = Member {
            status: Status::Left,
            ..(**m).clone()
        };
        self.apply(now, Arc::new(removed), Origin::Local);
    }

    /// True once another member removed this node ([`Input::Remove`]): it no longer takes part
    /// and the runtime stops it.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// How many times this node refuted news about itself (a suspicion, a failure, a stale
    /// version) by announcing a higher incarnation.
    pub fn refutations(&self) -> u64 {
        self.refutations
    }

    fn leave(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.probes = Probes::default();
        let me = Member {
            status: Status::Left,
            ..self.local().clone()
        };
        self.apply(now, Arc::new(me), Origin::Local);
    }

    fn on_tick(&mut self, now: Instant) {
        self.keep_time(now);
        self.last_tick = Some(now);
        self.next_tick = now + self.config.tick_interval;
        self.dials_this_tick = 0;

        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            self.refresh_targets(now);
            let peers: Vec<String> = self.watched().cloned().collect();
            for p in peers {
                self.send(&p, MembershipMsg::Heartbeat);
            }
        }
        self.check_detectors(now);
        self.expire_probes(now);
        self.release_accusations(now);
        if now >= self.next_sync {
            self.next_sync = now + jittered(self.config.sync_interval, &mut self.rng);
            if let Some(p) = self.peers.keys().choose(&mut self.rng).cloned() {
                let buckets = self.view.bucket_digests().to_vec();
                self.send(
                    &p,
                    MembershipMsg::Digest {
                        buckets,
                        reply: true,
                    },
                );
            }
        }
        if now >= self.next_gc {
            self.next_gc = now + self.config.tick_interval * 10;
            self.collect_garbage(now);
            self.prune(now);
        }
        self.dial_pass_due = true;
    }

    fn collect_garbage(&mut self, now: Instant) {
        let window = self.config.suspicion_timeout;
        self.lost.retain(|_, at| now <= *at + window);
        let ttl = self.config.tombstone_ttl;
        for m in self.view.collect_garbage(now, ttl, &self.name) {
            self.overlay.forget(&m.addr);
            self.probes.forget(&m.name);
            self.held.remove(&m.name);
            self.accusations.remove(&m.name);
        }
        let sync_interval = self.config.sync_interval;
        self.full_sync_sent
            .retain(|_, at| now.saturating_duration_since(*at) < sync_interval);
    }
}

/// `tags` with the role tag of `topology` (none in a full mesh).
fn with_role(tags: Tags, topology: Topology) -> Tags {
    match topology.role() {
        Some(r) => tags.with(ROLE_TAG, r.as_str()),
        None => tags,
    }
}

/// `d` give or take a tenth, at random.
fn jittered(d: Duration, rng: &mut SmallRng) -> Duration {
    d.mul_f64(rng.gen_range(0.9..1.1))
}
