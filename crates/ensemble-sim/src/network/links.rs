//! Connections between simulated nodes: dials that complete (and which connection two nodes
//! that dialled each other keep, by the runtime's rule), closes, and what is still in flight
//! on a closed connection.

use std::net::SocketAddr;

use ensemble_proto::membership::{keeps_new, Connection};
use ensemble_proto::stack::Input;

use super::{pair, Event, NodeId, Sim};

impl Sim {
    /// A dial by `from` to `addr` (the node `to`, if one has that address) completes.
    pub(super) fn dial_done(&mut self, from: NodeId, addr: SocketAddr, to: Option<NodeId>) {
        if !self.running(from) {
            return;
        }
        let ok = to.filter(|t| {
            self.running(*t) && !self.nodes[*t].paused && !self.blocked.contains(&pair(from, *t))
        });
        let Some(t) = ok else {
            // Refused at once (nothing listens) or timed out (hung, cut off).
            let no_listener = to.is_none_or(|t| !self.running(t));
            return self.input(from, Input::DialFailed { addr, no_listener });
        };
        self.handshakes += 1;
        let (fi, ti) = (self.info(from), self.info(t));
        let keep = match self.links.get(&pair(from, t)) {
            None => true,
            // A second connection between the two (they dialled each other at once):
            // both ends keep the one the runtime's rule picks, without talking.
            Some(old) => {
                let old_dialer = &self.nodes[self.dialers[old]].name;
                let old = Connection {
                    dialer: old_dialer,
                    peer: &ti,
                };
                let new = Connection {
                    dialer: &fi.name,
                    peer: &ti,
                };
                keeps_new(&old, &new)
            }
        };
        if keep {
            self.next_link += 1;
            let link = self.next_link;
            if let Some(old) = self.links.insert(pair(from, t), link) {
                self.replaced(from, t, old);
            }
            self.dialers.insert(link, from);
        }
        // Both ends hear of the handshake, as in the runtime; a connection that loses
        // is closed, and the dial still completes.
        self.input(
            from,
            Input::Connected {
                peer: ti,
                dialed: Some(addr),
            },
        );
        self.input(
            t,
            Input::Connected {
                peer: fi,
                dialed: None,
            },
        );
    }

    /// `from` closes connection `link` to `to`. Like the runtime, a node that closes a
    /// connection writes what it queued first: messages in flight still arrive, then the close.
    pub(super) fn drain_link(&mut self, from: NodeId, to: NodeId, link: u64) {
        self.dialers.remove(&link);
        self.draining.insert(link);
        let last = self.fifo.get(&(from, to)).copied().unwrap_or(self.now);
        let d = self
            .config
            .latency
            .max(last.saturating_duration_since(self.now));
        self.schedule(
            d,
            Event::Closed {
                at: to,
                peer: from,
                link,
            },
        );
    }

    /// Connection `old` between `a` and `b` lost to a newer one: both ends drop it, what is in
    /// flight on it still arrives, and its close is ignored (a newer connection is open).
    fn replaced(&mut self, a: NodeId, b: NodeId, old: u64) {
        self.drain_link(a, b, old);
    }

    /// Closes every connection of `id` (after one latency at the peers).
    pub(super) fn close_links(&mut self, id: NodeId) {
        let mine: Vec<((NodeId, NodeId), u64)> = self
            .links
            .iter()
            .filter(|((a, b), _)| *a == id || *b == id)
            .map(|(k, v)| (*k, *v))
            .collect();
        for ((a, b), link) in mine {
            self.links.remove(&(a, b));
            self.dialers.remove(&link);
            let peer = if a == id { b } else { a };
            let d = self.config.latency;
            self.schedule(
                d,
                Event::Closed {
                    at: peer,
                    peer: id,
                    link,
                },
            );
        }
    }
}
