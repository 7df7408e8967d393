//! Merging member versions, holding accusations, disseminating changes, anti-entropy.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use rand::seq::IteratorRandom;

use super::{MemberEvent, Membership, Origin, Output};
use crate::member::{Member, Status};
use crate::probe::RemoteSuspicion;
use crate::topology::{self, Role};
use crate::view::{Transition, BUCKETS, FINE};
use crate::wire::MembershipMsg;

/// A view of at least this many members per bucket (512 members) compares differing
/// buckets range by fine range (see [`MembershipMsg::FineDigest`]).
const REFINE_PER_BUCKET: usize = 8;

impl Membership {
    /// Queues `member` for pushing to `to` with the other changes of this input.
    pub(super) fn queue_push(&mut self, to: String, member: &Arc<Member>) {
        self.push.entry(to).or_default().push(member.clone());
    }

    /// Merges a member version received from `from`, after checking it.
    ///
    /// Invalid members (bad name, oversized tags, absurd incarnation) are dropped and counted.
    /// A `down` or `left` member this node does not hold is ignored: it is a tombstone another
    /// node has not collected yet, and storing it would restart its time to live, so that
    /// tombstones could circulate for ever.
    pub(super) fn apply_remote(
        &mut self,
        now: Instant,
        member: Arc<Member>,
        from: &str,
        forward: bool,
    ) {
        if member.check().is_err() {
            self.rejected += 1;
            return;
        }
        if !member.status.is_up() && self.view.get(&member.name).is_none() {
            return;
        }
        let from = from.to_owned();
        let origin = if forward {
            Origin::Remote(from)
        } else {
            Origin::Quiet(from)
        };
        self.apply(now, member, origin);
    }

    /// Merges one member version and pushes the change on.
    pub(super) fn apply(&mut self, now: Instant, member: Arc<Member>, origin: Origin) {
        if member.name == self.name {
            return self.about_me(now, member, origin);
        }
        if let Origin::Remote(from) | Origin::Quiet(from) = &origin {
            let quiet = matches!(origin, Origin::Quiet(_));
            if self.hold_accusation(now, &member, from, quiet) {
                return;
            }
        }
        let Some(t) = self.view.merge(now, member) else {
            return;
        };
        self.after_transition(now, &t);
        self.note_accuser(&t, &origin);
        match origin {
            Origin::Local => {
                let all: Vec<String> = self.peers.keys().cloned().collect();
                for p in all {
                    self.queue_push(p, &t.new);
                }
            }
            Origin::Remote(from) => self.forward(&t, &from, false),
            Origin::Quiet(from) => self.forward(&t, &from, true),
        }
        self.report(&t);
    }

    fn report(&mut self, t: &Transition) {
        if let Some(e) = MemberEvent::from_transition(t) {
            self.outputs.push_back(Output::Event(e));
        }
    }

    /// Pushes a change learnt from `from` on.
    ///
    /// In a full mesh the node that made a change pushed it to everyone, so forwarding to a
    /// few random peers only covers lost messages. In a partial view a new version of a known
    /// member (a suspicion, a failure, a refutation, a restart, a leave, new tags) floods the
    /// overlay, so every node hears it within O(log n) hops; news of a new member goes to a few
    /// random peers, and anti-entropy repairs whatever they miss. An accused member is always
    /// told, so it can refute at once.
    fn forward(&mut self, t: &Transition, from: &str, quiet: bool) {
        // A new version of a known member: a status change, a refutation, a restart, new tags.
        let changed = t
            .old
            .as_ref()
            .is_some_and(|o| o.status != t.new.status || o.incarnation != t.new.incarnation);
        let flood = changed && !self.is_full_mesh();
        let others = self
            .peers
            .keys()
            .filter(|p| p.as_str() != from && **p != t.new.name);
        let mut targets: BTreeSet<String> = if self.role() == Some(Role::Server) && !quiet {
            // A server hands every change to its clients (their only source of news), and
            // news from a client to the other servers too (which hand it to theirs).
            let from_client = self.view.get(from).is_some_and(|m| !topology::serves(m));
            others
                .filter(|p| from_client || self.view.get(p).is_some_and(|m| !topology::serves(m)))
                .cloned()
                .collect()
        } else if flood {
            others.cloned().collect()
        } else if quiet {
            BTreeSet::new()
        } else {
            let fanout = self.config.gossip_fanout;
            others
                .cloned()
                .choose_multiple(&mut self.rng, fanout)
                .into_iter()
                .collect()
        };
        if t.new.status != Status::Alive && self.peers.contains_key(&t.new.name) {
            targets.insert(t.new.name.clone());
        }
        for p in targets {
            self.queue_push(p, &t.new);
        }
    }

    /// An accusation (`suspect` or `down`) from gossip about a member this node holds `alive`
    /// is held back while the accused gets a chance to refute, unless this node has evidence of
    /// its own that agrees. If the refutation comes first, the accusation is superseded and
    /// never applied, so nodes that could reach the member all along (the other half after a
    /// partition heals, the far end of one bad link) do not flap it down and up.
    ///
    /// - connected and hearing heartbeats, or connected without watching its heartbeats (not
    ///   one of its monitors): held for `probe_timeout`, and passed to the accused; an unwatched
    ///   member accused of `suspect` is probed here too, as if its heartbeats had stopped;
    /// - connected, watched but silent, probing it already, or the last dial to it failed:
    ///   applied at once (we agree);
    /// - not connected and no evidence either way (a partial view's non-neighbour, or a full
    ///   mesh still dialling): held for `probe_timeout` while the refutation floods back.
    ///
    /// A held accusation is passed on at once, as an applied one would be (flooded in a
    /// partial view), and not again when it is applied: each node holds it for `probe_timeout`
    /// from when it heard it, so the holds along a path of n hops overlap instead of adding up
    /// to n of them, and the refutation, flooded from the accused as soon as a neighbour tells
    /// it, still reaches every node well within its own hold.
    ///
    /// Returns true if held.
    fn hold_accusation(
        &mut self,
        now: Instant,
        member: &Arc<Member>,
        from: &str,
        quiet: bool,
    ) -> bool {
        if !matches!(member.status, Status::Suspect | Status::Down) {
            return false;
        }
        let Some(alive) = self
            .view
            .get(&member.name)
            .filter(|h| h.status == Status::Alive && member.supersedes(h))
            .cloned()
        else {
            return false;
        };
        let doubt = self.probes.suspicions.contains_key(&member.name)
            || self.overlay.has_failed(&alive.addr);
        if doubt {
            return false;
        }
        let connected = match self.peers.get(&member.name) {
            Some(p) => {
                let watched = self.is_watched(&member.name);
                let silence = now.saturating_duration_since(p.detector.last_heard());
                if watched && silence >= self.config.heartbeat_interval * 2 {
                    return false;
                }
                if !watched && member.status == Status::Suspect {
                    // No heartbeats to judge by: probe it ourselves. If the probes fail before
                    // the `down` that follows arrives, we agree with it and apply it at once.
                    self.suspect(now, &member.name);
                }
                true
            }
            None => false,
        };
        // A copy of an accusation held already (or an older one) joins it; the accused is
        // told again (a copy may have been lost on the way to it).
        if self
            .held
            .get(&member.name)
            .is_some_and(|(m, _, _)| !member.supersedes(m))
        {
            if connected {
                self.queue_push(member.name.clone(), member);
            }
            return true;
        }
        self.held.insert(
            member.name.clone(),
            (
                member.clone(),
                now + self.config.probe_timeout,
                from.to_owned(),
            ),
        );
        // Passed on now (the accused among the peers it goes to), applied here later.
        let t = Transition {
            old: Some(alive),
            new: member.clone(),
        };
        self.forward(&t, from, quiet);
        true
    }

    /// Applies held accusations whose time is up (a newer version may have superseded them).
    /// They were passed on when they were held.
    pub(super) fn release_accusations(&mut self, now: Instant) {
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, (_, until, _))| *until <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            let Some((member, _, from)) = self.held.remove(&name) else {
                continue;
            };
            if let Some(t) = self.view.merge(now, member) {
                self.after_transition(now, &t);
                self.note_accuser(&t, &Origin::Remote(from));
                self.report(&t);
            }
        }
    }

    /// Handles news about this node: refute anything that would supersede the live version,
    /// except a removal (`left` at this node's current incarnation, which it did not send):
    /// that one is accepted and the node stops taking part.
    fn about_me(&mut self, now: Instant, member: Arc<Member>, origin: Origin) {
        let current = self.local().clone();
        if !matches!(origin, Origin::Local)
            && !self.leaving
            && member.status == Status::Left
            && member.incarnation == current.incarnation
        {
            self.leaving = true;
            self.removed = true;
            self.probes = Default::default();
            self.view.merge(now, member);
            return;
        }
        let fresh = match origin {
            Origin::Local => member,
            Origin::Remote(_) | Origin::Quiet(_)
                if self.leaving || !member.supersedes(&current) =>
            {
                return
            }
            Origin::Remote(_) | Origin::Quiet(_) => {
                self.refutations += 1;
                Arc::new(Member {
                    incarnation: member
                        .incarnation
                        .max(current.incarnation)
                        .saturating_add(1),
                    ..current
                })
            }
        };
        if self.view.merge(now, fresh.clone()).is_some() {
            let all: Vec<String> = self.peers.keys().cloned().collect();
            for p in all {
                self.queue_push(p, &fresh);
            }
        }
    }

    /// Local bookkeeping after another member changed.
    pub(super) fn after_transition(&mut self, now: Instant, t: &Transition) {
        let name = &t.new.name;
        match t.new.status {
            Status::Alive => {
                self.probes.forget(name);
                if let Some(p) = self.peers.get_mut(name) {
                    p.detector.refresh(now);
                }
                // Alive news newer than what we held: a dial that failed before is stale
                // evidence (it may date from a cut that has healed since), and a full mesh
                // redials it now rather than at the end of its back-off.
                if t.old.as_ref().is_some_and(|o| t.new.supersedes(o)) {
                    self.overlay.forgive(&t.new.addr, now);
                    if self.is_full_mesh() && !self.peers.contains_key(name) {
                        self.dial_pass_due = true;
                    }
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
        let was_up = t.old.as_ref().map(|o| o.status.is_up());
        // Tags matter too: reserved slots go to members carrying a tag.
        let retagged = t.old.as_ref().is_some_and(|o| o.tags != t.new.tags);
        if was_up != Some(t.new.status.is_up()) || retagged {
            self.targets_dirty = true;
        }
        if let Some(old) = t.old.as_ref().filter(|o| o.addr != t.new.addr) {
            self.overlay.forget(&old.addr);
        }
        // A full mesh dials new and returning members at once. A partial view picks its
        // targets at the next tick, so a pass now would only walk the old targets again (at
        // every input of a join storm).
        if self.is_full_mesh()
            && t.old
                .as_ref()
                .is_none_or(|o| o.addr != t.new.addr || !o.status.is_up())
        {
            self.dial_pass_due = true;
        }
    }

    /// Anti-entropy: a peer's digest. Send our members of every range whose hash differs (at
    /// most once per quarter of the sync interval per peer), and our digest if they asked.
    pub(super) fn on_digest(&mut self, now: Instant, from: String, buckets: Vec<u64>, reply: bool) {
        let mine = self.view.bucket_digests();
        if buckets.len() != BUCKETS {
            self.rejected += 1;
            return;
        }
        let differ: Vec<usize> = (0..BUCKETS).filter(|b| buckets[*b] != mine[*b]).collect();
        if differ.is_empty() {
            return;
        }
        // Views differ: something is spreading. Compare again soon (with another random peer)
        // instead of a whole interval later, until the views agree.
        self.next_sync = self.next_sync.min(now + self.config.sync_interval / 10);
        // A large view narrows the difference down first: whole buckets would carry every
        // member again and again while a join storm keeps every bucket changing.
        if self.view.len() >= BUCKETS * REFINE_PER_BUCKET {
            let differ: Vec<u16> = differ.iter().map(|b| *b as u16).collect();
            self.send_fine_digest(&from, differ, true);
            return;
        }
        let recent = self
            .full_sync_sent
            .get(&from)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.config.sync_interval / 4);
        if !recent {
            self.full_sync_sent.insert(from.clone(), now);
            let members: Vec<Arc<Member>> = differ
                .iter()
                .flat_map(|b| self.view.bucket(*b))
                .cloned()
                .collect();
            self.send_chunks(&from, members);
        }
        if reply {
            let buckets = self.view.bucket_digests().to_vec();
            self.send(
                &from,
                MembershipMsg::Digest {
                    buckets,
                    reply: false,
                },
            );
        }
    }

    fn send_fine_digest(&mut self, to: &str, buckets: Vec<u16>, reply: bool) {
        let mut fine = Vec::with_capacity(buckets.len() * FINE);
        for b in &buckets {
            fine.extend_from_slice(self.view.fine_digests(usize::from(*b)));
        }
        let coarse = self.view.bucket_digests();
        let digests = buckets.iter().map(|b| coarse[usize::from(*b)]).collect();
        let msg = MembershipMsg::FineDigest {
            buckets,
            digests,
            fine,
            reply,
        };
        self.send(to, msg);
    }

    /// Anti-entropy in a large view: a peer's fine hashes of the buckets that differed. Send
    /// our members of every fine range that differs (of the whole bucket if the bucket still
    /// differs but its fine ranges all agree: 32-bit hashes that collided), and our own fine
    /// hashes if they asked.
    pub(super) fn on_fine_digest(
        &mut self,
        from: String,
        buckets: Vec<u16>,
        digests: Vec<u64>,
        fine: Vec<u32>,
        reply: bool,
    ) {
        let unique: BTreeSet<u16> = buckets.iter().copied().collect();
        let valid = unique.len() == buckets.len()
            && buckets.iter().all(|b| usize::from(*b) < BUCKETS)
            && digests.len() == buckets.len()
            && fine.len() == buckets.len() * FINE;
        if !valid {
            self.rejected += 1;
            return;
        }
        let mut members: Vec<Arc<Member>> = Vec::new();
        let parts = buckets.iter().zip(digests).zip(fine.chunks(FINE));
        for ((b, digest), theirs) in parts {
            let b = usize::from(*b);
            let ours = self.view.fine_digests(b);
            let differ: Vec<usize> = (0..FINE).filter(|f| ours[*f] != theirs[*f]).collect();
            if differ.is_empty() && digest != self.view.bucket_digests()[b] {
                members.extend(self.view.bucket(b).cloned());
            }
            for f in differ {
                members.extend(self.view.fine_range(b * FINE + f).cloned());
            }
        }
        self.send_chunks(&from, members);
        if reply {
            self.send_fine_digest(&from, buckets, false);
        }
    }

    /// Sends `members` to `to`, in chunks that fit a frame.
    fn send_chunks(&mut self, to: &str, members: Vec<Arc<Member>>) {
        let chunk = self.config.sync_chunk.max(1);
        for part in members.chunks(chunk) {
            let members = part.to_vec();
            self.send(to, MembershipMsg::Sync { members });
        }
    }
}
