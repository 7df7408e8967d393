//! What an activator does with the other activators' messages: who hosts the singleton,
//! claims of leadership and their acknowledgements, the majority rule's votes, resignations.

use std::time::Instant;

use super::{Activator, Followed, State};
use crate::singleton::msg::{Hosting, SingletonMsg};
use crate::singleton::{Ctx, Fx, ShutdownReason};

impl Activator {
    pub fn hosted_by(&mut self, now: Instant, ctx: &Ctx, fx: &mut Fx, from: &str, h: &Hosting) {
        if h.majority_of != self.spec.majority_of.map(|n| n as u64) {
            self.candidates.remove(from);
            if self.leader.as_ref().is_some_and(|l| l.node == from) {
                self.vacate(now, fx);
            }
            self.mismatched.insert(from.to_string());
            return self.tick(now, ctx, fx);
        }
        self.mismatched.remove(from);
        self.highest = self.highest.max(h.highest);
        let before = self.candidates.insert(from.to_string(), h.instance);
        if before != Some(h.instance) {
            // A newcomer (or a new activator there): it hears of this one in turn, in case it
            // registered after our `Hosted` reached it.
            let msg = SingletonMsg::Hosted {
                names: vec![self.hosting()],
            };
            fx.send(from, msg);
        }
        if before.is_some_and(|i| i != 0 && i != h.instance) {
            // A new activator there (the node restarted): a leadership it held is over.
            if self.leader.as_ref().is_some_and(|l| l.node == from) {
                self.vacate(now, fx);
            }
        }
        if let State::Leader { epoch, seq, .. } = self.state {
            let msg = SingletonMsg::Claim {
                name: self.name.clone(),
                epoch,
                seq,
            };
            fx.send(from, msg);
        }
        self.tick(now, ctx, fx);
    }

    pub fn on_message(
        &mut self,
        now: Instant,
        ctx: &Ctx,
        fx: &mut Fx,
        from: &str,
        msg: SingletonMsg,
    ) {
        if self.mismatched.contains(from) && !matches!(msg, SingletonMsg::Unhosted { .. }) {
            return;
        }
        match msg {
            SingletonMsg::Hosted { .. } => {}
            SingletonMsg::Unhosted { .. } => {
                self.candidates.remove(from);
                self.mismatched.remove(from);
                if self.leader.as_ref().is_some_and(|l| l.node == from) {
                    self.vacate(now, fx);
                }
            }
            SingletonMsg::Claim { epoch, seq, .. } => self.on_claim(now, ctx, fx, from, epoch, seq),
            SingletonMsg::ClaimAck { epoch, seq, .. } => {
                let majority = self.majority().unwrap_or(1);
                let lease = ctx.config.lease;
                if let State::Leader {
                    epoch: e,
                    rounds,
                    lease_until,
                    ..
                } = &mut self.state
                {
                    if *e == epoch {
                        if let Some((_, at, acks)) = rounds.iter_mut().find(|r| r.0 == seq) {
                            acks.insert(from.to_string());
                            if acks.len() >= majority {
                                *lease_until = (*lease_until).max(*at + lease);
                            }
                        }
                    }
                }
            }
            SingletonMsg::Stale { highest, .. } => {
                self.highest = self.highest.max(highest);
                if let State::Leader { epoch, .. } = self.state {
                    if epoch < highest {
                        self.step_down(now, ShutdownReason::NameConflict, fx);
                        // The higher leadership's claim is on its way: listen for it first.
                        self.not_before = now + ctx.config.settle;
                    }
                }
            }
            SingletonMsg::Prepare { epoch, .. } => {
                self.candidates.entry(from.to_string()).or_insert(0);
                // Free to vote: no vote given (or lease helped) is still running, and the
                // leader followed is the asker or its lease ran out.
                let hold_over = self.vote_hold.is_none_or(|h| now >= h);
                let lease = ctx.config.lease + ctx.config.lease / 10;
                let leader_over = self
                    .leader
                    .as_ref()
                    .is_none_or(|l| l.node == from || now >= l.heard + lease);
                let free = !matches!(self.state, State::Leader { .. }) && hold_over && leader_over;
                let granted = free && epoch > self.promised && epoch > self.highest;
                if granted {
                    self.promised = epoch;
                    self.vote_hold = Some(now + ctx.config.lease);
                    if matches!(self.state, State::Candidate { .. }) {
                        self.state = State::Follower;
                    }
                }
                let reply = SingletonMsg::Vote {
                    name: self.name.clone(),
                    epoch,
                    granted,
                    highest: self.highest.max(self.promised),
                };
                fx.send(from, reply);
            }
            SingletonMsg::Vote {
                epoch,
                granted,
                highest,
                ..
            } => {
                self.highest = self.highest.max(highest);
                let majority = self.majority().unwrap_or(1);
                if let State::Candidate {
                    epoch: e,
                    votes,
                    sent_at,
                } = &mut self.state
                {
                    if *e == epoch && granted {
                        votes.insert(from.to_string());
                        if votes.len() + 1 >= majority {
                            let start = *sent_at;
                            self.become_leader(now, epoch, start, ctx, fx);
                        }
                    }
                }
            }
            SingletonMsg::Resign { epoch, .. } => {
                if self
                    .leader
                    .as_ref()
                    .is_some_and(|l| l.node == from && l.epoch == epoch)
                {
                    self.vacate(now, fx);
                }
            }
        }
        self.tick(now, ctx, fx);
    }

    fn on_claim(&mut self, now: Instant, ctx: &Ctx, fx: &mut Fx, from: &str, epoch: u64, seq: u64) {
        self.candidates.entry(from.to_string()).or_insert(0);
        let known = self
            .leader
            .as_ref()
            .is_some_and(|l| l.node == from && l.epoch == epoch);
        if epoch < self.highest && !known {
            // A leadership below one seen here: it must not go on.
            let msg = SingletonMsg::Stale {
                name: self.name.clone(),
                highest: self.highest,
            };
            fx.send(from, msg);
            return;
        }
        self.highest = self.highest.max(epoch);
        match &self.state {
            State::Leader {
                epoch: mine,
                seq: my_seq,
                ..
            } => {
                let (mine, my_seq) = (*mine, *my_seq);
                // The higher epoch keeps leading; equal epochs (names whose bits collide) are
                // ordered by name.
                if (epoch, from) > (mine, ctx.me) {
                    self.leader = Some(Followed {
                        node: from.to_string(),
                        epoch,
                        heard: now,
                    });
                    self.step_down(now, ShutdownReason::NameConflict, fx);
                } else {
                    // It should step down: our claim tells it so.
                    let msg = SingletonMsg::Claim {
                        name: self.name.clone(),
                        epoch: mine,
                        seq: my_seq,
                    };
                    fx.send(from, msg);
                    return;
                }
            }
            State::Candidate { epoch: mine, .. } if epoch < *mine => return,
            _ => {}
        }
        if let Some(l) = &self.leader {
            if (epoch, from) < (l.epoch, l.node.as_str()) {
                return;
            }
        }
        self.state = State::Follower;
        self.follow(now, from, epoch, fx);
        // A vote promised to a higher epoch forbids supporting this one (its lease must not be
        // extended by us), though nobody led at that epoch: follow, but do not ack.
        if self.majority().is_some() && epoch >= self.promised {
            self.promised = epoch;
            let msg = SingletonMsg::ClaimAck {
                name: self.name.clone(),
                epoch,
                seq,
            };
            fx.send(from, msg);
        }
    }
}
