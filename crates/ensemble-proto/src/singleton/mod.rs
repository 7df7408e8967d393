//! Cluster singletons (after Stoker's activator): of the nodes that run an activator for a
//! singleton, exactly one leads; the others follow and take over when it dies, leaves or steps
//! down.
//!
//! - **Fencing epoch.** Every leadership has an epoch, higher than any the new leader has seen:
//!   the round (bits 24 and up) is one more than the highest seen, and the low 24 bits come
//!   from the leader's name, so two leaders elected on both sides of a partition almost never
//!   share one (and equal epochs are ordered by name). Side effects stamped with it can be fenced.
//! - **Without the majority rule** the preferred candidate (the lowest name among the live
//!   candidates) takes over as soon as membership reports the leader down (or it resigns);
//!   the others wait one `takeover_step` per rank in case it cannot. When a healed split shows
//!   two leaders, the leadership with the higher epoch keeps leading; the other gets
//!   [`SingletonEvent::Shutdown`] with [`ShutdownReason::NameConflict`], then follows.
//! - **With the majority rule** (`majority_of: Some(n)`, n the expected number of
//!   candidates) a candidate leads only with votes from a majority, and a leader holds a
//!   lease renewed by a majority's acknowledgements of its heartbeats: it steps down
//!   ([`ShutdownReason::LostMajority`]) when the lease runs out, and no follower votes for
//!   anyone until the lease it last saw has run out. Two leaders never overlap.
//! - A graceful step-down ([`Input::Unregister`]) tells the followers at once, so the
//!   next one takes over without waiting for failure detection.
//!
//! Like every protocol here, [`Singletons`] takes [`Input`]s through [`Singletons::handle`]
//! and yields [`Output`]s.

mod activator;
mod msg;
#[cfg(test)]
mod tests;

use crate::member::NodeName;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

pub use msg::{Hosting, SingletonMsg};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use activator::Activator;

/// Timing of the singleton protocol.
#[derive(Debug, Clone)]
pub struct SingletonConfig {
    /// How long a newly registered activator listens for an existing leader before it may
    /// take over.
    pub settle: Duration,
    /// How much longer each candidate after the preferred one waits before taking over.
    pub takeover_step: Duration,
    /// Majority rule: how often the leader renews its lease.
    pub heartbeat: Duration,
    /// Majority rule: how long a majority's acknowledgement keeps the leader leading.
    pub lease: Duration,
    /// Majority rule: how long a candidate waits for votes.
    pub vote_timeout: Duration,
}

impl Default for SingletonConfig {
    fn default() -> Self {
        SingletonConfig {
            settle: Duration::from_millis(300),
            takeover_step: Duration::from_millis(200),
            heartbeat: Duration::from_millis(200),
            lease: Duration::from_millis(1000),
            vote_timeout: Duration::from_millis(500),
        }
    }
}

/// Options of one singleton.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SingletonSpec {
    /// The majority rule: the expected number of candidates. `None`: off.
    pub majority_of: Option<usize>,
}

/// Why a leadership ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownReason {
    /// Another leader with a higher epoch was found (after a split healed).
    NameConflict,
    /// The majority rule: the leader no longer reaches a majority.
    LostMajority,
    /// The activator was stopped here (the node leaves or the singleton is unregistered).
    Stopped,
}

impl ShutdownReason {
    /// The lowercase name used in logs, the CLI and the environment of commands.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::NameConflict => "name_conflict",
            ShutdownReason::LostMajority => "lost_majority",
            ShutdownReason::Stopped => "stopped",
        }
    }
}

/// What happens to a singleton on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SingletonEvent {
    /// This node leads, at this fencing epoch.
    NowLeader {
        /// The epoch of this leadership.
        epoch: u64,
    },
    /// This node follows `leader` (`None`: no leader is known yet).
    NowFollower {
        /// The leader, when known.
        leader: Option<NodeName>,
    },
    /// This node's leadership ends (a `NowFollower` follows unless the activator stopped).
    Shutdown {
        /// Why.
        reason: ShutdownReason,
    },
}

/// An input to the singleton protocol: a command, a change of a connection or a member, a
/// message from another node, or time passing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start an activator for `name` here: this node becomes a candidate. [`Output::Done`]
    /// with `token` follows at once: `Ok`, or why not (already registered, a majority rule of
    /// zero); the activator's first events come right after it.
    Register {
        /// The caller's token.
        token: u64,
        /// The singleton.
        name: String,
        /// Its options.
        spec: SingletonSpec,
    },
    /// Stop the activator for `name`: a leader steps down at once and tells the others, so
    /// the next one takes over without waiting for failure detection. No answer.
    Unregister(String),
    /// Stop every activator (the node leaves). No answer.
    UnregisterAll,
    /// The live members other than this node, from membership: sent before the first
    /// registration when the live members are not kept while idle
    /// ([`Singletons::untracked_while_idle`], [`Singletons::is_idle`]).
    SeedMembers(Vec<NodeName>),
    /// A connection to `peer` opened: it hears which singletons run here.
    PeerUp(NodeName),
    /// The connection to `peer` closed.
    PeerGone(NodeName),
    /// Membership reports `node` up.
    MemberUp(NodeName),
    /// Membership reports `node` down or left.
    MemberDown(NodeName),
    /// The process of `node` is gone (its connection closed and a dial to it was refused),
    /// before membership says so: without the majority rule its followers take over at once.
    /// With the rule, leases still decide.
    Gone(NodeName),
    /// A message from the member `from`.
    Message {
        /// The sender.
        from: NodeName,
        /// The message.
        msg: SingletonMsg,
    },
    /// Timers: takeovers, heartbeats, leases, vote deadlines. Call at
    /// [`Singletons::poll_timeout`].
    Tick,
}

/// An output of the singleton protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `msg` to the member `to`.
    Send {
        /// The member.
        to: NodeName,
        /// The message.
        msg: SingletonMsg,
    },
    /// An event of the singleton `name` on this node.
    Event {
        /// The singleton.
        name: String,
        /// What happened.
        event: SingletonEvent,
    },
    /// The answer to [`Input::Register`] with this token.
    Done {
        /// The caller's token.
        token: u64,
        /// Registered, or why not.
        result: Result<(), SingletonError>,
    },
}

/// This node's role for a singleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Leads.
    Leader,
    /// Asks for votes (majority rule).
    Candidate,
    /// Follows.
    Follower,
}

/// A singleton as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingletonInfo {
    /// The singleton.
    pub name: String,
    /// This node's role.
    pub role: Role,
    /// The leader, when known (this node when it leads).
    pub leader: Option<String>,
    /// The leader's epoch (0 when no leader is known).
    pub epoch: u64,
    /// When this node started leading or following the current leader.
    pub since: Option<Instant>,
    /// When the activator was registered here.
    pub created: Instant,
    /// When this node's current leadership began (`None` unless it leads).
    pub active_from: Option<Instant>,
    /// The other nodes that run an activator for it and are up.
    pub candidates: Vec<String>,
    /// The majority rule's expected number of candidates.
    pub majority_of: Option<usize>,
    /// Nodes that run it with other options (a configuration error): ignored.
    pub mismatched: Vec<String>,
}

/// Why a singleton call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SingletonError {
    /// This node already runs an activator for this name.
    #[error("singleton {0:?} is already registered on this node")]
    AlreadyRegistered(String),
    /// The majority rule needs at least one expected candidate.
    #[error("singleton {0:?}: majority_of must be at least 1")]
    BadMajority(String),
}

/// Effects collected while handling one input.
#[derive(Debug, Default)]
pub(crate) struct Fx {
    outputs: Vec<Output>,
}

impl Fx {
    fn send(&mut self, to: &str, msg: SingletonMsg) {
        self.outputs.push(Output::Send {
            to: to.to_string(),
            msg,
        });
    }

    fn event(&mut self, name: &str, event: SingletonEvent) {
        self.outputs.push(Output::Event {
            name: name.to_string(),
            event,
        });
    }
}

/// What an activator needs to know about the node it runs on.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    me: &'a str,
    origin: u32,
    config: &'a SingletonConfig,
    /// Members up, other than this node.
    up: &'a BTreeSet<String>,
}

/// The singleton activators of one node.
#[derive(Debug)]
pub struct Singletons {
    me: String,
    config: SingletonConfig,
    activators: BTreeMap<String, Activator>,
    up: BTreeSet<String>,
    /// Members whose process is gone (a dial was refused) though membership has not said so
    /// yet: not candidates until they connect again.
    gone: BTreeSet<String>,
    /// Whether `up` is kept while no singleton is registered.
    track_idle: bool,
    connected: BTreeSet<String>,
    outputs: VecDeque<Output>,
    rng: SmallRng,
}

impl Singletons {
    /// No singletons yet, on the node `me`; `rng_seed` should differ between incarnations.
    pub fn new(me: String, config: SingletonConfig, rng_seed: u64) -> Self {
        Singletons {
            rng: SmallRng::seed_from_u64(rng_seed),
            me,
            config,
            activators: BTreeMap::new(),
            up: BTreeSet::new(),
            gone: BTreeSet::new(),
            track_idle: true,
            connected: BTreeSet::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one input; see [`Input`] for what each does.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Register { token, name, spec } => self.start(now, token, &name, spec),
            Input::Unregister(name) => self.stop(&name),
            Input::UnregisterAll => self.stop_all(),
            Input::SeedMembers(up) => self.seed_members(up),
            Input::PeerUp(peer) => self.peer_up(now, peer),
            Input::PeerGone(peer) => {
                self.connected.remove(&peer);
            }
            Input::MemberUp(node) => self.member_up(now, &node),
            Input::MemberDown(node) => self.member_down(now, &node),
            Input::Gone(node) => self.gone(now, &node),
            Input::Message { from, msg } => self.on_message(now, &from, msg),
            Input::Tick => self.tick(now),
        }
    }

    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut BTreeMap<String, Activator>, &Ctx, &mut Fx) -> T,
    ) -> T {
        let origin = origin24(&self.me);
        let ctx = Ctx {
            me: &self.me,
            origin,
            config: &self.config,
            up: &self.up,
        };
        let mut fx = Fx::default();
        let out = f(&mut self.activators, &ctx, &mut fx);
        self.outputs.extend(fx.outputs);
        out
    }

    fn start(&mut self, now: Instant, token: u64, name: &str, spec: SingletonSpec) {
        let refused = if self.activators.contains_key(name) {
            Some(SingletonError::AlreadyRegistered(name.to_string()))
        } else if spec.majority_of == Some(0) {
            Some(SingletonError::BadMajority(name.to_string()))
        } else {
            None
        };
        // The answer comes before the activator's first events.
        self.outputs.push_back(Output::Done {
            token,
            result: refused.clone().map_or(Ok(()), Err),
        });
        if refused.is_some() {
            return;
        }
        let settle = now + self.config.settle;
        let instance = self.rng.gen();
        let a = Activator::new(name, spec, instance, now, (settle, self.config.lease));
        let hosting = a.hosting();
        self.activators.insert(name.to_string(), a);
        for p in self.connected.clone() {
            self.outputs.push_back(Output::Send {
                to: p,
                msg: SingletonMsg::Hosted {
                    names: vec![hosting.clone()],
                },
            });
        }
        self.run(|acts, ctx, fx| acts.get_mut(name).expect("inserted").start(ctx, fx));
    }

    fn stop(&mut self, name: &str) {
        if let Some(mut a) = self.activators.remove(name) {
            self.run(|_, ctx, fx| a.stop(ctx, fx));
        }
    }

    fn stop_all(&mut self) {
        let names: Vec<String> = self.activators.keys().cloned().collect();
        for n in names {
            self.stop(&n);
        }
    }

    /// The singletons registered here.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.activators.keys().map(|s| s.as_str())
    }

    /// How `name` looks from here.
    pub fn info(&self, name: &str) -> Option<SingletonInfo> {
        let a = self.activators.get(name)?;
        Some(a.info(&self.me, &self.up))
    }

    fn peer_up(&mut self, now: Instant, peer: String) {
        self.connected.insert(peer.clone());
        if self.gone.remove(&peer) {
            self.up.insert(peer.clone());
            self.tick(now);
        }
        if !self.activators.is_empty() {
            let names = self.activators.values().map(|a| a.hosting()).collect();
            self.outputs.push_back(Output::Send {
                to: peer,
                msg: SingletonMsg::Hosted { names },
            });
        }
    }

    /// Stops keeping the set of live members while no singleton is registered here (a
    /// simulated cluster would hold n^2 names): the owner then feeds [`Input::SeedMembers`]
    /// before a registration whenever [`Singletons::is_idle`].
    pub fn untracked_while_idle(mut self) -> Self {
        self.track_idle = false;
        self
    }

    /// True while no singleton is registered here and the live members are not kept.
    pub fn is_idle(&self) -> bool {
        self.activators.is_empty() && !self.track_idle
    }

    fn seed_members(&mut self, up: Vec<String>) {
        self.up = up
            .into_iter()
            .filter(|n| *n != self.me && !self.gone.contains(n))
            .collect();
    }

    fn member_up(&mut self, now: Instant, node: &str) {
        self.gone.remove(node);
        if self.is_idle() {
            return;
        }
        self.up.insert(node.to_string());
        self.run(|acts, ctx, fx| {
            for a in acts.values_mut() {
                a.member_up(now, ctx, fx, node);
            }
        });
    }

    fn member_down(&mut self, now: Instant, node: &str) {
        self.gone.remove(node);
        self.up.remove(node);
        if self.is_idle() {
            return;
        }
        self.run(|acts, ctx, fx| {
            for a in acts.values_mut() {
                a.member_down(now, ctx, fx, node);
            }
        });
    }

    fn gone(&mut self, now: Instant, node: &str) {
        if self.connected.contains(node) || !self.up.remove(node) {
            return;
        }
        self.gone.insert(node.to_string());
        self.run(|acts, ctx, fx| {
            for a in acts.values_mut() {
                a.member_down(now, ctx, fx, node);
            }
        });
    }

    fn on_message(&mut self, now: Instant, from: &str, msg: SingletonMsg) {
        self.run(|acts, ctx, fx| {
            let name = match &msg {
                SingletonMsg::Hosted { names } => {
                    for h in names {
                        if let Some(a) = acts.get_mut(&h.name) {
                            a.hosted_by(now, ctx, fx, from, h);
                        }
                    }
                    return;
                }
                SingletonMsg::Unhosted { name }
                | SingletonMsg::Claim { name, .. }
                | SingletonMsg::ClaimAck { name, .. }
                | SingletonMsg::Prepare { name, .. }
                | SingletonMsg::Vote { name, .. }
                | SingletonMsg::Resign { name, .. }
                | SingletonMsg::Stale { name, .. } => name.clone(),
            };
            match acts.get_mut(&name) {
                Some(a) => a.on_message(now, ctx, fx, from, msg),
                // Not a candidate here: a leader asking for support gets none, and learns
                // this node does not run the singleton.
                None => {
                    if matches!(
                        msg,
                        SingletonMsg::Claim { .. } | SingletonMsg::Prepare { .. }
                    ) {
                        fx.send(from, SingletonMsg::Unhosted { name });
                    }
                }
            }
        });
    }

    fn tick(&mut self, now: Instant) {
        self.run(|acts, ctx, fx| {
            for a in acts.values_mut() {
                a.tick(now, ctx, fx);
            }
        });
    }

    /// When [`Input::Tick`] is next wanted (None: no timer runs).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.activators
            .values()
            .filter_map(|a| a.next_deadline())
            .min()
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}

/// The low 24 bits of a leader's epochs (FNV-1a of its name, folded).
fn origin24(name: &str) -> u32 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    ((h ^ (h >> 24) ^ (h >> 48)) & 0xff_ffff) as u32
}

/// The first epoch of a new leadership by `origin`, above `highest`.
pub(crate) fn next_epoch(highest: u64, origin: u32) -> u64 {
    let round = (highest >> 24).saturating_add(1).min(u64::MAX >> 24);
    (round << 24) | u64::from(origin)
}
