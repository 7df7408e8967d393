//! The membership protocol as a sans-IO state machine.
//!
//! [`Membership`] owns the [`View`], one phi accrual detector per connected peer, the suspicion
//! and probe bookkeeping, and the dial schedule. The runtime feeds it [`Input`]s with the current
//! time and carries out its [`Output`]s: messages to send, addresses to dial, events to report.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::seq::{IteratorRandom, SliceRandom};
use rand::SeedableRng;

use crate::config::Config;
use crate::detector::PhiDetector;
use crate::member::{Member, Status, Tags};
use crate::overlay::Overlay;
use crate::probe::{HelperPing, Phase, Probes, RemoteSuspicion, Suspicion};
use crate::view::{Transition, View};
use crate::wire::{MembershipMsg, PeerInfo};

/// Something that happened to this node: a message, a connection change, a command, a timer.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A connection to `peer` completed its handshake. `dialed` is the address this node
    /// dialled, if it was the dialer.
    Connected {
        /// Who is on the other end.
        peer: PeerInfo,
        /// Address this node dialled to reach it (None for accepted connections).
        dialed: Option<SocketAddr>,
    },
    /// The connection to `name` closed.
    Disconnected {
        /// Who was on the other end.
        name: String,
    },
    /// A dial asked by [`Output::Dial`] failed (refused, timed out, or the handshake failed).
    DialFailed {
        /// The dialled address.
        addr: SocketAddr,
    },
    /// A message from a connected peer.
    Message {
        /// The sender.
        from: String,
        /// The message.
        msg: MembershipMsg,
    },
    /// Join the cluster of the node at `addr` (it becomes a seed: retried until reached).
    Join {
        /// A member's address.
        addr: SocketAddr,
    },
    /// Leave the cluster gracefully: the others will mark this node `left`.
    Leave,
    /// Replace this node's tags (announced as a new incarnation).
    SetTags(Tags),
    /// Timer: call when [`Membership::poll_timeout`] is reached.
    Tick,
}

/// Something the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `msg` to the connected peer `to`.
    Send {
        /// Peer name.
        to: String,
        /// The message.
        msg: MembershipMsg,
    },
    /// Dial `addr`; answer later with [`Input::Connected`] or [`Input::DialFailed`].
    Dial {
        /// Address to dial.
        addr: SocketAddr,
    },
    /// A membership event for the application.
    Event(MemberEvent),
}

/// The kind of a membership event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A member joined, or came back from `down` / `left` (restart or healed partition).
    Up,
    /// A member was declared failed.
    Down,
    /// A member left gracefully.
    Left,
    /// A live member changed address, tags or incarnation.
    Updated,
}

/// A change of another member, as reported to the application.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberEvent {
    /// What happened.
    pub kind: EventKind,
    /// The member after the change.
    pub member: Member,
}

impl MemberEvent {
    fn from_transition(t: &Transition) -> Option<MemberEvent> {
        let new = &t.new;
        let kind = match &t.old {
            None if new.status.is_up() => EventKind::Up,
            None => return None,
            Some(old) if new.status.is_up() && !old.status.is_up() => EventKind::Up,
            Some(old) if new.status == Status::Down && old.status.is_up() => EventKind::Down,
            Some(old) if new.status == Status::Left && old.status != Status::Left => {
                EventKind::Left
            }
            Some(old)
                if new.status.is_up()
                    && (old.incarnation, &old.addr, &old.tags)
                        != (new.incarnation, &new.addr, &new.tags) =>
            {
                EventKind::Updated
            }
            Some(_) => return None,
        };
        Some(MemberEvent {
            kind,
            member: new.clone(),
        })
    }
}

#[derive(Debug)]
struct Peer {
    incarnation: u64,
    detector: PhiDetector,
}

/// Who a change came from, which decides where it is pushed.
enum Origin {
    /// Decided here: push to every peer.
    Local,
    /// Learnt from `from`: forward to a few peers.
    Remote(String),
}

/// The membership protocol of one node.
#[derive(Debug)]
pub struct Membership {
    config: Config,
    name: String,
    view: View,
    peers: BTreeMap<String, Peer>,
    /// Changed members waiting to be pushed, by destination; flushed after each input.
    push: BTreeMap<String, Vec<Member>>,
    /// Accusations held back: member name to (accusation, who sent it, when to apply it).
    held: BTreeMap<String, (Member, String, Instant)>,
    /// Invalid members received so far.
    rejected: u64,
    overlay: Overlay,
    probes: Probes,
    rng: SmallRng,
    outputs: VecDeque<Output>,
    leaving: bool,
    last_tick: Option<Instant>,
    next_tick: Instant,
    next_heartbeat: Instant,
    next_sync: Instant,
    next_gc: Instant,
    dial_pass_due: bool,
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
        let mut view = View::new();
        let name = local.name.clone();
        view.merge(
            now,
            Member {
                status: Status::Alive,
                ..local
            },
        );
        let mut overlay = Overlay::default();
        for s in seeds {
            overlay.add_seed(s);
        }
        Membership {
            next_tick: now,
            next_heartbeat: now,
            next_sync: now + config.sync_interval,
            next_gc: now,
            config,
            name,
            view,
            peers: BTreeMap::new(),
            push: BTreeMap::new(),
            held: BTreeMap::new(),
            rejected: 0,
            overlay,
            probes: Probes::default(),
            rng: SmallRng::seed_from_u64(rng_seed),
            outputs: VecDeque::new(),
            leaving: false,
            last_tick: None,
            dial_pass_due: true,
        }
    }

    /// This node as it announces itself.
    pub fn local(&self) -> &Member {
        self.view
            .get(&self.name)
            .expect("the view always holds the local member")
    }

    /// Every known member, this node and tombstones included, in name order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.view.members()
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.view.get(name)
    }

    /// Number of members (this node included) that are `alive` or `suspect`.
    pub fn up_count(&self) -> usize {
        self.view.up_count()
    }

    /// A rough estimate of the memory this state machine holds, in bytes (for simulations).
    pub fn estimated_bytes(&self) -> usize {
        use std::mem::size_of;
        let members: usize = self
            .view
            .members()
            .map(|m| {
                let tags: usize = m
                    .tags
                    .as_map()
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 48)
                    .sum();
                // The name is stored twice (key and value), plus map and entry overhead.
                size_of::<Member>() + 2 * m.name.len() + tags + 64
            })
            .sum();
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

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next output to carry out, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next wanted.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Connected { peer, dialed } => self.on_connected(now, peer, dialed),
            Input::Disconnected { name } => self.on_disconnected(now, &name),
            Input::DialFailed { addr } => self.on_dial_failed(now, addr),
            Input::Message { from, msg } => self.on_message(now, from, msg),
            Input::Join { addr } => {
                self.overlay.add_seed(addr);
                self.overlay.expedite(addr, now);
                self.dial_pass_due = true;
            }
            Input::Leave => self.leave(now),
            Input::SetTags(tags) => {
                let mut me = self.local().clone();
                me.incarnation = me.incarnation.saturating_add(1);
                me.tags = tags;
                self.apply(now, me, Origin::Local);
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

    /// Queues `member` for pushing to `to` with the other changes of this input.
    fn queue_push(&mut self, to: String, member: &Member) {
        self.push.entry(to).or_default().push(member.clone());
    }

    fn send(&mut self, to: &str, msg: MembershipMsg) {
        self.outputs.push_back(Output::Send {
            to: to.to_owned(),
            msg,
        });
    }

    /// Merges a member version received from `from`, after checking it.
    ///
    /// Invalid members (bad name, oversized tags, absurd incarnation) are dropped and counted.
    /// A `down` or `left` member this node does not hold is ignored: it is a tombstone another
    /// node has not collected yet, and storing it would restart its time to live, so that
    /// tombstones could circulate for ever.
    fn apply_remote(&mut self, now: Instant, member: Member, from: &str) {
        if member.check().is_err() {
            self.rejected += 1;
            return;
        }
        if !member.status.is_up() && self.view.get(&member.name).is_none() {
            return;
        }
        self.apply(now, member, Origin::Remote(from.to_owned()));
    }

    /// Members received from the network and dropped as invalid, so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Merges one member version and pushes the change on.
    fn apply(&mut self, now: Instant, member: Member, origin: Origin) {
        if member.name == self.name {
            return self.about_me(now, member, origin);
        }
        if let Origin::Remote(from) = &origin {
            if self.hold_accusation(now, &member, from) {
                return;
            }
        }
        let Some(t) = self.view.merge(now, member) else {
            return;
        };
        self.after_transition(now, &t);
        match origin {
            Origin::Local => {
                let all: Vec<String> = self.peers.keys().cloned().collect();
                for p in all {
                    self.queue_push(p, &t.new);
                }
            }
            Origin::Remote(from) => self.forward(&t, &from),
        }
        self.report(&t);
    }

    fn report(&mut self, t: &Transition) {
        if let Some(e) = MemberEvent::from_transition(t) {
            self.outputs.push_back(Output::Event(e));
        }
    }

    /// Pushes a change learnt from `from` on to a few peers, and to the member concerned if it
    /// is accused.
    fn forward(&mut self, t: &Transition, from: &str) {
        let mut targets: BTreeSet<String> = self
            .peers
            .keys()
            .filter(|p| p.as_str() != from && **p != t.new.name)
            .cloned()
            .choose_multiple(&mut self.rng, self.config.gossip_fanout)
            .into_iter()
            .collect();
        // Tell the accused at once, so a live member refutes quickly.
        if t.new.status != Status::Alive && self.peers.contains_key(&t.new.name) {
            targets.insert(t.new.name.clone());
        }
        for p in targets {
            self.queue_push(p, &t.new);
        }
    }

    /// An accusation (`suspect` or `down`) from gossip about a member this node hears
    /// heartbeats from right now is held back for `probe_timeout` and passed to the accused. If
    /// its refutation comes first, the accusation is superseded and never applied, so nodes that
    /// could reach the member all along (the other half after a partition heals, the far end of
    /// one bad link) do not flap it down and up. Returns true if held.
    fn hold_accusation(&mut self, now: Instant, member: &Member, from: &str) -> bool {
        if !matches!(member.status, Status::Suspect | Status::Down) {
            return false;
        }
        let healthy = self.peers.get(&member.name).is_some_and(|p| {
            now.saturating_duration_since(p.detector.last_heard())
                < self.config.heartbeat_interval * 2
        });
        let newer = self
            .view
            .get(&member.name)
            .is_some_and(|held| member.supersedes(held));
        if !healthy || !newer {
            return false;
        }
        // A copy of an accusation held already (or an older one) joins it.
        if self
            .held
            .get(&member.name)
            .is_some_and(|(m, _, _)| !member.supersedes(m))
        {
            return true;
        }
        self.queue_push(member.name.clone(), member);
        let until = now + self.config.probe_timeout;
        self.held.insert(
            member.name.clone(),
            (member.clone(), from.to_owned(), until),
        );
        true
    }

    /// Applies held accusations whose time is up (a newer version may have superseded them).
    fn release_accusations(&mut self, now: Instant) {
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, (_, _, until))| *until <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            if let Some((member, from, _)) = self.held.remove(&name) {
                if self
                    .view
                    .get(&name)
                    .is_none_or(|held| member.supersedes(held))
                {
                    let t = self.view.merge(now, member);
                    if let Some(t) = t {
                        self.after_transition(now, &t);
                        self.forward(&t, &from);
                        self.report(&t);
                    }
                }
            }
        }
    }

    /// Handles news about this node: refute anything that would supersede the live version.
    fn about_me(&mut self, now: Instant, member: Member, origin: Origin) {
        let current = self.local().clone();
        let fresh = match origin {
            Origin::Local => member,
            Origin::Remote(_) if self.leaving || !member.supersedes(&current) => return,
            Origin::Remote(_) => Member {
                incarnation: member
                    .incarnation
                    .max(current.incarnation)
                    .saturating_add(1),
                ..current
            },
        };
        if self.view.merge(now, fresh.clone()).is_some() {
            let all: Vec<String> = self.peers.keys().cloned().collect();
            for p in all {
                self.queue_push(p, &fresh);
            }
        }
    }

    /// Local bookkeeping after another member changed.
    fn after_transition(&mut self, now: Instant, t: &Transition) {
        let name = &t.new.name;
        match t.new.status {
            Status::Alive => {
                self.probes.forget(name);
                if let Some(p) = self.peers.get_mut(name) {
                    p.detector.refresh(now);
                }
            }
            Status::Suspect if !self.probes.suspicions.contains_key(name) => {
                self.probes.remote.insert(
                    name.clone(),
                    RemoteSuspicion {
                        incarnation: t.new.incarnation,
                        deadline: now + self.config.suspicion_timeout * 3,
                    },
                );
            }
            Status::Suspect => {}
            Status::Down | Status::Left => self.probes.forget(name),
        }
        if t.old
            .as_ref()
            .is_none_or(|o| o.addr != t.new.addr || !o.status.is_up())
        {
            self.dial_pass_due = true;
        }
    }

    fn on_connected(&mut self, now: Instant, peer: PeerInfo, dialed: Option<SocketAddr>) {
        self.overlay.connected(peer.addr, &peer.name, dialed);
        if peer.name == self.name {
            return;
        }
        // Another name now answers at the address we dialled: the member we expected is gone.
        if let Some(addr) = dialed {
            let stale: Vec<String> = self
                .view
                .members()
                .filter(|m| m.addr == addr && m.name != peer.name && m.name != self.name)
                .filter(|m| m.status == Status::Alive)
                .map(|m| m.name.clone())
                .collect();
            for name in stale {
                self.suspect(now, &name);
            }
        }
        let fresh = self
            .peers
            .get(&peer.name)
            .is_none_or(|p| p.incarnation != peer.incarnation);
        if fresh {
            self.peers.insert(
                peer.name.clone(),
                Peer {
                    incarnation: peer.incarnation,
                    detector: PhiDetector::new(self.config.detector, now),
                },
            );
            let members = self.view.members().cloned().collect();
            self.send(
                &peer.name,
                MembershipMsg::Sync {
                    members,
                    reply: false,
                },
            );
        }
    }

    fn on_disconnected(&mut self, now: Instant, name: &str) {
        if self.peers.remove(name).is_none() {
            return;
        }
        // Pings running through this connection cannot be answered any more.
        for (_, p) in self.probes.take_helper_pings(|p| p.target == name) {
            self.send(
                &p.requester,
                MembershipMsg::ProbeResult {
                    seq: p.request_seq,
                    target: p.target,
                    reachable: false,
                },
            );
        }
        // A closed connection is a strong hint, not proof: redial first.
        if let Some(m) = self.view.get(name).filter(|m| m.status.is_up()) {
            let addr = m.addr;
            self.overlay.expedite(addr, now);
            self.dial_pass_due = true;
        }
    }

    fn on_dial_failed(&mut self, now: Instant, addr: SocketAddr) {
        let (min, max) = (self.config.reconnect_min, self.config.reconnect_max);
        self.overlay.dial_failed(addr, now, min, max, &mut self.rng);
        let failed: Vec<String> = self
            .view
            .members()
            .filter(|m| m.addr == addr && m.name != self.name && m.status.is_up())
            .filter(|m| !self.peers.contains_key(&m.name))
            .map(|m| m.name.clone())
            .collect();
        for name in failed {
            self.suspect(now, &name);
        }
    }

    /// Starts a private suspicion of `name`: ping it, and ask helpers to ping it.
    fn suspect(&mut self, now: Instant, name: &str) {
        if self.leaving || self.probes.suspicions.contains_key(name) {
            return;
        }
        let Some(m) = self.view.get(name).filter(|m| m.status.is_up()) else {
            return;
        };
        let incarnation = m.incarnation;
        let seq = self.probes.next_seq();
        let mut helpers: Vec<String> = self
            .peers
            .keys()
            .filter(|p| p.as_str() != name)
            .filter(|p| self.view.get(p).is_some_and(|m| m.status == Status::Alive))
            .cloned()
            .collect();
        helpers.shuffle(&mut self.rng);
        helpers.truncate(self.config.probe_helpers);
        for h in &helpers {
            let target = name.to_owned();
            self.send(h, MembershipMsg::ProbeRequest { seq, target });
        }
        let pinged = self.peers.contains_key(name);
        if pinged {
            self.send(name, MembershipMsg::Ping { seq });
        }
        self.probes.suspicions.insert(
            name.to_owned(),
            Suspicion {
                phase: Phase::Probing,
                incarnation,
                seq,
                waiting: helpers.into_iter().collect(),
                pinged,
                deadline: now + self.config.probe_timeout * 2,
            },
        );
    }

    /// The probes could not reach `name`: mark it suspect cluster-wide and wait for a refutation.
    fn probes_failed(&mut self, now: Instant, name: &str) {
        let Some(s) = self.probes.suspicions.get_mut(name) else {
            return;
        };
        s.phase = Phase::Suspected;
        s.deadline = now + self.config.suspicion_timeout;
        let incarnation = s.incarnation;
        match self.view.get(name) {
            Some(m) if m.incarnation == incarnation && m.status == Status::Alive => {
                let suspect = Member {
                    status: Status::Suspect,
                    ..m.clone()
                };
                self.apply(now, suspect, Origin::Local);
            }
            Some(m) if m.incarnation == incarnation && m.status == Status::Suspect => {}
            // It refuted or changed meanwhile.
            _ => self.probes.forget(name),
        }
    }

    /// Declares `name` down if it is still up at `incarnation`.
    fn declare_down(&mut self, now: Instant, name: &str, incarnation: u64) {
        self.probes.forget(name);
        if let Some(m) = self.view.get(name) {
            if m.incarnation == incarnation && m.status.is_up() {
                let down = Member {
                    status: Status::Down,
                    ..m.clone()
                };
                self.apply(now, down, Origin::Local);
            }
        }
    }

    /// A confirmation that `name` answers: drop the suspicion; it refutes the gossip itself.
    fn confirmed_alive(&mut self, now: Instant, name: &str) {
        self.probes.suspicions.remove(name);
        if let Some(p) = self.peers.get_mut(name) {
            p.detector.refresh(now);
        }
    }

    fn on_message(&mut self, now: Instant, from: String, msg: MembershipMsg) {
        match msg {
            MembershipMsg::Heartbeat => {
                if let Some(p) = self.peers.get_mut(&from) {
                    p.detector.heartbeat(now);
                }
                // A member held down is talking again (a healed partition, a resumed process):
                // tell it, so it refutes at once instead of at the next anti-entropy round.
                if let Some(m) = self.view.get(&from).filter(|m| m.status == Status::Down) {
                    let members = vec![m.clone()];
                    self.send(&from, MembershipMsg::Gossip { members });
                }
            }
            MembershipMsg::Ping { seq } => self.send(&from, MembershipMsg::Ack { seq }),
            MembershipMsg::Ack { seq } => self.on_ack(now, from, seq),
            MembershipMsg::ProbeRequest { seq, target } => {
                if self.peers.contains_key(&target) && target != from {
                    let ping = self.probes.next_seq();
                    self.probes.helper_pings.insert(
                        ping,
                        HelperPing {
                            requester: from,
                            request_seq: seq,
                            target: target.clone(),
                            deadline: now + self.config.probe_timeout,
                        },
                    );
                    self.send(&target, MembershipMsg::Ping { seq: ping });
                } else {
                    let reachable = false;
                    self.send(
                        &from,
                        MembershipMsg::ProbeResult {
                            seq,
                            target,
                            reachable,
                        },
                    );
                }
            }
            MembershipMsg::ProbeResult {
                seq,
                target,
                reachable,
            } => self.on_probe_result(now, from, seq, target, reachable),
            MembershipMsg::Gossip { members } => {
                for m in members {
                    self.apply_remote(now, m, &from);
                }
            }
            MembershipMsg::Sync { members, reply } => self.on_sync(now, from, members, reply),
        }
    }

    fn on_ack(&mut self, now: Instant, from: String, seq: u64) {
        if let Some(p) = self.probes.helper_pings.remove(&seq) {
            if p.target == from {
                self.send(
                    &p.requester,
                    MembershipMsg::ProbeResult {
                        seq: p.request_seq,
                        target: p.target,
                        reachable: true,
                    },
                );
            }
            return;
        }
        if self
            .probes
            .suspicions
            .get(&from)
            .is_some_and(|s| s.seq == seq)
        {
            self.confirmed_alive(now, &from);
        }
    }

    fn on_probe_result(&mut self, now: Instant, from: String, seq: u64, target: String, ok: bool) {
        let Some(s) = self.probes.suspicions.get_mut(&target) else {
            return;
        };
        if s.seq != seq || !s.waiting.remove(&from) {
            return;
        }
        if ok {
            self.confirmed_alive(now, &target);
        } else if s.waiting.is_empty() && s.phase == Phase::Probing && !s.pinged {
            self.probes_failed(now, &target);
        }
    }

    fn on_sync(&mut self, now: Instant, from: String, members: Vec<Member>, reply: bool) {
        let theirs: HashMap<String, Member> = members
            .iter()
            .map(|m| (m.name.clone(), m.clone()))
            .collect();
        for m in members {
            self.apply_remote(now, m, &from);
        }
        if reply {
            let newer: Vec<Member> = self
                .view
                .members()
                .filter(|m| theirs.get(&m.name).is_none_or(|t| m.supersedes(t)))
                .cloned()
                .collect();
            if !newer.is_empty() {
                self.send(
                    &from,
                    MembershipMsg::Sync {
                        members: newer,
                        reply: false,
                    },
                );
            }
        }
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
        self.apply(now, me, Origin::Local);
    }

    fn on_tick(&mut self, now: Instant) {
        // A tick far later than planned means this node was paused (SIGSTOP, a long GC, an
        // overloaded machine): the silence was ours, not the peers', so do not hold it against them.
        if let Some(last) = self.last_tick {
            let gap = now.saturating_duration_since(last);
            if gap > self.config.detector.acceptable_pause {
                for p in self.peers.values_mut() {
                    p.detector.refresh(now);
                }
                self.probes.postpone(gap);
                for (_, _, until) in self.held.values_mut() {
                    *until += gap;
                }
            }
        }
        self.last_tick = Some(now);
        self.next_tick = now + self.config.tick_interval;

        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            let peers: Vec<String> = self.peers.keys().cloned().collect();
            for p in peers {
                self.send(&p, MembershipMsg::Heartbeat);
            }
        }
        self.check_detectors(now);
        self.expire_probes(now);
        self.release_accusations(now);
        if now >= self.next_sync {
            self.next_sync = now + self.config.sync_interval;
            if let Some(p) = self.peers.keys().choose(&mut self.rng).cloned() {
                let members = self.view.members().cloned().collect();
                self.send(
                    &p,
                    MembershipMsg::Sync {
                        members,
                        reply: true,
                    },
                );
            }
        }
        if now >= self.next_gc {
            self.next_gc = now + self.config.tick_interval * 10;
            let ttl = self.config.tombstone_ttl;
            for m in self.view.collect_garbage(now, ttl, &self.name) {
                self.overlay.forget(&m.addr);
            }
        }
        self.dial_pass_due = true;
    }

    fn check_detectors(&mut self, now: Instant) {
        let silent: Vec<String> = self
            .peers
            .iter()
            .filter(|(name, p)| {
                p.detector.is_suspect(now)
                    && self.view.get(name).is_some_and(|m| m.status.is_up())
                    && !self.probes.suspicions.contains_key(*name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in silent {
            self.suspect(now, &name);
        }
    }

    fn expire_probes(&mut self, now: Instant) {
        for (_, p) in self.probes.take_helper_pings(|p| p.deadline <= now) {
            self.send(
                &p.requester,
                MembershipMsg::ProbeResult {
                    seq: p.request_seq,
                    target: p.target,
                    reachable: false,
                },
            );
        }
        for (name, phase, incarnation) in self.probes.expired_suspicions(now) {
            match phase {
                Phase::Probing => self.probes_failed(now, &name),
                Phase::Suspected => self.declare_down(now, &name, incarnation),
            }
        }
        for (name, incarnation) in self.probes.expired_remote(now) {
            let still = self
                .view
                .get(&name)
                .is_some_and(|m| m.status == Status::Suspect && m.incarnation == incarnation);
            if still {
                self.declare_down(now, &name, incarnation);
            } else {
                self.probes.remote.remove(&name);
            }
        }
    }

    /// Dials every member and seed that should be connected and may be dialled now.
    fn dial_pass(&mut self, now: Instant) {
        self.dial_pass_due = false;
        if self.leaving {
            return;
        }
        let me = self.local().addr;
        let mut wanted: Vec<SocketAddr> = self
            .view
            .members()
            .filter(|m| m.name != self.name && m.status != Status::Left)
            .filter(|m| !self.peers.contains_key(&m.name))
            .map(|m| m.addr)
            .collect();
        wanted.extend(self.overlay.seeds().filter(|s| {
            self.overlay
                .seed_name(s)
                .is_none_or(|n| !self.peers.contains_key(n) && n != self.name)
        }));
        wanted.sort();
        wanted.dedup();
        for addr in wanted {
            if addr != me && self.overlay.may_dial(&addr, now) {
                self.overlay.dial_started(addr, now);
                self.outputs.push_back(Output::Dial { addr });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn member(name: &str, port: u16, incarnation: u64, status: Status) -> Member {
        Member {
            name: name.into(),
            addr: ([127, 0, 0, 1], port).into(),
            incarnation,
            status,
            tags: Tags::default(),
        }
    }

    fn node(now: Instant) -> Membership {
        Membership::new(
            Config::default(),
            member("me", 1, 100, Status::Alive),
            [],
            1,
            now,
        )
    }

    fn connect(m: &mut Membership, now: Instant, name: &str, port: u16) {
        let peer = PeerInfo {
            name: name.into(),
            addr: ([127, 0, 0, 1], port).into(),
            incarnation: 5,
            instance: 1,
        };
        m.handle(now, Input::Connected { peer, dialed: None });
        let members = vec![member(name, port, 5, Status::Alive)];
        m.handle(
            now,
            Input::Message {
                from: name.into(),
                msg: MembershipMsg::Gossip { members },
            },
        );
    }

    fn drain(m: &mut Membership) -> Vec<Output> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    #[test]
    fn an_absurd_incarnation_rumour_is_dropped() {
        let t0 = Instant::now();
        let mut m = node(t0);
        connect(&mut m, t0, "peer", 2);
        let evil = vec![
            member("me", 1, u64::MAX, Status::Suspect),
            member("x", 3, u64::MAX, Status::Alive),
        ];
        m.handle(
            t0,
            Input::Message {
                from: "peer".into(),
                msg: MembershipMsg::Gossip { members: evil },
            },
        );
        assert_eq!(
            m.local().incarnation,
            100,
            "no refutation of an invalid rumour"
        );
        assert!(m.member("x").is_none());
        assert_eq!(m.rejected(), 2);
        // A valid suspicion still gets refuted, and near the limit it saturates instead of
        // overflowing.
        let near = vec![member(
            "me",
            1,
            crate::member::MAX_INCARNATION,
            Status::Suspect,
        )];
        m.handle(
            t0,
            Input::Message {
                from: "peer".into(),
                msg: MembershipMsg::Gossip { members: near },
            },
        );
        assert_eq!(m.local().incarnation, crate::member::MAX_INCARNATION + 1);
        assert_eq!(m.local().status, Status::Alive);
    }

    #[test]
    fn tombstones_of_unknown_members_are_not_adopted() {
        let t0 = Instant::now();
        let mut m = node(t0);
        connect(&mut m, t0, "peer", 2);
        let old = vec![
            member("gone", 9, 7, Status::Left),
            member("dead", 8, 7, Status::Down),
        ];
        let msg = MembershipMsg::Sync {
            members: old,
            reply: false,
        };
        m.handle(
            t0,
            Input::Message {
                from: "peer".into(),
                msg,
            },
        );
        assert!(m.member("gone").is_none() && m.member("dead").is_none());
        // A known member's tombstone is taken as usual.
        let left = vec![member("peer", 2, 5, Status::Left)];
        m.handle(
            t0,
            Input::Message {
                from: "peer".into(),
                msg: MembershipMsg::Gossip { members: left },
            },
        );
        assert_eq!(m.member("peer").unwrap().status, Status::Left);
    }

    #[test]
    fn helpers_saying_unreachable_do_not_overrule_a_pending_direct_ping() {
        let t0 = Instant::now();
        let mut m = node(t0);
        connect(&mut m, t0, "a", 2);
        connect(&mut m, t0, "b", 3);
        drain(&mut m);
        // `a` goes silent; after the phi threshold this node probes it.
        let later = t0 + Duration::from_secs(3);
        m.handle(
            later,
            Input::Message {
                from: "b".into(),
                msg: MembershipMsg::Heartbeat,
            },
        );
        m.handle(later, Input::Tick);
        let out = drain(&mut m);
        let seq = out
            .iter()
            .find_map(|o| match o {
                Output::Send {
                    to,
                    msg: MembershipMsg::Ping { seq },
                } if to == "a" => Some(*seq),
                _ => None,
            })
            .expect("a direct ping to the silent member");
        let nack = MembershipMsg::ProbeResult {
            seq,
            target: "a".into(),
            reachable: false,
        };
        m.handle(
            later,
            Input::Message {
                from: "b".into(),
                msg: nack,
            },
        );
        assert_eq!(
            m.member("a").unwrap().status,
            Status::Alive,
            "still waiting for the ping"
        );
        m.handle(
            later,
            Input::Message {
                from: "a".into(),
                msg: MembershipMsg::Ack { seq },
            },
        );
        m.handle(later + Duration::from_secs(2), Input::Tick);
        assert_eq!(
            m.member("a").unwrap().status,
            Status::Alive,
            "the ack cleared it"
        );
    }
}
