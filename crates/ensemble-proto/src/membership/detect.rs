//! Failure detection: heartbeats, private probes with helpers, suspicion, declaring down.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;

use super::{Membership, Origin};
use crate::config::Config;
use crate::member::{Member, Status};
use crate::overlay;
use crate::probe::{HelperPing, Phase, Suspicion};
use crate::wire::MembershipMsg;

/// Highest local health score: timeouts stretch at most this many times plus one.
const MAX_HEALTH: u32 = 8;
/// Ticks on time that lower the health score by one.
const TICKS_TO_HEAL: u32 = 10;

/// How long a member stays suspect after `nacks` helpers confirmed it unreachable (Lifeguard):
/// `suspicion_timeout` with none, shrinking logarithmically to `suspicion_min` when all
/// `probe_helpers` did.
pub(crate) fn suspicion_wait(config: &Config, nacks: usize) -> Duration {
    let (max, min) = (
        config.suspicion_timeout,
        config.suspicion_min.min(config.suspicion_timeout),
    );
    let k = config.probe_helpers;
    if k == 0 || nacks == 0 {
        return max;
    }
    let fraction = ((nacks.min(k) + 1) as f64).ln() / ((k + 1) as f64).ln();
    max - (max - min).mul_f64(fraction)
}

impl Membership {
    pub(super) fn on_heartbeat(&mut self, now: Instant, from: &str) {
        if let Some(p) = self.peers.get_mut(from) {
            p.detector.heartbeat(now);
        }
        // A member held down is talking again (a healed partition, a resumed process): tell it,
        // so it refutes at once instead of at the next anti-entropy round.
        if let Some(m) = self.view.get(from).filter(|m| m.status == Status::Down) {
            let members = vec![m.clone()];
            self.send(from, MembershipMsg::Gossip { members });
        }
    }

    /// The connected peers whose heartbeats this node sends and watches.
    pub(super) fn watched(&self) -> impl Iterator<Item = &String> {
        self.peers.keys().filter(|p| self.is_watched(p))
    }

    /// Whether this node watches `name`'s heartbeats (it is one of its monitors).
    pub(super) fn is_watched(&self, name: &str) -> bool {
        self.monitored.as_ref().is_none_or(|m| m.contains(name))
    }

    pub(super) fn check_detectors(&mut self, now: Instant) {
        let silent: Vec<String> = self
            .watched()
            .filter(|name| {
                self.peers[*name].detector.is_suspect(now)
                    && self.view.get(name).is_some_and(|m| m.status.is_up())
                    && !self.probes.suspicions.contains_key(*name)
            })
            .cloned()
            .collect();
        for name in silent {
            self.suspect(now, &name);
        }
    }

    /// Lifeguard's local health awareness, fed by this node's own timer: a tick later than
    /// planned means this node is starved (an overloaded machine, a GC, a pause). A long gap
    /// was our own silence, not the peers': every detector and deadline is pushed back by it.
    /// Shorter lateness raises the health score, which stretches this node's probe and
    /// suspicion timeouts (an overloaded observer is slow to accuse); ticks on time lower it.
    pub(super) fn keep_time(&mut self, now: Instant) {
        let Some(last) = self.last_tick else { return };
        let tick = self.config.tick_interval;
        let gap = now.saturating_duration_since(last);
        if gap > tick * 3 {
            for p in self.peers.values_mut() {
                p.detector.refresh(now);
            }
            self.probes.postpone(gap);
            for (_, until, _) in self.held.values_mut() {
                *until += gap;
            }
        }
        if gap > tick + tick / 2 {
            self.health = (self.health + 1).min(MAX_HEALTH);
            self.ticks_on_time = 0;
        } else {
            self.ticks_on_time += 1;
            if self.ticks_on_time >= TICKS_TO_HEAL && self.health > 0 {
                self.health -= 1;
                self.ticks_on_time = 0;
            }
        }
    }

    /// `d` stretched by the local health score (1x when healthy, up to 1 + `MAX_HEALTH`x).
    fn stretched(&self, d: Duration) -> Duration {
        d * (1 + self.health)
    }

    /// The local health score: 0 while this node keeps time (see `keep_time`).
    pub fn health(&self) -> u32 {
        self.health
    }

    /// Starts a private suspicion of `name`: ping it, and ask helpers to ping it.
    ///
    /// Helpers are peers that are connected to it: in a full mesh any peer; in a partial view
    /// the peers that are also its overlay neighbours.
    pub(super) fn suspect(&mut self, now: Instant, name: &str) {
        if self.leaving || self.probes.suspicions.contains_key(name) {
            return;
        }
        let Some(m) = self.view.get(name).filter(|m| m.status.is_up()) else {
            return;
        };
        let incarnation = m.incarnation;
        let alive_peer = |p: &&String| {
            p.as_str() != name && self.view.get(p).is_some_and(|m| m.status == Status::Alive)
        };
        let mut helpers: Vec<String> = if self.is_full_mesh() {
            self.peers.keys().filter(alive_peer).cloned().collect()
        } else {
            let theirs: BTreeSet<String> = overlay::targets_of(&self.view, name, &self.config);
            self.peers
                .keys()
                .filter(alive_peer)
                .filter(|p| theirs.contains(*p))
                .cloned()
                .collect()
        };
        helpers.shuffle(&mut self.rng);
        helpers.truncate(self.config.probe_helpers);
        let seq = self.probes.next_seq();
        for h in &helpers {
            let target = name.to_owned();
            self.send(h, MembershipMsg::ProbeRequest { seq, target });
        }
        let pinged = self.peers.contains_key(name).then_some(now);
        if pinged.is_some() {
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
                nacks: 0,
                deadline: now + self.stretched(self.config.probe_timeout) * 2,
            },
        );
    }

    /// The probes could not reach `name`: mark it suspect cluster-wide and wait for a refutation,
    /// the shorter the more helpers confirmed it unreachable.
    fn probes_failed(&mut self, now: Instant, name: &str) {
        let wait = self.stretched(suspicion_wait(&self.config, self.probes.nacks(name)));
        let Some(s) = self.probes.suspicions.get_mut(name) else {
            return;
        };
        s.phase = Phase::Suspected;
        s.deadline = now + wait;
        let incarnation = s.incarnation;
        match self.view.get(name) {
            Some(m) if m.incarnation == incarnation && m.status == Status::Alive => {
                let suspect = Member {
                    status: Status::Suspect,
                    ..(**m).clone()
                };
                self.apply(now, Arc::new(suspect), Origin::Local);
            }
            Some(m) if m.incarnation == incarnation && m.status == Status::Suspect => {}
            // It refuted or changed meanwhile.
            _ => self.probes.forget(name),
        }
    }

    /// Declares `name` down if it is still up at `incarnation`.
    pub(super) fn declare_down(&mut self, now: Instant, name: &str, incarnation: u64) {
        self.probes.forget(name);
        if let Some(m) = self.view.get(name) {
            if m.incarnation == incarnation && m.status.is_up() {
                let down = Member {
                    status: Status::Down,
                    ..(**m).clone()
                };
                self.apply(now, Arc::new(down), Origin::Local);
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

    pub(super) fn on_ack(&mut self, now: Instant, from: String, seq: u64) {
        if let Some(p) = self.probes.helper_pings.remove(&seq) {
            if p.target == from {
                self.answer_helper_ping(p, true);
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

    /// Tells the member that asked for `p` whether its target answered.
    pub(super) fn answer_helper_ping(&mut self, p: HelperPing, reachable: bool) {
        let (seq, target) = (p.request_seq, p.target);
        let msg = MembershipMsg::ProbeResult {
            seq,
            target,
            reachable,
        };
        self.send(&p.requester, msg);
    }

    /// Another member asks this node to ping `target` for it.
    pub(super) fn on_probe_request(
        &mut self,
        now: Instant,
        from: String,
        seq: u64,
        target: String,
    ) {
        if self.peers.contains_key(&target) && target != from {
            let ping = self.probes.next_seq();
            let deadline = now + self.stretched(self.config.probe_timeout);
            let p = HelperPing {
                requester: from,
                request_seq: seq,
                target: target.clone(),
                deadline,
            };
            self.probes.helper_pings.insert(ping, p);
            self.send(&target, MembershipMsg::Ping { seq: ping });
        } else {
            self.send(
                &from,
                MembershipMsg::ProbeResult {
                    seq,
                    target,
                    reachable: false,
                },
            );
        }
    }

    pub(super) fn on_probe_result(
        &mut self,
        now: Instant,
        from: String,
        seq: u64,
        target: String,
        ok: bool,
    ) {
        let probe_timeout = self.stretched(self.config.probe_timeout);
        let Some(s) = self.probes.suspicions.get_mut(&target) else {
            return;
        };
        if s.seq != seq || !s.waiting.remove(&from) {
            return;
        }
        let ping_overdue = s.pinged.is_none_or(|at| now >= at + probe_timeout);
        if !ok {
            s.nacks += 1;
        }
        if ok {
            self.confirmed_alive(now, &target);
        } else if s.waiting.is_empty() && s.phase == Phase::Probing {
            if ping_overdue {
                self.probes_failed(now, &target);
            } else if let Some(at) = s.pinged {
                // Every helper said no; give our own ping its full time, then decide.
                s.deadline = s.deadline.min(at + probe_timeout);
            }
        }
    }

    /// Pings that run out answer "unreachable"; suspicions move on when their time is up.
    pub(super) fn expire_probes(&mut self, now: Instant) {
        for (_, p) in self.probes.take_helper_pings(|p| p.deadline <= now) {
            self.answer_helper_ping(p, false);
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
}
