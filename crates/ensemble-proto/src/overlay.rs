//! Which addresses to dial, and when: the full-mesh overlay's dial bookkeeping.
//!
//! Every member that is up (and every member marked down, to heal partitions) is dialled when not
//! connected, with exponential back-off per address after failures. Configured seeds are dialled
//! the same way until one of them answers, so two nodes that both started alone find each other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

#[derive(Debug, Clone)]
struct Target {
    failures: u32,
    next_try: Instant,
    dialing: bool,
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

    /// Records that a dial to `addr` started.
    pub fn dial_started(&mut self, addr: SocketAddr, now: Instant) {
        self.targets
            .entry(addr)
            .or_insert(Target {
                failures: 0,
                next_try: now,
                dialing: false,
            })
            .dialing = true;
    }

    /// Records a failed dial and schedules the next try after an exponential, jittered back-off.
    pub fn dial_failed(
        &mut self,
        addr: SocketAddr,
        now: Instant,
        min: Duration,
        max: Duration,
        rng: &mut impl Rng,
    ) {
        let t = self.targets.entry(addr).or_insert(Target {
            failures: 0,
            next_try: now,
            dialing: false,
        });
        t.dialing = false;
        t.failures = t.failures.saturating_add(1);
        let exp = min.saturating_mul(1u32 << t.failures.min(16).saturating_sub(1));
        let base = exp.min(max);
        // +-25% jitter so that the two halves of a split do not dial in lock-step.
        let jitter = base.mul_f64(rng.gen_range(0.75..1.25));
        t.next_try = now + jitter;
    }

    /// Records a successful dial (or an accepted connection from the node behind `addr`).
    pub fn connected(&mut self, addr: SocketAddr, name: &str, dialed: Option<SocketAddr>) {
        self.targets.remove(&addr);
        if let Some(d) = dialed {
            self.targets.remove(&d);
            if self.seeds.contains(&d) {
                self.seed_names.insert(d, name.to_owned());
            }
        }
    }

    /// Lets the next dial to `addr` go at once (a connection just closed: redial first).
    pub fn expedite(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(t) = self.targets.get_mut(&addr) {
            t.next_try = now;
        }
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
        o.dial_started(a, t0);
        assert!(!o.may_dial(&a, t0));
        let mut waits = vec![];
        for _ in 0..8 {
            o.dial_failed(a, t0, min, max, &mut rng);
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
    fn seeds_learn_their_names() {
        let mut o = Overlay::default();
        let s: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        o.add_seed(s);
        o.connected("127.0.0.1:7000".parse().unwrap(), "app1", Some(s));
        assert_eq!(o.seed_name(&s), Some("app1"));
    }
}
