//! Settings of the membership protocol, with the defaults Ensemble ships.

use std::time::Duration;

use crate::detector::DetectorConfig;
use crate::topology::Topology;

/// Timings and sizes of the membership protocol.
///
/// With the defaults, a crashed node (its connections close and redials are refused) is declared
/// down by every peer as soon as its redial is refused (see `down_on_refused`). A hung node
/// (connections stay open) is suspected by its monitors after 0.5 to 0.8 s of silence (phi
/// accrual), probed for `probe_timeout`, then held `suspect` for `suspicion_min` when the helpers
/// confirmed it unreachable (up to `suspicion_timeout` when they could not): about 1.1 to 1.6 s.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How often a heartbeat is sent on every connection.
    pub heartbeat_interval: Duration,
    /// Phi accrual detector settings (threshold, window, slack).
    pub detector: DetectorConfig,
    /// How many other members are asked to confirm a suspicion (indirect probes).
    pub probe_helpers: usize,
    /// How long a direct or indirect ping waits for its ack.
    pub probe_timeout: Duration,
    /// How long a member stays `suspect` before the node that raised the suspicion declares it
    /// `down`, unless it refutes, when no helper confirmed the suspicion (Lifeguard's maximum).
    /// Each helper that answers "unreachable" shortens the wait, down to `suspicion_min` when
    /// all `probe_helpers` did. Nodes that only heard of the suspicion wait three times as long
    /// (a fallback for when the raising node dies).
    pub suspicion_timeout: Duration,
    /// The shortest `suspect` period, when every helper confirmed the member unreachable: the
    /// time left to the member to refute.
    pub suspicion_min: Duration,
    /// Heartbeats and phi detectors run only between each member and its this many nearest
    /// ring neighbours on each side (its monitors), so idle traffic per node does not grow with
    /// the cluster; the monitors' verdict reaches everyone by gossip. 0: every connection
    /// carries heartbeats (as in Erlang's distribution). In a client-server topology every
    /// connection carries heartbeats.
    pub monitor_neighbours: usize,
    /// A connection to an up member closed, and the redial that followed within
    /// `suspicion_timeout` was refused (nothing listens at its address: connection refused or
    /// reset, never a timeout): the process is gone, so it is declared `down` at once rather
    /// than suspected. Off: the refusal only starts a suspicion, which waits out
    /// `suspicion_timeout` for a refutation.
    pub down_on_refused: bool,
    /// To how many random peers a newly learnt change is forwarded.
    pub gossip_fanout: usize,
    /// How often an anti-entropy round runs with one random peer: digests are compared, and
    /// full views are exchanged only if they differ.
    pub sync_interval: Duration,
    /// Members per anti-entropy message, so a large view never exceeds a frame.
    pub sync_chunk: usize,
    /// Up to this many other live members every node connects to every other (full mesh);
    /// beyond it, each keeps about 2 log2(n) connections (partial view on a ring).
    pub full_mesh_limit: usize,
    /// Nearest ring neighbours kept on each side in a partial view.
    pub ring_neighbours: usize,
    /// Age below which a connection the overlay does not need is kept (a joiner's seed).
    pub prune_grace: Duration,
    /// Most dials started per tick. During a join storm a joiner's view grows faster than it
    /// could connect, so by the time it dials it knows which few peers it really needs.
    pub dials_per_tick: usize,
    /// First back-off after a failed dial; doubles at each failure.
    pub reconnect_min: Duration,
    /// Longest back-off between dials to one address (down members and seeds).
    pub reconnect_max: Duration,
    /// How long tombstones (`down` and `left` members) are kept.
    pub tombstone_ttl: Duration,
    /// Granularity of timers.
    pub tick_interval: Duration,
    /// Full mesh (the default) or client-server with this node's role.
    pub topology: Topology,
    /// In a client-server topology, how many servers each client connects to.
    pub servers_per_client: usize,
}

impl Default for Config {
    fn default() -> Self {
        let heartbeat_interval = Duration::from_millis(300);
        Config {
            heartbeat_interval,
            detector: DetectorConfig {
                threshold: 8.0,
                window: 100,
                min_std_dev: Duration::from_millis(100),
                acceptable_pause: Duration::ZERO,
                expected_interval: heartbeat_interval,
            },
            probe_helpers: 3,
            probe_timeout: Duration::from_millis(300),
            suspicion_timeout: Duration::from_secs(1),
            suspicion_min: Duration::from_millis(200),
            monitor_neighbours: 2,
            down_on_refused: true,
            gossip_fanout: 3,
            sync_interval: Duration::from_secs(10),
            sync_chunk: 256,
            full_mesh_limit: 64,
            ring_neighbours: 2,
            prune_grace: Duration::from_secs(5),
            dials_per_tick: 8,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(10),
            tombstone_ttl: Duration::from_secs(24 * 3600),
            tick_interval: Duration::from_millis(100),
            topology: Topology::FullMesh,
            servers_per_client: 2,
        }
    }
}
