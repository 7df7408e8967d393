//! Configuration of a [`crate::Node`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::secret::Secret;

/// Largest frame accepted by default (1 MiB).
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Everything a node needs to start. Build it with [`Config::new`] and adjust the fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unique member name in the cluster.
    pub name: String,
    /// Address to listen on. Port 0 picks a free port.
    pub bind: SocketAddr,
    /// Address other members dial, if not the bound one (needed when binding 0.0.0.0).
    pub advertise: Option<SocketAddr>,
    /// Cluster name; nodes of different clusters refuse each other.
    pub cluster: String,
    /// Shared secret that authenticates members.
    pub secret: Secret,
    /// Addresses to join through; retried with back-off until one answers.
    pub seeds: Vec<SocketAddr>,
    /// Metadata announced to the other members.
    pub tags: BTreeMap<String, String>,
    /// Membership protocol timings.
    pub membership: ensemble_proto::Config,
    /// Broadcast (Plumtree) timings and limits.
    pub broadcast: ensemble_proto::broadcast::BroadcastConfig,
    /// User events kept for late receivers and repairs.
    pub event_log: usize,
    /// Largest frame sent or accepted; larger ones close the connection.
    pub max_frame_size: usize,
    /// Time allowed to connect and complete the handshake.
    pub dial_timeout: Duration,
    /// Frames queued per connection and channel before new ones are dropped.
    pub send_queue: usize,
    /// While a caller of this node waits for a peer's reply (a synchronous table write, a
    /// table operation through the leader, an acknowledged message), the node polls for the
    /// reply this long before it sleeps. A reply that comes back sooner does not pay for
    /// waking a sleeping thread, which takes tens of microseconds on a virtual machine: one
    /// caller's synchronous inserts run about 1.5 times as fast with the default (see
    /// docs/PERFORMANCE.md). It costs up to this much CPU time per reply and nothing when no
    /// caller waits; zero turns it off. Default 30 µs.
    pub busy_wait: Duration,
    /// Named messaging channels besides the default one: each has a send queue of its own per
    /// connection, served in turn, so bulk traffic on one never delays another. At most
    /// [`MAX_CHANNELS`]; every node should declare the same ones.
    pub channels: Vec<String>,
}

/// Most channels a node may declare besides the default one.
pub const MAX_CHANNELS: usize = 15;

impl Config {
    /// A configuration with Ensemble's defaults.
    pub fn new(name: impl Into<String>, bind: SocketAddr, secret: Secret) -> Self {
        Config {
            name: name.into(),
            bind,
            advertise: None,
            cluster: "default".into(),
            secret,
            seeds: Vec::new(),
            tags: BTreeMap::new(),
            membership: ensemble_proto::Config::default(),
            broadcast: ensemble_proto::broadcast::BroadcastConfig::default(),
            event_log: 4096,
            max_frame_size: DEFAULT_MAX_FRAME,
            dial_timeout: Duration::from_secs(2),
            send_queue: 4096,
            busy_wait: Duration::from_micros(30),
            channels: Vec::new(),
        }
    }
}
