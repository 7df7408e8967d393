//! Faults a simulation injects: crashes and restarts, pauses (a hung process), partitions.

use std::time::Duration;

use super::{pair, Event, NodeId, Sim};
use ensemble_proto::stack::Input;

impl Sim {
    /// Kills a node: its connections close, dials to it are refused.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes[id].state = None;
        self.nodes[id].tick_at = None;
        self.close_links(id);
    }

    /// Restarts a crashed node, as a new incarnation on the same address.
    pub fn restart(&mut self, id: NodeId) {
        if self.running(id) {
            self.crash(id);
        }
        self.boot(id, None);
    }

    /// Hangs a node: it reads nothing and sends nothing; its connections stay open.
    pub fn pause(&mut self, id: NodeId) {
        self.nodes[id].paused = true;
    }

    /// Resumes a hung node: it handles what arrived meanwhile, then ticks.
    pub fn resume(&mut self, id: NodeId) {
        self.nodes[id].paused = false;
        while let Some(i) = self.nodes[id].inbox.pop_front() {
            self.feed(id, i);
        }
        self.input(id, Input::Tick);
    }

    /// Overloads a node (a starved process on a busy machine): each message to it is handled up
    /// to `reads` late, and each of its timers fires up to `timers` late (uniformly random).
    /// Zero durations end it.
    pub fn overload(&mut self, id: NodeId, reads: Duration, timers: Duration) {
        self.nodes[id].lag = reads;
        self.nodes[id].timer_lag = timers;
    }

    /// Splits the cluster: nodes of `a` and nodes of `b` can no longer talk.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for x in a {
            for y in b {
                self.blocked.insert(pair(*x, *y));
            }
        }
    }

    /// Splits the cluster as the runtime's injected partitions do: nodes of `a` and nodes of
    /// `b` can no longer talk, and the connections between them close at both ends at once.
    pub fn cut(&mut self, a: &[NodeId], b: &[NodeId]) {
        self.partition(a, b);
        for x in a {
            for y in b {
                let Some(link) = self.links.remove(&pair(*x, *y)) else {
                    continue;
                };
                self.dialers.remove(&link);
                for (at, peer) in [(*x, *y), (*y, *x)] {
                    self.schedule(Duration::ZERO, Event::Closed { at, peer, link });
                }
            }
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }
}
