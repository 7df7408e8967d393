//! Which peers to keep connections to, and when to dial them.
//!
//! Up to `full_mesh_limit` live members, every node connects to every other (a full mesh: direct
//! monitoring, one hop for everything). Beyond that each node keeps a partial view: its nearest
//! ring neighbours on both sides plus "fingers" at 1/2, 1/4, 1/8... of the ring in both
//! directions, about 2 log2(n) connections, so heartbeats cost O(log n) per node and any node
//! reaches any other in O(log n) hops. The ring is the membership view ordered by a hash of the
//! names, so every node computes every node's neighbours from its own view, no extra protocol.
//!
//! Dials back off exponentially per address after failures. Configured seeds are dialled the same
//! way until one answers, so two nodes that both started alone find each other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::config::Config;
use crate::topology;
use crate::view::{position, View};

/// The members `name` keeps connections to, given the view: its client-server targets if it
/// has a role (see [`topology`]), its full-mesh or partial-view targets otherwise, and the
/// slots it reserved (see [`topology::reserved_targets`]).
pub fn targets_of(view: &View, name: &str, config: &Config) -> BTreeSet<String> {
    let member = view.get(name);
    let mut out = match member {
        Some(m) if topology::role_of(m).is_some() => {
            topology::client_server_targets(view, m, config.servers_per_client)
        }
        _ => targets(view, name, config.full_mesh_limit, config.ring_neighbours),
    };
    if let Some(m) = member {
        out.extend(topology::reserved_targets(view, m));
    }
    out
}

/// The members `me` keeps connections to in a full-mesh topology, given the view.
pub fn targets(
    view: &View,
    me: &str,
    full_mesh_limit: usize,
    ring_neighbours: usize,
) -> BTreeSet<String> {
    let up = |m: &&std::sync::Arc<crate::Member>| m.status.is_up() && m.name != me;
    if view.up_count() <= full_mesh_limit + 1 {
        return view.members().filter(up).map(|m| m.name.clone()).collect();
    }
    let pos = position(me);
    let mut out = ring_neighbours_of(view, me, ring_neighbours);
    let fingers = usize::BITS - view.up_count().leading_zeros();
    for j in 1..=fingers.min(63) {
        let d = 1u64 << (64 - j);
        if let Some(m) = view.walk(pos.wrapping_add(d), true).find(up) {
            out.insert(m.name.clone());
        }
        if let Some(m) = view
            .walk(pos.wrapping_sub(d).wrapping_add(1), false)
            .find(up)
        {
            out.insert(m.name.clone());
        }
    }
    out
}

/// The `k` nearest up members on each side of `me` on the ring. The relation is symmetric
/// between nodes that share a view: if `b` is among `a`'s, `a` is among `b`'s.
fn ring_neighbours_of(view: &View, me: &str, k: usize) -> BTreeSet<String> {
    let up = |m: &&std::sync::Arc<crate::Member>| m.status.is_up() && m.name != me;
    let pos = position(me);
    let mut out = BTreeSet::new();
    for clockwise in [true, false] {
        let start = if clockwise { pos.wrapping_add(1) } else { pos };
        out.extend(
            view.walk(start, clockwise)
                .filter(up)
                .take(k)
                .map(|m| m.name.clone()),
        );
    }
    out
}

/// The members whose heartbeats `name` sends and watches, or `None` for every connection.
///
/// Without roles, only its `Config::monitor_neighbours` nearest ring neighbours on each side
/// (in a full mesh and in a partial view alike: a partial view keeps its ring neighbours among
/// its connections): each member is watched by a few, whatever the cluster's size, and what
/// they decide reaches everyone by gossip. In a client-server topology every connection is
/// watched.
pub fn monitored_by(view: &View, name: &str, config: &Config) -> Option<BTreeSet<String>> {
    let has_role = view
        .get(name)
        .is_some_and(|m| topology::role_of(m).is_some());
    if config.monitor_neighbours == 0 || has_role {
        return None;
    }
    Some(ring_neighbours_of(view, name, config.monitor_neighbours))
}

#[derive(Debug, Clone)]
struct Target {
    failures: u32,
    next_try: Instant,
    dialing: bool,
    /// The member the dial under way is meant to reach (None for a seed).
    expect: Option<String>,
    /// Whether the last failure still says something of the member: a failure is no
    /// evidence once the member was heard of alive since (see [`Overlay::forgive`]).
    evidence: bool,
}

impl Target {
    fn new(now: Instant) -> Self {
        Target {
            failures: 0,
            next_try: now,
            dialing: false,
            expect: None,
            evidence: false,
        }
    }
}

/// Dial state of every address this node may want to reach.
#[derive(Debug, Default)]
pub struct Overlay {
    targets: BTreeMap<SocketAddr, Target>,
    seeds: BTreeSet<SocketAddr>,
    /// Names found behind seed addresses, once dialled.
    seed_names: BTreeMap<SocketAddr, String>,
}

impl Overlay {
    /// Adds a seed address.
    pub fn add_seed(&mut self, addr: SocketAddr) {
        self.seeds.insert(addr);
    }

    /// The configured seeds.
    pub fn seeds(&self) -> impl Iterator<Item = &SocketAddr> {
        self.seeds.iter()
    }

    /// The member name last found behind a seed address.
    pub fn seed_name(&self, addr: &SocketAddr) -> Option<&str> {
        self.seed_names.get(addr).map(String::as_str)
    }

    /// True if `addr` may be dialled now: no dial under way and its back-off has passed.
    pub fn may_dial(&self, addr: &SocketAddr, now: Instant) -> bool {
        match self.targets.get(addr) {
            None => true,
            Some(t) => !t.dialing && t.next_try <= now,
        }
    }

    /// True if the last dial to `addr` failed (evidence that it is unreachable from here),
    /// and its member was not heard of alive since.
    pub fn has_failed(&self, addr: &SocketAddr) -> bool {
        self.targets
            .get(addr)
            .is_some_and(|t| t.failures > 0 && t.evidence)
    }

    /// The member behind `addr` was heard of alive (a refutation, a return): the dials that
    /// failed before say nothing of it any more, and the next one may go at once. The count of
    /// failures stays, so repeated failures still back off.
    pub fn forgive(&mut self, addr: &SocketAddr, now: Instant) {
        if let Some(t) = self.targets.get_mut(addr) {
            t.evidence = false;
            t.next_try = t.next_try.min(now);
        }
    }

    /// Records that a dial to `addr` started, meant to reach member `expect` (None: a seed).
    pub fn dial_started(&mut self, addr: SocketAddr, now: Instant, expect: Option<String>) {
        let t = self.targets.entry(addr).or_insert_with(|| Target::new(now));
        t.dialing = true;
        t.expect = expect;
    }

    /// Records a failed dial and schedules the next try after an exponential, jittered back-off.
    /// Returns the member the dial was meant to reach.
    pub fn dial_failed(
        &mut self,
        addr: SocketAddr,
        now: Instant,
        min: Duration,
        max: Duration,
        rng: &mut impl Rng,
    ) -> Option<String> {
        let t = self.targets.entry(addr).or_insert_with(|| Target::new(now));
        t.dialing = false;
        t.failures = t.failures.saturating_add(1);
        t.evidence = true;
        let exp = min.saturating_mul(1u32 << t.failures.min(16).saturating_sub(1));
        let base = exp.min(max);
        // +-25% jitter so that the two halves of a split do not dial in lock-step.
        let jitter = base.mul_f64(rng.gen_range(0.75..1.25));
        t.next_try = now + jitter;
        t.expect.take()
    }

    /// Records a successful dial (or an accepted connection from the node behind `addr`).
    /// Returns the member the dial to `dialed` was meant to reach, if it was another one.
    pub fn connected(
        &mut self,
        addr: SocketAddr,
        name: &str,
        dialed: Option<SocketAddr>,
    ) -> Option<String> {
        let expected = dialed
            .and_then(|d| self.targets.remove(&d))
            .and_then(|t| t.expect);
        self.targets.remove(&addr);
        if let Some(d) = dialed.filter(|d| self.seeds.contains(d)) {
            self.seed_names.insert(d, name.to_owned());
        }
        expected.filter(|e| e != name)
    }

    /// Holds the next dial to `addr` until `at`, without counting a failure (a referral: the
    /// node there answered, but it is not one to connect to).
    pub fn defer(&mut self, addr: SocketAddr, now: Instant, at: Instant) {
        let t = self.targets.entry(addr).or_insert_with(|| Target::new(now));
        t.dialing = false;
        t.next_try = at;
    }

    /// Lets the next dial to `addr` go at once (a connection just closed: redial first).
    pub fn expedite(&mut self, addr: SocketAddr, now: Instant) {
        let t = self.targets.entry(addr).or_insert_with(|| Target::new(now));
        t.next_try = now;
    }

    /// True if nothing is known of dials to `addr`: never dialled, and no connection through
    /// it was lost.
    pub fn never_dialled(&self, addr: &SocketAddr) -> bool {
        !self.targets.contains_key(addr)
    }

    /// Forgets an address (its member was garbage-collected).
    pub fn forget(&mut self, addr: &SocketAddr) {
        if !self.seeds.contains(addr) {
            self.targets.remove(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn back_off_grows_and_is_capped() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut o = Overlay::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let t0 = Instant::now();
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        assert!(o.may_dial(&a, t0));
        o.dial_started(a, t0, Some("a".into()));
        assert!(!o.may_dial(&a, t0));
        let mut waits = vec![];
        for i in 0..8 {
            let expected = o.dial_failed(a, t0, min, max, &mut rng);
            assert_eq!(expected, (i == 0).then(|| "a".to_string()), "reported once");
            waits.push(o.targets[&a].next_try - t0);
        }
        assert!(waits[0] < Duration::from_millis(130));
        assert!(waits[3] > Duration::from_millis(500));
        assert!(waits.iter().all(|w| *w <= max.mul_f64(1.25)));
        assert!(!o.may_dial(&a, t0));
        o.expedite(a, t0);
        assert!(o.may_dial(&a, t0));
    }

    #[test]
    fn small_clusters_are_a_full_mesh_large_ones_logarithmic() {
        use crate::member::{Member, Status, Tags};
        let now = Instant::now();
        let mut view = View::new();
        let add = |view: &mut View, i: usize| {
            view.merge(
                now,
                Member {
                    name: format!("n{i}"),
                    addr: ([10, 0, (i >> 8) as u8, i as u8], 1).into(),
                    incarnation: 1,
                    status: Status::Alive,
                    tags: Tags::default(),
                },
            );
        };
        for i in 0..20 {
            add(&mut view, i);
        }
        assert_eq!(targets(&view, "n0", 64, 2).len(), 19);
        for i in 20..1000 {
            add(&mut view, i);
        }
        let degrees: Vec<usize> = (0..1000)
            .map(|i| targets(&view, &format!("n{i}"), 64, 2).len())
            .collect();
        let max = *degrees.iter().max().unwrap();
        assert!(max <= 2 * (2 + 10), "degree {max} at 1000 members");
        // Connections are kept if either side wants them: every node is somebody's target.
        let mut wanted = BTreeSet::new();
        for i in 0..1000 {
            wanted.extend(targets(&view, &format!("n{i}"), 64, 2));
        }
        assert_eq!(wanted.len(), 1000);
        // The graph is connected: a flood from n0 reaches everyone.
        let mut seen = BTreeSet::from(["n0".to_string()]);
        let mut frontier = vec!["n0".to_string()];
        while let Some(n) = frontier.pop() {
            for t in targets(&view, &n, 64, 2) {
                if seen.insert(t.clone()) {
                    frontier.push(t);
                }
            }
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn seeds_learn_their_names() {
        let mut o = Overlay::default();
        let s: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        o.add_seed(s);
        o.connected("127.0.0.1:7000".parse().unwrap(), "app1", Some(s));
        assert_eq!(o.seed_name(&s), Some("app1"));
        // A member's address now answered by another name: the member is reported back.
        let m: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        o.dial_started(m, Instant::now(), Some("old".into()));
        assert_eq!(o.connected(m, "new", Some(m)), Some("old".into()));
    }
}
