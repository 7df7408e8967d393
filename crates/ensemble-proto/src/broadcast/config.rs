//! Settings of the broadcast protocol, with the defaults Ensemble ships.

use std::collections::BTreeSet;
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
    /// Neighbours that get payloads of every root at once from the start, besides the ring
    /// layout (Partisan's initial eager set, `start_link/5`), until a prune of a root makes one
    /// lazy for that root.
    pub initial_eager: BTreeSet<String>,
    /// Neighbours that get only announcements of every root from the start, even where the
    /// ring layout would push to them (Partisan's initial lazy set), until a graft of a root
    /// makes one eager for that root.
    pub initial_lazy: BTreeSet<String>,
}

/// Most names in [`BroadcastConfig::initial_eager`] or [`BroadcastConfig::initial_lazy`].
pub const MAX_INITIAL_PEERS: usize = 1024;

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
            initial_eager: BTreeSet::new(),
            initial_lazy: BTreeSet::new(),
        }
    }
}
