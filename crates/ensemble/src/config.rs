//! Configuration of a [`crate::Node`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ensemble_proto::broadcast::{BroadcastConfig, MAX_INITIAL_PEERS};
use ensemble_proto::member::validate_name;
use ensemble_proto::topology::ROLE_TAG;
use ensemble_proto::Tags;

use crate::error::Error;
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
    /// The cluster key this node dials with (the primary key of its keyring).
    pub secret: Secret,
    /// Other cluster keys this node accepts when dialled (its keyring beyond the primary), at
    /// most [`crate::MAX_KEYS`] keys in all: during a key rotation (see docs/SECURITY.md).
    pub keys: Vec<Secret>,
    /// Addresses to join through; retried with back-off until one answers.
    pub seeds: Vec<SocketAddr>,
    /// Metadata announced to the other members.
    pub tags: BTreeMap<String, String>,
    /// Membership protocol timings.
    pub membership: ensemble_proto::Config,
    /// Broadcast (Plumtree) timings and limits.
    pub broadcast: ensemble_proto::broadcast::BroadcastConfig,
    /// Named messaging: how often an acknowledged message is sent again until its ack.
    pub messaging: ensemble_proto::messaging::MessagingConfig,
    /// Replicated tables: retransmission, write windows, join locks and deadlines, re-merge
    /// delays, record and chunk sizes (see docs/TABLES.md).
    pub tables: ensemble_proto::table::TableConfig,
    /// Singletons: settle time, takeover steps, the majority rule's heartbeats, leases and vote
    /// timeouts (see docs/SINGLETONS.md).
    pub singletons: ensemble_proto::singleton::SingletonConfig,
    /// User events kept for late receivers and repairs.
    pub event_log: usize,
    /// Largest frame sent or accepted; larger ones close the connection.
    pub max_frame_size: usize,
    /// Time allowed to connect and complete the handshake.
    pub dial_timeout: Duration,
    /// Time an accepted connection has to send its first frame (a real dialer sends it at
    /// once; a connection left open and silent is closed after this). Default 500 ms.
    pub first_frame_timeout: Duration,
    /// Most handshakes in progress at once from one source address: a flood from one address
    /// cannot take the places real peers need. Default 64.
    pub handshakes_per_address: usize,
    /// Frames queued per connection and channel before new ones are dropped.
    pub send_queue: usize,
    /// Bytes (about: the messages' payloads, keys and values) queued per connection, over
    /// every channel, before new messages are dropped and counted: a peer that stops reading
    /// cannot make this node hold without bound. At least twice `max_frame_size`. Default
    /// 64 MiB.
    pub send_queue_bytes: usize,
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
    /// A node that has had no peer this long, while every node it reached refused its key
    /// (another secret, or another cluster name), logs once at WARN that its secret is not
    /// the cluster's, naming the addresses and the fix; again only after it had a peer and
    /// the situation came back. Default 30 s.
    pub secret_mismatch_warning: Duration,
}

/// Most channels a node may declare besides the default one.
pub const MAX_CHANNELS: usize = 15;

/// The channel named messages use unless another is given.
pub const DEFAULT_CHANNEL: &str = "default";

impl Config {
    /// A configuration with Ensemble's defaults.
    pub fn new(name: impl Into<String>, bind: SocketAddr, secret: Secret) -> Self {
        Config {
            name: name.into(),
            bind,
            advertise: None,
            cluster: "default".into(),
            secret,
            keys: Vec::new(),
            seeds: Vec::new(),
            tags: BTreeMap::new(),
            membership: ensemble_proto::Config::default(),
            broadcast: ensemble_proto::broadcast::BroadcastConfig::default(),
            messaging: ensemble_proto::messaging::MessagingConfig::default(),
            tables: ensemble_proto::table::TableConfig::default(),
            singletons: ensemble_proto::singleton::SingletonConfig::default(),
            event_log: 4096,
            max_frame_size: DEFAULT_MAX_FRAME,
            dial_timeout: Duration::from_secs(2),
            first_frame_timeout: Duration::from_millis(500),
            handshakes_per_address: 64,
            send_queue: 4096,
            send_queue_bytes: 64 << 20,
            busy_wait: Duration::from_micros(30),
            channels: Vec::new(),
            secret_mismatch_warning: Duration::from_secs(30),
        }
    }

    /// Checks the configuration as [`crate::Node::start`] does, without starting anything
    /// (the first problem found is the error): for a config file checked before deployment.
    pub fn check(&self) -> Result<(), Error> {
        self.validate().map(|_| ())
    }

    /// Checks the configuration before a node starts (the first problem found is the error);
    /// returns the tags to announce.
    pub(crate) fn validate(&self) -> Result<Tags, Error> {
        validate_name(&self.name)?;
        let role = self.membership.topology.role();
        let tags = user_tags(self.tags.clone(), role)?;
        if self.cluster.is_empty() {
            return Err(Error::Config("cluster name is empty; set --cluster".into()));
        }
        if self.max_frame_size < 1024 {
            return Err(Error::Config(
                "max_frame_size must be at least 1024 bytes".into(),
            ));
        }
        // A payload travels in a frame with its id, handler name and tree root.
        if self.broadcast.max_payload + 4096 > self.max_frame_size {
            return Err(Error::Config(format!(
                "broadcast max_payload ({} bytes) must be at least 4096 bytes below \
                 max_frame_size ({} bytes); lower one or raise the other",
                self.broadcast.max_payload, self.max_frame_size
            )));
        }
        // A join chunk, or writes coalesced behind a full window, is about `chunk_bytes` and
        // one more record (each with its version and lengths: under an eighth more).
        let t = &self.tables;
        if (t.chunk_bytes + t.max_record_bytes) / 8 * 9 + 4096 > self.max_frame_size {
            return Err(Error::Config(format!(
                "tables chunk_bytes ({}) + max_record_bytes ({}), plus an eighth and 4096 bytes, \
                 must fit in max_frame_size ({} bytes); lower them or raise it",
                t.chunk_bytes, t.max_record_bytes, self.max_frame_size
            )));
        }
        check_initial_peers(&self.name, &self.broadcast)?;
        check_channels(&self.channels)?;
        if self.send_queue_bytes < 2 * self.max_frame_size {
            return Err(Error::Config(format!(
                "send_queue_bytes ({}) must be at least twice max_frame_size ({})",
                self.send_queue_bytes, self.max_frame_size
            )));
        }
        crate::Keyring::with(self.secret.clone(), self.keys.iter().cloned())?;
        Ok(tags)
    }
}

/// Channel names must be distinct, short, not `default`, and few.
fn check_channels(channels: &[String]) -> Result<(), Error> {
    if channels.len() > MAX_CHANNELS {
        return Err(Error::Config(format!(
            "{} channels declared; the limit is {}",
            channels.len(),
            MAX_CHANNELS
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in channels {
        if c.is_empty() || c.len() > 64 || c == DEFAULT_CHANNEL || !seen.insert(c) {
            return Err(Error::Config(format!(
                "channel {c:?}: channel names must be 1 to 64 bytes, distinct, and not {:?}",
                DEFAULT_CHANNEL
            )));
        }
    }
    Ok(())
}

/// Checks an application's tags: the size limits, with room for the role tag of a
/// client-server topology, which only the topology sets.
pub(crate) fn user_tags(
    tags: BTreeMap<String, String>,
    role: Option<ensemble_proto::topology::Role>,
) -> Result<Tags, Error> {
    if tags.contains_key(ensemble_proto::topology::RESERVE_TAG) {
        return Err(Error::Config(format!(
            "tag {:?} is reserved: use Node::reserve",
            ensemble_proto::topology::RESERVE_TAG
        )));
    }
    if tags.contains_key(ROLE_TAG) {
        return Err(Error::Config(format!(
            "tag {ROLE_TAG:?} is reserved: set the topology instead \
             (Config::membership.topology, or ensemble agent --topology/--role)"
        )));
    }
    let tags = Tags::new(tags)?;
    if let Some(r) = role {
        tags.clone().with(ROLE_TAG, r.as_str()).check()?;
    }
    Ok(tags)
}

/// Refuses initial eager or lazy sets over [`MAX_INITIAL_PEERS`] names, names that cannot name
/// a member, this node itself, or a peer in both sets.
fn check_initial_peers(me: &str, b: &BroadcastConfig) -> Result<(), Error> {
    for (what, set) in [
        ("initial_eager", &b.initial_eager),
        ("initial_lazy", &b.initial_lazy),
    ] {
        if set.len() > MAX_INITIAL_PEERS {
            return Err(Error::Config(format!(
                "broadcast {what} has {} names; the limit is {MAX_INITIAL_PEERS}",
                set.len()
            )));
        }
        for name in set {
            validate_name(name)?;
            if name == me {
                return Err(Error::Config(format!(
                    "broadcast {what} names this node itself ({me})"
                )));
            }
        }
    }
    if let Some(both) = b.initial_eager.intersection(&b.initial_lazy).next() {
        return Err(Error::Config(format!(
            "broadcast initial_eager and initial_lazy both name {both}"
        )));
    }
    Ok(())
}
