//! The HTTP API's JSON shapes, shared by the agent's routes (`http/`) and the client commands
//! (`commands/`, `client.rs`): members, health, events, messages, partitions, tables, the
//! tracker and error answers, with their conversions from the library's types; the operator's
//! routes (join, leave, tags, info) in `views/operator.rs`; queries in `views/query.rs`.
//!
//! Both sides import this module; it imports neither.

use std::collections::BTreeMap;

use ensemble::{EventKind, Member, MemberEvent, Mode, Node, NodeStatus, UserEvent};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod history;
mod operator;
mod query;
mod stream;
pub use history::*;
pub use operator::*;
pub use query::*;
pub use stream::*;

/// Default address of the HTTP API (where the agent listens and the commands ask).
pub const DEFAULT_HTTP: &str = "127.0.0.1:8946";

/// Every error answer of the API: a message for people and a stable code for programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorView {
    /// What went wrong, in words.
    pub error: String,
    /// A stable snake_case code (the list is `Code` in `http/error.rs`); empty from an agent that sent none.
    #[serde(default)]
    pub code: String,
}

/// The answer of routes that only acknowledge (`POST /v1/events`, `POST /v1/send`, the table
/// writes, `DELETE /v1/partitions/{reference}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OkView {
    /// Always true.
    pub ok: bool,
}

impl OkView {
    pub const OK: OkView = OkView { ok: true };
}

/// `GET /v1/ready` (the 503 adds `error` and `code` to the same fields).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadyView {
    /// Discovery is ready: every discovered node is joined or failed.
    pub ready: bool,
    /// `ok`, the error of the last `get_nodes`, or null before the first one ended.
    pub last_get_nodes_result: Option<String>,
    /// Member names of discovered nodes that are up.
    pub connected_nodes: Vec<String>,
    /// Discovered addresses that failed their probe or went down, with the reason.
    pub unavailable_nodes: BTreeMap<String, String>,
}

/// A member as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub name: String,
    pub addr: String,
    pub status: String,
    pub incarnation: u64,
    pub tags: BTreeMap<String, String>,
    /// The member's place on the hash ring (`0` to `2^64 - 1`, a function of its name alone),
    /// as a decimal string: JSON numbers lose precision past `2^53`.
    #[serde(default)]
    pub ring_position: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        MemberView {
            name: m.name.clone(),
            addr: m.addr.to_string(),
            status: m.status.to_string(),
            incarnation: m.incarnation,
            tags: m.tags.as_map().clone(),
            ring_position: ensemble::proto::view::position(&m.name).to_string(),
        }
    }
}

/// `GET /v1/health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub name: String,
    pub alive_members: usize,
    /// Injected partitions in force (fault injection).
    #[serde(default)]
    pub partitions: Vec<PartitionView>,
}

/// A partition as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartitionView {
    /// Reference to resolve it with.
    #[serde(rename = "ref")]
    pub reference: u64,
    /// Members cut off from this agent.
    pub nodes: Vec<String>,
}

impl PartitionView {
    /// The partitions in force at `node`.
    pub fn all(node: &Node) -> Vec<PartitionView> {
        node.partitions()
            .into_iter()
            .map(|(r, nodes)| PartitionView {
                reference: r.0,
                nodes: nodes.into_iter().collect(),
            })
            .collect()
    }
}

/// `POST /v1/partitions`: the partition injected.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartitionRefView {
    /// Reference to resolve it with (`DELETE /v1/partitions/{reference}`).
    #[serde(rename = "ref")]
    pub reference: u64,
}

/// `POST /v1/partitions` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Inject {
    pub nodes: Vec<String>,
    /// Resolve by itself after this many milliseconds (absent: until resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// One event, as `GET /v1/events` streams it (one JSON object per line) and as event
/// handlers get it on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventView {
    /// A user event.
    User {
        name: String,
        /// The payload as text (invalid UTF-8 replaced; see `payload_hex`).
        payload: String,
        /// The payload in hex, when it is not valid UTF-8.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload_hex: Option<String>,
        origin: String,
        seq: u64,
        ltime: u64,
    },
    /// A membership change of another member.
    Member {
        /// up, down, left or updated.
        kind: String,
        member: MemberView,
        /// For a `down`: milliseconds from the first sign of the member's failure this agent
        /// saw (its connection lost, or its suspicion) to its being declared down; absent if
        /// this agent saw no sign first (it learnt the failure from another member).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detection_ms: Option<u64>,
    },
}

impl EventView {
    /// The name event handlers see in `ENSEMBLE_EVENT`.
    pub fn kind(&self) -> String {
        match self {
            EventView::User { .. } => "user".into(),
            EventView::Member { kind, .. } => format!("member-{kind}"),
        }
    }

    /// Membership and user events of `node`, merged, from now on.
    pub fn stream(node: &Node) -> impl Stream<Item = EventView> + Send + Unpin + 'static {
        let members = node.events().map(|e| EventView::from(&e));
        let users = node.user_events().map(|e| EventView::from(&e));
        futures::stream::select(members, users)
    }
}

impl From<&UserEvent> for EventView {
    fn from(e: &UserEvent) -> Self {
        let text = std::str::from_utf8(&e.payload);
        EventView::User {
            name: e.name.clone(),
            payload: String::from_utf8_lossy(&e.payload).into_owned(),
            payload_hex: text.is_err().then(|| hex::encode(&e.payload)),
            origin: e.origin.clone(),
            seq: e.seq,
            ltime: e.ltime,
        }
    }
}

impl From<&MemberEvent> for EventView {
    fn from(e: &MemberEvent) -> Self {
        let kind = match e.kind {
            EventKind::Up => "up",
            EventKind::Down => "down",
            EventKind::Left => "left",
            EventKind::Updated => "updated",
        };
        EventView::Member {
            kind: kind.into(),
            member: MemberView::from(&*e.member),
            detection_ms: e
                .detection
                .map(|d| d.as_millis().try_into().unwrap_or(u64::MAX)),
        }
    }
}

/// `POST /v1/events` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SendEvent {
    pub name: String,
    #[serde(default)]
    pub payload: String,
}

/// `POST /v1/send` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SendBody {
    pub node: String,
    pub name: String,
    #[serde(default)]
    pub payload: String,
    /// Wait for the handler's acknowledgement (retransmitting until then).
    #[serde(default)]
    pub ack: bool,
    /// How long to wait for the acknowledgement.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The channel to send on (declared with the agent's `--channel`).
    #[serde(default = "default_channel")]
    pub channel: String,
}

fn default_channel() -> String {
    ensemble::DEFAULT_CHANNEL.into()
}

fn default_timeout_ms() -> u64 {
    5000
}

/// A table as `GET /v1/tables/{table}` shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InfoView {
    pub name: String,
    pub members: Vec<String>,
    pub leader: String,
    pub size: usize,
    pub memory: usize,
    pub join_id: String,
    /// An order-independent digest of the replica's live records and their versions (16 hex
    /// digits): replicas with equal digests hold the same records.
    #[serde(default)]
    pub digest: String,
    pub paused: bool,
    /// Replicas that went down, oldest first.
    pub down_history: Vec<String>,
    /// Joins of this table the agent coordinated (its replica joining another segment, or a
    /// re-merge it ran).
    #[serde(default)]
    pub joins: u64,
    /// Keys those joins found with different values on the two sides, settled by the conflict
    /// handler (or the later write).
    #[serde(default)]
    pub conflicts_resolved: u64,
    /// The last of those joins.
    #[serde(default)]
    pub last_join: Option<LastJoinView>,
}

/// The last join of a table an agent coordinated.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LastJoinView {
    /// The node whose segment it joined.
    pub with: String,
    /// How long ago it completed, in milliseconds.
    pub ago_ms: u64,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
}

/// A record as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RecordView {
    pub key: String,
    pub value: String,
}

/// `PUT /v1/tables/{table}/records/{key}` body.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct PutBody {
    pub value: String,
    /// Insert only if no replica holds the key, decided by the table's leader (`insert_new`):
    /// the answer says whether this put inserted it and the value the key holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub if_absent: bool,
    /// Insert through the table's leader, so that such puts are applied in one order by
    /// every replica (`insert_serial`). Not with `if_absent`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub serial: bool,
}

/// `PUT /v1/tables/{table}/records/{key}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PutView {
    /// Always true.
    pub ok: bool,
    /// With `if_absent`: whether this put inserted the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inserted: Option<bool>,
    /// With `if_absent`: the value the key holds now (this put's, or the one it found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `GET /v1/tracker`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrackerView {
    /// `standalone` or `clustered`.
    pub mode: Mode,
    pub nodes: Vec<RowView>,
}

/// One node ever seen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RowView {
    /// The service that owns the row: `ensemble.tracker`.
    #[serde(default)]
    pub module: String,
    pub node: String,
    pub status: NodeStatus,
    /// Milliseconds since the Unix epoch.
    pub last_change: u64,
    pub incarnation: u64,
}

/// `POST /v1/keys`: a key operation on every live node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeysBody {
    /// `install`, `use` or `remove`.
    pub op: String,
    /// The key.
    pub key: String,
}

/// The answer of `GET /v1/keys` and `POST /v1/keys` (the library's `KeyResponse`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeysView {
    /// Live nodes asked, the answering agent's included.
    pub nodes: usize,
    /// Nodes where it succeeded.
    pub succeeded: Vec<String>,
    /// Nodes where it failed, with why.
    pub failed: BTreeMap<String, String>,
    /// Per key fingerprint: how many nodes hold it and how many dial with it.
    pub keys: BTreeMap<String, KeyUseView>,
}

/// How many nodes hold a key, and how many dial with it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyUseView {
    /// Nodes that hold the key.
    pub installed: usize,
    /// Nodes whose primary key it is.
    pub primary: usize,
}
