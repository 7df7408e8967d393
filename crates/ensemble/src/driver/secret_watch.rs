//! Telling the operator that this node's cluster key is not the cluster's: a node that has had
//! no peer for [`crate::Config::secret_mismatch_warning`], while every node it reached refused
//! its key, says so once at WARN with the fix. It says it again only after it had a peer (or a
//! refusal of another kind) and the situation came back.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::warn;

use super::Driver;
use crate::transport::handshake::Refusal;

/// Most refusing addresses named in the warning (the others are counted).
const MAX_NAMED: usize = 8;

/// Dials refused since the node was last alone, by kind.
pub(super) struct SecretWatch {
    /// How long the node is alone before it says so.
    after: Duration,
    /// Since when the node has had no connection (None: it has one).
    alone_since: Option<Instant>,
    /// The addresses that refused this node's key since then (at most [`MAX_NAMED`]).
    refused_key: BTreeSet<SocketAddr>,
    /// Dials refused for the key since then.
    key_refusals: u64,
    /// Dials refused for another reason (version, name) since then: the key is not the only
    /// problem, or not the problem.
    other_refusals: u64,
    /// Whether the warning was given for this stretch alone.
    said: bool,
}

impl SecretWatch {
    pub(super) fn new(after: Duration) -> Self {
        SecretWatch {
            after,
            alone_since: None,
            refused_key: BTreeSet::new(),
            key_refusals: 0,
            other_refusals: 0,
            said: false,
        }
    }

    /// A dial to `addr` failed; `refusal`: why a node it reached refused it (None: it reached
    /// none, or lost the connection, which says nothing about the key).
    pub(super) fn dial_failed(&mut self, addr: SocketAddr, refusal: Option<Refusal>) {
        match refusal {
            Some(Refusal::Key) => {
                self.key_refusals += 1;
                if self.refused_key.len() < MAX_NAMED {
                    self.refused_key.insert(addr);
                }
            }
            Some(Refusal::Version | Refusal::Name) => self.other_refusals += 1,
            None => {}
        }
    }

    /// Looks at the node's situation (`alone`: it has no connection); returns the warning to
    /// log when it is due.
    pub(super) fn observe(&mut self, now: Instant, alone: bool) -> Option<String> {
        if !alone {
            *self = SecretWatch::new(self.after);
            return None;
        }
        let since = *self.alone_since.get_or_insert(now);
        if self.other_refusals > 0 {
            // Not (only) a key problem: start over, and say it again if it comes back.
            let alone_since = self.alone_since;
            *self = SecretWatch::new(self.after);
            self.alone_since = alone_since;
            return None;
        }
        if self.said || self.key_refusals == 0 || now.duration_since(since) < self.after {
            return None;
        }
        self.said = true;
        let addrs: Vec<String> = self.refused_key.iter().map(|a| a.to_string()).collect();
        Some(format!(
            "no peer accepted this node's cluster secret: every dial to {} was refused for a \
             secret mismatch ({} dials in {} s without a peer). All nodes of a cluster need \
             the same secret: set ENSEMBLE_SECRET or --secret-file to the cluster's key \
             (`ensemble keygen` makes one; in the library, Config::new's secret); a node with \
             another --cluster name is refused the same way",
            addrs.join(", "),
            self.key_refusals,
            now.duration_since(since).as_secs()
        ))
    }
}

impl Driver {
    /// Sets how long the node is alone before it says so ([`SecretWatch`]).
    pub fn with_secret_watch(mut self, after: Duration) -> Self {
        self.secret_watch = SecretWatch::new(after);
        self
    }

    /// Logs the warning of [`SecretWatch`] when it is due.
    pub(super) fn watch_secret(&mut self, now: Instant) {
        if let Some(warning) = self.secret_watch.observe(now, self.conns.is_empty()) {
            warn!("{warning}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 7946))
    }

    #[test]
    fn alone_with_only_key_refusals_warns_once_after_the_delay_and_again_after_it_cleared() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = SecretWatch::new(30 * s);
        assert_eq!(w.observe(t0, true), None, "alone, nothing refused yet");
        w.dial_failed(addr(1), Some(Refusal::Key));
        w.dial_failed(addr(2), None);
        w.dial_failed(addr(2), Some(Refusal::Key));
        assert_eq!(w.observe(t0 + 29 * s, true), None, "not yet");
        let said = w.observe(t0 + 30 * s, true).expect("due");
        assert!(said.contains("10.0.0.1:7946, 10.0.0.2:7946"), "{said}");
        assert!(
            said.contains("ENSEMBLE_SECRET") && said.contains("keygen"),
            "{said}"
        );
        w.dial_failed(addr(1), Some(Refusal::Key));
        assert_eq!(w.observe(t0 + 90 * s, true), None, "said once");
        // A peer, then alone again: said again after a new delay.
        assert_eq!(w.observe(t0 + 91 * s, false), None);
        w.dial_failed(addr(1), Some(Refusal::Key));
        assert_eq!(w.observe(t0 + 92 * s, true), None);
        assert!(w.observe(t0 + 122 * s, true).is_some(), "came back");
    }

    #[test]
    fn no_warning_with_a_peer_without_refusals_or_with_refusals_of_another_kind() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = SecretWatch::new(s);
        w.dial_failed(addr(1), Some(Refusal::Key));
        assert_eq!(w.observe(t0 + 5 * s, false), None, "it has a peer");
        assert_eq!(w.observe(t0 + 6 * s, true), None);
        w.dial_failed(addr(3), None);
        assert_eq!(
            w.observe(t0 + 60 * s, true),
            None,
            "nothing reached refused"
        );
        w.dial_failed(addr(1), Some(Refusal::Key));
        w.dial_failed(addr(2), Some(Refusal::Name));
        assert_eq!(w.observe(t0 + 61 * s, true), None, "not only the key");
        w.dial_failed(addr(1), Some(Refusal::Key));
        assert!(w.observe(t0 + 62 * s, true).is_some(), "only the key again");
    }

    #[test]
    fn the_warning_names_a_bounded_number_of_addresses() {
        let t0 = Instant::now();
        let mut w = SecretWatch::new(Duration::ZERO);
        w.observe(t0, true);
        for i in 0..100 {
            w.dial_failed(addr(i), Some(Refusal::Key));
        }
        let said = w.observe(t0, true).unwrap();
        assert_eq!(said.matches(":7946").count(), MAX_NAMED, "{said}");
        assert!(said.contains("100 dials"), "{said}");
    }
}
