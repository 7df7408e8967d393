//! One singleton's activator on one node: its role, the leader it follows, and the rules of
//! taking over, voting and stepping down (see the module docs of [`super`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

mod messages;

use super::msg::{Hosting, SingletonMsg};
use super::{
    next_epoch, Ctx, Fx, Role, ShutdownReason, SingletonEvent, SingletonInfo, SingletonSpec,
};

/// The leader this activator follows.
#[derive(Debug, Clone)]
struct Followed {
    node: String,
    epoch: u64,
    /// When its last claim arrived (majority rule: its lease may run until this plus `lease`).
    heard: Instant,
}

#[derive(Debug)]
enum State {
    Follower,
    Candidate {
        epoch: u64,
        votes: BTreeSet<String>,
        sent_at: Instant,
    },
    Leader {
        epoch: u64,
        /// When this leadership began.
        from: Instant,
        seq: u64,
        /// Heartbeats still within a lease: (seq, sent at, who acked).
        rounds: VecDeque<(u64, Instant, BTreeSet<String>)>,
        lease_until: Instant,
        next_beat: Instant,
    },
}

#[derive(Debug)]
pub(crate) struct Activator {
    name: String,
    spec: SingletonSpec,
    instance: u64,
    /// Other nodes running an activator for this singleton, with their activator instance.
    candidates: BTreeMap<String, u64>,
    /// Nodes that run this singleton with other options (the majority rule): not candidates,
    /// and their claims and votes are ignored.
    mismatched: BTreeSet<String>,
    state: State,
    leader: Option<Followed>,
    /// The highest epoch seen anywhere.
    highest: u64,
    /// Majority rule: the highest epoch voted for (this node's own candidacy included).
    promised: u64,
    /// Majority rule: no other vote, nor a takeover, before this (a vote given is a lease).
    vote_hold: Option<Instant>,
    /// No takeover before this (listening for a leader after start, back-off after a failed
    /// candidacy).
    not_before: Instant,
    /// Since when no leader is known.
    vacant_since: Instant,
    /// When the current role (or the leader followed) began.
    since: Option<Instant>,
    /// When `tick` is next wanted.
    wake: Option<Instant>,
    /// When the activator was registered.
    created: Instant,
}

impl Activator {
    pub fn new(
        name: &str,
        spec: SingletonSpec,
        instance: u64,
        now: Instant,
        (settle, lease): (Instant, std::time::Duration),
    ) -> Self {
        // With the majority rule a new activator (perhaps a restart of one that voted or acked
        // a moment ago, and remembers nothing) neither votes nor campaigns for a whole lease:
        // any lease its earlier self helped grant has run out by then.
        let hold = spec.majority_of.map(|_| now + lease + lease / 10);
        let settle = hold.map_or(settle, |h| h.max(settle));
        Activator {
            name: name.to_string(),
            spec,
            instance,
            candidates: BTreeMap::new(),
            mismatched: BTreeSet::new(),
            state: State::Follower,
            leader: None,
            highest: 0,
            promised: 0,
            vote_hold: hold,
            not_before: settle,
            vacant_since: now,
            since: None,
            wake: Some(settle),
            created: now,
        }
    }

    pub fn hosting(&self) -> Hosting {
        Hosting {
            name: self.name.clone(),
            instance: self.instance,
            highest: self.highest.max(self.promised),
            majority_of: self.spec.majority_of.map(|n| n as u64),
        }
    }

    pub fn start(&mut self, _ctx: &Ctx, fx: &mut Fx) {
        fx.event(&self.name, SingletonEvent::NowFollower { leader: None });
    }

    /// Stops here: a leader steps down and tells the candidates first.
    pub fn stop(&mut self, ctx: &Ctx, fx: &mut Fx) {
        if let State::Leader { epoch, .. } = self.state {
            fx.event(
                &self.name,
                SingletonEvent::Shutdown {
                    reason: ShutdownReason::Stopped,
                },
            );
            for c in self.live(ctx) {
                let msg = SingletonMsg::Resign {
                    name: self.name.clone(),
                    epoch,
                };
                fx.send(&c, msg);
            }
        }
        for c in self.live(ctx) {
            let msg = SingletonMsg::Unhosted {
                name: self.name.clone(),
            };
            fx.send(&c, msg);
        }
    }

    pub fn info(&self, me: &str, up: &BTreeSet<String>) -> SingletonInfo {
        let active_from = match &self.state {
            State::Leader { from, .. } => Some(*from),
            _ => None,
        };
        let (role, leader, epoch) = match &self.state {
            State::Leader { epoch, .. } => (Role::Leader, Some(me.to_string()), *epoch),
            State::Candidate { .. } => (Role::Candidate, None, 0),
            State::Follower => match &self.leader {
                Some(l) => (Role::Follower, Some(l.node.clone()), l.epoch),
                None => (Role::Follower, None, 0),
            },
        };
        SingletonInfo {
            name: self.name.clone(),
            role,
            leader,
            epoch,
            since: self.since,
            created: self.created,
            active_from,
            candidates: self
                .candidates
                .keys()
                .filter(|c| up.contains(*c))
                .cloned()
                .collect(),
            majority_of: self.spec.majority_of,
            mismatched: self.mismatched.iter().cloned().collect(),
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.wake
    }

    /// Other candidates that are up, in name order.
    fn live(&self, ctx: &Ctx) -> Vec<String> {
        self.candidates
            .keys()
            .filter(|c| ctx.up.contains(*c))
            .cloned()
            .collect()
    }

    fn majority(&self) -> Option<usize> {
        self.spec.majority_of.map(|n| n / 2 + 1)
    }

    /// Majority rule: when the lease of the leader followed (or of a vote given) runs out.
    fn lease_end(&self, ctx: &Ctx) -> Option<Instant> {
        self.majority()?;
        let lease = ctx.config.lease + ctx.config.lease / 10;
        let leader = self.leader.as_ref().map(|l| l.heard + lease);
        leader.into_iter().chain(self.vote_hold).max()
    }

    /// When this node would take over, if it follows and no leader is known (or leases ran out).
    fn takeover_at(&self, ctx: &Ctx) -> Option<Instant> {
        if !matches!(self.state, State::Follower) {
            return None;
        }
        let base = match (self.majority(), &self.leader) {
            (None, Some(_)) => return None,
            (None, None) => self.vacant_since,
            (Some(_), _) => match self.lease_end(ctx) {
                Some(end) => end,
                None => self.vacant_since,
            },
        };
        // Rank among the live candidates, the leader followed excluded.
        let leader = self.leader.as_ref().map(|l| l.node.as_str());
        let rank = self
            .live(ctx)
            .iter()
            .filter(|c| Some(c.as_str()) != leader)
            .filter(|c| c.as_str() < ctx.me)
            .count() as u32;
        Some(base.max(self.not_before) + ctx.config.takeover_step * rank)
    }

    pub fn tick(&mut self, now: Instant, ctx: &Ctx, fx: &mut Fx) {
        match &mut self.state {
            State::Leader {
                epoch,
                seq,
                rounds,
                lease_until,
                next_beat,
                ..
            } => {
                let Some(majority) = self.spec.majority_of.map(|n| n / 2 + 1) else {
                    self.wake = None;
                    return;
                };
                if now >= *lease_until {
                    self.step_down(now, ShutdownReason::LostMajority, fx);
                    return self.tick(now, ctx, fx);
                }
                if now >= *next_beat {
                    *seq += 1;
                    *next_beat = now + ctx.config.heartbeat;
                    let lease = ctx.config.lease;
                    rounds.retain(|(_, at, _)| *at + lease > now);
                    rounds.push_back((*seq, now, BTreeSet::from([ctx.me.to_string()])));
                    if majority <= 1 {
                        *lease_until = (*lease_until).max(now + lease);
                    }
                    let (epoch, seq) = (*epoch, *seq);
                    for c in self.live(ctx) {
                        let msg = SingletonMsg::Claim {
                            name: self.name.clone(),
                            epoch,
                            seq,
                        };
                        fx.send(&c, msg);
                    }
                }
                if let State::Leader {
                    lease_until,
                    next_beat,
                    ..
                } = &self.state
                {
                    self.wake = Some((*lease_until).min(*next_beat));
                }
            }
            State::Candidate { sent_at, .. } => {
                let until = *sent_at + ctx.config.vote_timeout;
                if now >= until {
                    // No majority in time: try again later, above what the voters told us.
                    self.state = State::Follower;
                    self.not_before = now + ctx.config.takeover_step * 2;
                    return self.tick(now, ctx, fx);
                }
                self.wake = Some(until);
            }
            State::Follower => {
                let at = self.takeover_at(ctx);
                match at {
                    Some(at) if now >= at => self.take_over(now, ctx, fx),
                    _ => self.wake = at,
                }
            }
        }
    }

    fn take_over(&mut self, now: Instant, ctx: &Ctx, fx: &mut Fx) {
        let epoch = next_epoch(self.highest.max(self.promised), ctx.origin);
        self.leader = None;
        match self.majority() {
            None => self.become_leader(now, epoch, now, ctx, fx),
            Some(majority) => {
                self.promised = epoch;
                if majority <= 1 {
                    return self.become_leader(now, epoch, now, ctx, fx);
                }
                self.state = State::Candidate {
                    epoch,
                    votes: BTreeSet::new(),
                    sent_at: now,
                };
                for c in self.live(ctx) {
                    let msg = SingletonMsg::Prepare {
                        name: self.name.clone(),
                        epoch,
                    };
                    fx.send(&c, msg);
                }
                self.wake = Some(now + ctx.config.vote_timeout);
            }
        }
    }

    /// Leads at `epoch`; with the majority rule the lease runs from `lease_start` (when the
    /// votes were asked for: each vote is a promise from then on).
    fn become_leader(
        &mut self,
        now: Instant,
        epoch: u64,
        lease_start: Instant,
        ctx: &Ctx,
        fx: &mut Fx,
    ) {
        self.highest = self.highest.max(epoch);
        self.leader = None;
        self.since = Some(now);
        self.state = State::Leader {
            epoch,
            from: now,
            seq: 0,
            rounds: VecDeque::new(),
            lease_until: lease_start + ctx.config.lease,
            next_beat: now,
        };
        fx.event(&self.name, SingletonEvent::NowLeader { epoch });
        if self.majority().is_none() {
            for c in self.live(ctx) {
                let msg = SingletonMsg::Claim {
                    name: self.name.clone(),
                    epoch,
                    seq: 0,
                };
                fx.send(&c, msg);
            }
        }
        // With the majority rule the first heartbeat goes out now.
        self.tick(now, ctx, fx);
    }

    fn step_down(&mut self, now: Instant, reason: ShutdownReason, fx: &mut Fx) {
        self.state = State::Follower;
        self.since = self.leader.as_ref().map(|_| now);
        self.vacant_since = now;
        fx.event(&self.name, SingletonEvent::Shutdown { reason });
        let leader = self.leader.as_ref().map(|l| l.node.clone());
        fx.event(&self.name, SingletonEvent::NowFollower { leader });
    }

    /// Follows `node` at `epoch` (a claim at least as high as anything followed before).
    fn follow(&mut self, now: Instant, node: &str, epoch: u64, fx: &mut Fx) {
        let changed = self.leader.as_ref().is_none_or(|l| l.node != node);
        self.leader = Some(Followed {
            node: node.to_string(),
            epoch,
            heard: now,
        });
        if changed {
            self.since = Some(now);
            fx.event(
                &self.name,
                SingletonEvent::NowFollower {
                    leader: Some(node.to_string()),
                },
            );
        }
    }

    /// The leader followed is gone for good (resigned, stopped, restarted).
    fn vacate(&mut self, now: Instant, fx: &mut Fx) {
        if self.leader.take().is_some() {
            self.vacant_since = now;
            self.since = None;
            fx.event(&self.name, SingletonEvent::NowFollower { leader: None });
        }
    }

    pub fn member_up(&mut self, now: Instant, ctx: &Ctx, fx: &mut Fx, node: &str) {
        // Back from a split: it may have a leader of its own; the lower epoch steps down.
        if let (State::Leader { epoch, seq, .. }, true) =
            (&self.state, self.candidates.contains_key(node))
        {
            let msg = SingletonMsg::Claim {
                name: self.name.clone(),
                epoch: *epoch,
                seq: *seq,
            };
            fx.send(node, msg);
        }
        self.tick(now, ctx, fx);
    }

    pub fn member_down(&mut self, now: Instant, ctx: &Ctx, fx: &mut Fx, node: &str) {
        let followed = self.leader.as_ref().is_some_and(|l| l.node == node);
        if followed && self.majority().is_none() {
            self.vacate(now, fx);
        }
        if let State::Candidate { votes, .. } = &mut self.state {
            votes.remove(node);
        }
        self.tick(now, ctx, fx);
    }
}
