//! The JSON shapes of the operator's routes: join, leave, force-leave, tags and info.

use std::collections::BTreeMap;

use ensemble::proto::singleton::Role;
use ensemble::proto::wire::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use ensemble::{Config, Topology};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most addresses one `POST /v1/join` takes.
pub const MAX_JOIN_ADDRS: usize = 64;

/// `POST /v1/join` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JoinBody {
    /// HOST:PORT of members of the cluster to join, at most [`MAX_JOIN_ADDRS`].
    pub addrs: Vec<String>,
}

/// `POST /v1/join`: how each address went, in the order given.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JoinView {
    /// Addresses joined through.
    pub joined: usize,
    pub results: Vec<JoinResult>,
}

/// One address of a join.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JoinResult {
    pub addr: String,
    /// The handshake succeeded.
    pub ok: bool,
    /// The name of the member that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `POST /v1/leave` and `POST /v1/members/{node}/force-leave`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LeaveView {
    pub ok: bool,
    /// The member leaving (the agent's own name for `/v1/leave`), or removed.
    pub node: String,
}

/// `PUT /v1/tags` body: tags to add or change (the others stay).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SetTagsBody {
    pub tags: BTreeMap<String, String>,
}

/// `DELETE /v1/tags` body: tag keys to remove.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeleteTagsBody {
    pub keys: Vec<String>,
}

/// The answer of the tags routes: the node's tags after the change (Ensemble's own
/// `ensemble.*` tags left out), and where they were saved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TagsView {
    pub tags: BTreeMap<String, String>,
    /// The tags file rewritten (`--tags-file`), if the agent has one.
    #[serde(default)]
    pub tags_file: Option<String>,
}

/// `GET /v1/info`: the agent at a glance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentInfoView {
    pub name: String,
    pub version: String,
    pub protocol: ProtocolView,
    pub build: BuildView,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Members this agent knows, by status (`alive`, `suspect`, `down`, `left`; zeros included).
    pub members: BTreeMap<String, usize>,
    /// Members this node holds a connection to.
    pub connections: usize,
    /// The replicated tables it hosts (Ensemble's own left out).
    pub tables: Vec<String>,
    pub singletons: Vec<SingletonBrief>,
    pub discovery: DiscoveryBrief,
    pub settings: SettingsView,
}

/// The wire protocol versions this build speaks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProtocolView {
    /// The newest version, spoken when the peer speaks it too.
    pub version: u16,
    /// The oldest version still accepted.
    pub min: u16,
}

impl ProtocolView {
    pub fn current() -> ProtocolView {
        ProtocolView {
            version: PROTOCOL_VERSION,
            min: MIN_PROTOCOL_VERSION,
        }
    }
}

/// What was built.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BuildView {
    /// The crate version.
    pub version: String,
    /// `release` or `debug`.
    pub profile: String,
    /// Architecture and operating system.
    pub target: String,
}

impl BuildView {
    pub fn current() -> BuildView {
        BuildView {
            version: env!("CARGO_PKG_VERSION").into(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        }
    }
}

/// A singleton as `GET /v1/info` shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SingletonBrief {
    pub name: String,
    /// This node's role: `leader`, `candidate` or `follower`.
    pub role: Role,
    pub leader: Option<String>,
    pub epoch: u64,
}

/// Discovery as `GET /v1/info` shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryBrief {
    pub backend: String,
    /// `initial` or `regular`.
    pub phase: String,
    pub ready: bool,
}

/// The agent's key settings: addresses and timings, never a secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettingsView {
    pub cluster: String,
    pub bind: String,
    pub advertise: Option<String>,
    pub http: String,
    /// `full-mesh`, `client-server (server)` or `client-server (client)`.
    pub topology: String,
    pub discovery_backend: String,
    pub heartbeat_interval_ms: u64,
    pub phi_threshold: f64,
    pub acceptable_pause_ms: u64,
    pub probe_timeout_ms: u64,
    pub probe_helpers: usize,
    pub suspicion_timeout_ms: u64,
    pub gossip_fanout: usize,
    pub sync_interval_ms: u64,
    pub reconnect_max_ms: u64,
    pub tombstone_ttl_s: u64,
    pub channels: Vec<String>,
}

impl SettingsView {
    /// The settings of `config`, with the discovery backend's name and the API's address.
    pub fn of(config: &Config, backend: &str, http: &str) -> SettingsView {
        let m = &config.membership;
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        SettingsView {
            cluster: config.cluster.clone(),
            bind: config.bind.to_string(),
            advertise: config.advertise.map(|a| a.to_string()),
            http: http.to_owned(),
            topology: match m.topology {
                Topology::FullMesh => "full-mesh".into(),
                Topology::ClientServer(r) => format!("client-server ({})", r.as_str()),
            },
            discovery_backend: backend.to_owned(),
            heartbeat_interval_ms: ms(m.heartbeat_interval),
            phi_threshold: m.detector.threshold,
            acceptable_pause_ms: ms(m.detector.acceptable_pause),
            probe_timeout_ms: ms(m.probe_timeout),
            probe_helpers: m.probe_helpers,
            suspicion_timeout_ms: ms(m.suspicion_timeout),
            gossip_fanout: m.gossip_fanout,
            sync_interval_ms: ms(m.sync_interval),
            reconnect_max_ms: ms(m.reconnect_max),
            tombstone_ttl_s: m.tombstone_ttl.as_secs(),
            channels: config.channels.clone(),
        }
    }
}

/// The internal query every agent answers with its own view of the cluster summed up
/// ([`MemberViewSummary`] as JSON): what `GET /v1/members/{node}/view` asks that member.
pub const VIEW_QUERY: &str = "ensemble.view";

/// Most members a [`MemberViewSummary`] names (the rest are counted), so that it fits in a
/// query's response.
pub const MAX_VIEW_LISTED: usize = 100;

/// `GET /v1/members/{node}/view`: how one member sees the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberViewSummary {
    /// The member whose view this is.
    pub node: String,
    /// How many members it holds with each status (`alive`, `suspect`, `down`, `left`), itself
    /// included.
    pub counts: BTreeMap<String, usize>,
    /// The members it does not hold alive, by name, with their status (at most 100).
    pub not_alive: BTreeMap<String, String>,
    /// True if more members than those listed are not alive there.
    pub truncated: bool,
}

impl MemberViewSummary {
    /// The summary of `members`, the view of `node`.
    pub fn of(node: &str, members: &[ensemble::Member]) -> Self {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut not_alive = BTreeMap::new();
        let mut truncated = false;
        for m in members {
            let status = m.status.to_string();
            *counts.entry(status.clone()).or_default() += 1;
            if m.status != ensemble::Status::Alive {
                if not_alive.len() < MAX_VIEW_LISTED {
                    not_alive.insert(m.name.clone(), status);
                } else {
                    truncated = true;
                }
            }
        }
        MemberViewSummary {
            node: node.to_string(),
            counts,
            not_alive,
            truncated,
        }
    }
}
