//! Settings of the broadcast protocol, with the defaults Ensemble ships.

use std::time::Duration;

/// Timings and sizes of Plumtree broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastConfig {
    /// How often announcements (`ihave`) are sent to lazy peers, batched per peer.
    pub lazy_tick: Duration,
    /// How long a node waits, after an `ihave` for a message it lacks, for the payload to come
    /// along an eager link before it grafts (so a slightly slower eager path does not flap the
    /// tree).
    pub graft_timeout: Duration,
    /// How long a graft waits for its payload before the next announcer is asked.
    pub graft_retry: Duration,
    /// How long an `ihave` batch waits for its ack before it is announced again.
    pub ack_timeout: Duration,
    /// How often each node runs anti-entropy with one random neighbour.
    pub exchange_interval: Duration,
    /// How long an exchange may run before it is dropped.
    pub exchange_timeout: Duration,
    /// Neighbours every node announces everything it receives to, whatever the trees look
    /// like (the same ones for every root, so announcements batch well).
    pub lazy_fanout: usize,
    /// Largest payload a handler may broadcast, in bytes.
    pub max_payload: usize,
    /// Most announcements queued for one peer; beyond it the oldest are shed (counted in
    /// [`crate::broadcast::Stats::lazy_shed`]) and left to anti-entropy.
    pub max_lazy_queue: usize,
    /// Most announcements in one `ihave` batch.
    pub max_ihave_items: usize,
    /// Most messages one exchange step sends.
    pub exchange_limit: usize,
    /// Most payload bytes one exchange step sends (the rest follows at later exchanges).
    pub exchange_bytes: usize,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        BroadcastConfig {
            lazy_tick: Duration::from_secs(1),
            graft_timeout: Duration::from_millis(250),
            graft_retry: Duration::from_millis(500),
            ack_timeout: Duration::from_secs(3),
            exchange_interval: Duration::from_secs(10),
            exchange_timeout: Duration::from_secs(5),
            lazy_fanout: 3,
            max_payload: 64 * 1024,
            max_lazy_queue: 16 * 1024,
            max_ihave_items: 1024,
            exchange_limit: 1024,
            exchange_bytes: 256 * 1024,
        }
    }
}
