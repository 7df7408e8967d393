//! Bookkeeping of suspicions and indirect probes.
//!
//! When this node suspects a member (silence, or a failed redial) it first probes it privately:
//! it pings it directly (if connected) and asks up to k other members to ping it too. Any ack
//! clears the suspicion and nothing is gossiped, so one bad link causes no churn. If every helper
//! answers "unreachable", or nobody answers in time, the member is marked `suspect` cluster-wide;
//! if it does not refute within the suspicion timeout, it is declared `down`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Where a suspicion raised here stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Private: pings and indirect probes are out, nothing was gossiped.
    Probing,
    /// Confirmed by the probes and gossiped as `suspect`; waiting for a refutation.
    Suspected,
}

/// A suspicion this node raised and is confirming.
#[derive(Debug, Clone)]
pub struct Suspicion {
    /// Where it stands.
    pub phase: Phase,
    /// Incarnation of the suspected member when the suspicion started.
    pub incarnation: u64,
    /// Sequence number of the direct ping and of the probe requests.
    pub seq: u64,
    /// Helpers that have not answered yet.
    pub waiting: BTreeSet<String>,
    /// When the member was pinged directly, if it was: helpers answering "unreachable" end
    /// the probing early only once this ping has had `probe_timeout` to be acked.
    pub pinged: Option<Instant>,
    /// Helpers that answered "unreachable": independent confirmations (Lifeguard), each of
    /// which shortens the suspicion.
    pub nacks: usize,
    /// When the phase ends: probes time out, or the member is declared down.
    pub deadline: Instant,
}

/// A ping this node runs for another member's indirect probe.
#[derive(Debug, Clone)]
pub struct HelperPing {
    /// Who asked.
    pub requester: String,
    /// The requester's sequence number.
    pub request_seq: u64,
    /// Who is pinged.
    pub target: String,
    /// When to answer "unreachable".
    pub deadline: Instant,
}

/// What is known of suspicions raised elsewhere, to time them out.
#[derive(Debug, Clone, Copy)]
pub struct RemoteSuspicion {
    /// Incarnation that was suspected.
    pub incarnation: u64,
    /// When the member is declared down unless it refuted.
    pub deadline: Instant,
}

/// All probe state of one node.
#[derive(Debug, Default)]
pub struct Probes {
    next_seq: u64,
    /// Suspicions raised here, by member name.
    pub suspicions: BTreeMap<String, Suspicion>,
    /// Pings run for others, by ping sequence number.
    pub helper_pings: BTreeMap<u64, HelperPing>,
    /// Suspicions learnt from gossip, by member name.
    pub remote: BTreeMap<String, RemoteSuspicion>,
}

impl Probes {
    /// Pushes every deadline `by` later (this node was paused: its own silence must not count
    /// against the others).
    pub fn postpone(&mut self, by: std::time::Duration) {
        for s in self.suspicions.values_mut() {
            s.deadline += by;
        }
        for p in self.helper_pings.values_mut() {
            p.deadline += by;
        }
        for r in self.remote.values_mut() {
            r.deadline += by;
        }
    }

    /// How many helpers confirmed the suspicion of `name` raised here.
    pub fn nacks(&self, name: &str) -> usize {
        self.suspicions.get(name).map_or(0, |s| s.nacks)
    }

    /// A fresh sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Forgets everything about `name` (it refuted, left, or was declared down).
    pub fn forget(&mut self, name: &str) {
        self.suspicions.remove(name);
        self.remote.remove(name);
    }

    /// Removes and returns the helper pings that match `pred`.
    pub fn take_helper_pings(
        &mut self,
        pred: impl Fn(&HelperPing) -> bool,
    ) -> Vec<(u64, HelperPing)> {
        let due: Vec<u64> = self
            .helper_pings
            .iter()
            .filter(|(_, p)| pred(p))
            .map(|(seq, _)| *seq)
            .collect();
        due.into_iter()
            .filter_map(|seq| self.helper_pings.remove(&seq).map(|p| (seq, p)))
            .collect()
    }

    /// Names of own suspicions whose deadline passed.
    pub fn expired_suspicions(&self, now: Instant) -> Vec<(String, Phase, u64)> {
        self.suspicions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(n, s)| (n.clone(), s.phase, s.incarnation))
            .collect()
    }

    /// Names of remote suspicions whose deadline passed.
    pub fn expired_remote(&self, now: Instant) -> Vec<(String, u64)> {
        self.remote
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(n, s)| (n.clone(), s.incarnation))
            .collect()
    }
}
