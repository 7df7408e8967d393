//! Connections: who to dial, what a new or lost connection means, which ones to close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;

use super::{Membership, Output, Peer};
use crate::detector::PhiDetector;
use crate::member::{Member, Status};
use crate::overlay;
use crate::topology::{self, Role};
use crate::wire::{MembershipMsg, PeerInfo};

/// One of two connections between this node and one peer name, as the rule of [`keeps_new`]
/// sees it.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The name of the node that dialled it.
    pub dialer: &'a str,
    /// The peer as it announced itself in the connection's handshake.
    pub peer: &'a PeerInfo,
}

/// Which connection to keep when a second one to the same peer name completes its handshake
/// while `old` is open: true to replace `old` with `new`, false to close `new`.
///
/// - To another process under the same name (a restart: another `instance`): the new one, if
///   its incarnation is not older.
/// - Two connections to the same process (both ends dialled each other at once): the one
///   dialled by the smaller name. Both ends see the same two connections, so they keep the
///   same one without talking.
///
/// The runtime applies it to every connection that completes a handshake, and the simulator
/// to every dial that completes while the pair is connected.
pub fn keeps_new(old: &Connection, new: &Connection) -> bool {
    if new.peer.instance != old.peer.instance {
        return new.peer.incarnation >= old.peer.incarnation;
    }
    new.dialer < old.dialer
}

/// Down members redialled per healing round in a partial view (every `reconnect_min`).
const HEAL_DIALS: usize = 2;
/// Servers named in a referral.
const REFERRED_SERVERS: usize = 8;

impl Membership {
    pub(super) fn on_connected(
        &mut self,
        now: Instant,
        peer: PeerInfo,
        dialed: Option<SocketAddr>,
    ) {
        self.lost.remove(&peer.name);
        let expected = self.overlay.connected(peer.addr, &peer.name, dialed);
        if peer.name == self.name {
            return;
        }
        // Clients do not connect to clients: the accepting side refers the dialer to servers
        // and closes; the dialing side waits for that referral.
        if self.role() == Some(Role::Client) && peer.role == Some(Role::Client) {
            if dialed.is_none() {
                self.refer(&peer.name);
            }
            return;
        }
        // Another name now answers at the address we dialled: the member we expected is gone.
        if let Some(name) = expected {
            if self
                .view
                .get(&name)
                .is_some_and(|m| m.status == Status::Alive)
            {
                self.suspect(now, &name);
            }
        }
        let fresh = self
            .peers
            .get(&peer.name)
            .is_none_or(|p| p.incarnation != peer.incarnation);
        // Two nodes that dial each other at once keep one connection (the smaller name's
        // dial). If the accepted one came up first, this side's dial is not fresh, and the
        // digest the other side sent on the connection it dropped may be lost: the dialer
        // starts the push-pull again while it does not know the peer as a member.
        let unknown = dialed.is_some() && self.view.get(&peer.name).is_none();
        if fresh {
            let detector = PhiDetector::new(self.config.detector, now);
            let p = Peer {
                incarnation: peer.incarnation,
                role: peer.role,
                detector,
                since: now,
            };
            self.peers.insert(peer.name.clone(), p);
            self.peers_version += 1;
        }
        // Push-pull on connect: if the views differ, both sides send theirs. The side that
        // dialled starts it (the digest asks for a reply); two starts would send everything
        // twice, which a join storm multiplies by every new connection.
        if dialed.is_some() && (fresh || unknown) {
            let buckets = self.view.bucket_digests().to_vec();
            self.send(
                &peer.name,
                MembershipMsg::Digest {
                    buckets,
                    reply: true,
                },
            );
        }
    }

    /// Refuses the client `to` with a referral to live servers, nearest to it first.
    fn refer(&mut self, to: &str) {
        let me = self.view.get(&self.name).cloned();
        let servers = topology::nearest_servers(&self.view, to, REFERRED_SERVERS)
            .into_iter()
            .cloned();
        let members = me.into_iter().chain(servers).collect();
        self.send(to, MembershipMsg::Referral { members });
        self.outputs
            .push_back(Output::Disconnect { name: to.into() });
    }

    /// A client this node dialled refused it and named servers: learn them (the next dial pass
    /// connects to the nearest), back off from the referring address, close the connection.
    pub(super) fn on_referral(&mut self, now: Instant, from: String, members: Vec<Arc<Member>>) {
        if self.peers.contains_key(&from) || self.role() != Some(Role::Client) {
            return; // Only a refused connection carries a referral.
        }
        let referrer = members.iter().find(|m| m.name == from).map(|m| m.addr);
        for m in members.into_iter().take(REFERRED_SERVERS + 1) {
            self.apply_remote(now, m, &from, false);
        }
        // The referrer is redialled only while this node has no connection (it may have known
        // no server yet, in the middle of a join storm): not before `reconnect_min`.
        if let Some(addr) = referrer {
            let at = now + self.config.reconnect_min;
            self.overlay.defer(addr, now, at);
        }
        self.outputs.push_back(Output::Disconnect { name: from });
        self.targets_dirty = true;
        self.dial_pass_due = true;
    }

    /// The connected member to hand a message for `to` to: `to` itself if connected; in a
    /// client-server topology, a server connected to it (or, from a client, any server, which
    /// relays on through the server mesh). None if there is no way from here.
    pub fn route(&self, to: &str) -> Option<&str> {
        if let Some((name, _)) = self.peers.get_key_value(to) {
            return Some(name);
        }
        let role = self.role()?;
        let target = self.view.get(to).filter(|m| m.status.is_up())?;
        if !topology::serves(target) {
            let k = self.config.servers_per_client;
            let its = topology::nearest_servers(&self.view, to, k);
            if let Some(s) = its.into_iter().find(|s| self.peers.contains_key(&s.name)) {
                return Some(&s.name);
            }
        }
        if role == Role::Server {
            // To a server: the server mesh is direct. To a client: its servers, tried above.
            return None;
        }
        self.peers
            .keys()
            .find(|p| {
                self.view
                    .get(p)
                    .is_some_and(|m| m.status.is_up() && topology::serves(m))
            })
            .map(String::as_str)
    }

    pub(super) fn on_disconnected(&mut self, now: Instant, name: &str) {
        if !self.drop_peer(name) {
            return;
        }
        // A closed connection is a strong hint, not proof: redial first. If nothing listens
        // there any more, that redial's refusal is the proof (`on_dial_failed`).
        if let Some(m) = self.view.get(name).filter(|m| m.status.is_up()) {
            let addr = m.addr;
            self.overlay.expedite(addr, now);
            self.dial_pass_due = true;
            self.lost.insert(name.to_owned(), now);
            // A member that dials this node but is never dialled from here (a server's
            // client): no redial would fail to raise a suspicion, so check it now, through
            // the nodes it connects to.
            self.refresh_targets(now);
            if !self.is_full_mesh()
                && !self.targets.contains(name)
                && overlay::targets_of(&self.view, name, &self.config).contains(&self.name)
            {
                self.suspect(now, name);
            }
        }
    }

    /// Forgets a connection; pings running through it cannot be answered any more. Returns
    /// false if there was none.
    fn drop_peer(&mut self, name: &str) -> bool {
        if self.peers.remove(name).is_none() {
            return false;
        }
        self.peers_version += 1;
        for (_, p) in self.probes.take_helper_pings(|p| p.target == name) {
            self.answer_helper_ping(p, false);
        }
        true
    }

    pub(super) fn on_dial_failed(&mut self, now: Instant, addr: SocketAddr, no_listener: bool) {
        let (min, max) = (self.config.reconnect_min, self.config.reconnect_max);
        let expected = self.overlay.dial_failed(addr, now, min, max, &mut self.rng);
        let Some(name) = expected else {
            return;
        };
        let Some(m) = self.view.get(&name).filter(|m| m.status.is_up()) else {
            return;
        };
        if self.peers.contains_key(&name) {
            return;
        }
        // Refused right after its connection closed, at the address it advertises: the
        // process is gone (a timeout never counts: it may be a partition or a pause).
        let lost_at = self.lost.get(&name).copied();
        let just_lost = lost_at.is_some_and(|at| now <= at + self.config.suspicion_timeout);
        if no_listener && just_lost && self.config.down_on_refused && m.addr == addr {
            let incarnation = m.incarnation;
            self.declare_down(now, &name, incarnation);
        } else {
            self.suspect(now, &name);
        }
    }

    /// Recomputes the overlay's targets and the monitored peers if the live members changed.
    /// A peer that becomes monitored starts with a fresh detector: its silence until now was
    /// not a missed heartbeat.
    pub(super) fn refresh_targets(&mut self, now: Instant) {
        if self.targets_dirty {
            self.targets_dirty = false;
            self.targets = overlay::targets_of(&self.view, &self.name, &self.config);
            let monitored = overlay::monitored_by(&self.view, &self.name, &self.config);
            if let (Some(new), Some(old)) = (&monitored, &self.monitored) {
                for name in new.difference(old) {
                    if let Some(p) = self.peers.get_mut(name) {
                        p.detector.refresh(now);
                    }
                }
            }
            self.monitored = monitored;
        }
    }

    /// Dials what should be connected and may be dialled now: overlay targets, seeds not
    /// reached yet, and members marked down (all of them in a full mesh, a few random ones per
    /// round in a partial view) so that split clusters find each other again.
    pub(super) fn dial_pass(&mut self, now: Instant) {
        self.dial_pass_due = false;
        if self.leaving {
            return;
        }
        // Targets are recomputed at most once per tick: during a join storm the view changes at
        // every input, and a target list up to one tick old is good enough to dial.
        if self.last_tick == Some(now) || self.targets.is_empty() {
            self.refresh_targets(now);
        }
        let me = self.local().addr;
        // (address, member meant to be there; None for a seed)
        let mut wanted: Vec<(SocketAddr, Option<String>)> = self
            .targets
            .iter()
            .filter(|t| !self.peers.contains_key(*t))
            .filter_map(|t| self.view.get(t).map(|m| (m.addr, Some(m.name.clone()))))
            .collect();
        // A seed is dialled until it is reached, and again only if its member is no longer up
        // here (split clusters find each other again) or this node has no connection at all (a
        // client referred by a client that knew no server yet). A seed that is up needs no
        // connection of its own in a partial view: redialling it would reopen what pruning
        // just closed.
        let isolated = self.peers.is_empty();
        let seeds = self.overlay.seeds().filter(|s| {
            self.overlay.seed_name(s).is_none_or(|n| {
                isolated
                    || n != self.name
                        && !self.peers.contains_key(n)
                        && !self.view.get(n).is_some_and(|m| m.status.is_up())
            })
        });
        wanted.extend(seeds.map(|s| (*s, None)));
        // In a client-server topology only servers are ever dialled.
        let full_mesh_topology = self.role().is_none();
        let dialable = |m: &Member| full_mesh_topology || topology::serves(m);
        let unconnected_down = |m: &&Arc<Member>| {
            m.status == Status::Down && !self.peers.contains_key(&m.name) && dialable(m)
        };
        if self.is_full_mesh() {
            let down = self.view.members().filter(unconnected_down);
            wanted.extend(down.map(|m| (m.addr, Some(m.name.clone()))));
        } else if now >= self.next_heal && self.view.tombstone_count() > 0 {
            self.next_heal = now + self.config.reconnect_min;
            for _ in 0..HEAL_DIALS {
                let from = self.rng.gen::<u64>();
                let pick = self
                    .view
                    .tombstones_from(from)
                    .find(|m| m.status == Status::Down);
                if let Some(m) = pick.filter(unconnected_down) {
                    wanted.push((m.addr, Some(m.name.clone())));
                }
            }
        }
        // One dial per address; a member's name wins over a seed's None.
        wanted.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        wanted.dedup_by(|later, first| later.0 == first.0);
        // Two members usually learn of each other from the same gossip and would dial each
        // other at once, paying two handshakes for the one connection `keeps_new` keeps (the
        // smaller name's). So in a full mesh, where both want the connection, a member with a
        // smaller name that was never dialled from here is given a few ticks to dial first.
        // Redials after a lost connection go at once.
        let first_dial_wait = self.config.tick_interval * 3;
        for (addr, expect) in wanted {
            if self.dials_this_tick >= self.config.dials_per_tick {
                break;
            }
            let smaller = expect.as_ref().is_some_and(|peer| *peer < self.name);
            if smaller && self.is_full_mesh() && self.overlay.never_dialled(&addr) {
                self.overlay.defer(addr, now, now + first_dial_wait);
                continue;
            }
            if addr != me && self.overlay.may_dial(&addr, now) {
                self.dials_this_tick += 1;
                self.overlay.dial_started(addr, now, expect);
                self.outputs.push_back(Output::Dial { addr });
            }
        }
    }

    /// Closes connections the overlay no longer needs: neither side has the other among its
    /// targets, and the connection is older than `prune_grace` (time for a joiner's first
    /// exchange through its seed).
    pub(super) fn prune(&mut self, now: Instant) {
        if self.is_full_mesh() {
            return;
        }
        self.refresh_targets(now);
        let grace = self.config.prune_grace;
        let idle: Vec<String> = self
            .peers
            .iter()
            .filter(|(name, p)| !self.targets.contains(*name) && p.since + grace <= now)
            .map(|(name, _)| name.clone())
            .filter(|name| {
                !overlay::targets_of(&self.view, name, &self.config).contains(&self.name)
            })
            .collect();
        for name in idle {
            self.drop_peer(&name);
            self.outputs.push_back(Output::Disconnect { name });
        }
    }
}
