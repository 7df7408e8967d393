//! The contract between the public API (`api/`) and the driver (`driver/`): what the driver's
//! inbox takes ([`DriverMsg`]: the transport's events, imported from below, and the public
//! API's [`Command`]s, each with the channel its answer goes back on), and the values both
//! sides hand each other ([`Envelope`], [`BroadcastStatus`], [`SingletonStatus`], table change
//! batches and hooks). It imports nothing from either side, so neither imports the other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::broadcast::{BroadcastError, ExchangeInfo, ExchangeSelector, Handler, Stats};
use ensemble_proto::singleton::{SingletonError, SingletonEvent, SingletonSpec};
use ensemble_proto::table::{
    self, LeaderOp, Reply, Store, TableError, TableInfo, TableSpec, WriteOp,
};
use ensemble_proto::Tags;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::Error;
use crate::transport::TransportEvent;

/// Messages to the driver.
pub(crate) enum DriverMsg {
    /// What the transport reports: connections up and down, frames read, failed dials.
    Transport(TransportEvent),
    /// A call of the public API.
    Command(Command),
}

/// The connection tasks send their events straight into the driver's inbox.
impl From<TransportEvent> for DriverMsg {
    #[inline]
    fn from(e: TransportEvent) -> Self {
        DriverMsg::Transport(e)
    }
}

/// Calls of the public API, by capability.
pub(crate) enum Command {
    /// Membership.
    Membership(MembershipCommand),
    /// Fault injection.
    Faults(FaultCommand),
    /// Broadcast.
    Broadcast(BroadcastCommand),
    /// Named messaging.
    Messaging(MessagingCommand),
    /// Replicated tables.
    Table(TableCommand),
    /// Singletons.
    Singleton(SingletonCommand),
    /// The keyrings of every node.
    Keys(KeyCommand),
    /// Queries.
    Query(QueryCommand),
}

/// Query commands of the public API.
pub(crate) enum QueryCommand {
    /// Start a query; its events go to `events` until `Done`.
    Start {
        name: String,
        payload: Bytes,
        filter: ensemble_proto::query::QueryFilter,
        timeout: Option<Duration>,
        want_ack: bool,
        events: mpsc::UnboundedSender<ensemble_proto::query::QueryEvent>,
        reply: oneshot::Sender<Result<(), ensemble_proto::query::QueryError>>,
    },
    /// Hand queries named `name` to `handler` (refused if the name has one).
    RegisterHandler {
        name: String,
        handler: mpsc::Sender<ensemble_proto::query::Incoming>,
        reply: oneshot::Sender<bool>,
    },
    /// A local handler's answer to a query.
    Respond {
        query: ensemble_proto::query::QueryId,
        payload: Bytes,
    },
}

/// A key operation on every live node of the cluster (this one included).
pub(crate) struct KeyCommand {
    pub op: KeyOp,
    /// How long to wait for the other nodes' answers.
    pub timeout: Duration,
    pub reply: oneshot::Sender<KeyResponse>,
}

/// What a key operation does at each node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) enum KeyOp {
    /// Nothing: each node tells its keys.
    List,
    /// Accept this key too.
    Install(Vec<u8>),
    /// Dial with this key (installed already).
    Use(Vec<u8>),
    /// Stop accepting this key (not the primary).
    Remove(Vec<u8>),
}

/// The outcome of a key operation across the cluster ([`crate::Node::install_key`] and the
/// others), like `serf keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyResponse {
    /// The live nodes asked, this one included.
    pub nodes: usize,
    /// The nodes where it succeeded.
    pub succeeded: Vec<String>,
    /// The nodes where it failed, with why (a node that did not answer in time too).
    pub failed: std::collections::BTreeMap<String, String>,
    /// Per key fingerprint, over the nodes that answered: how many hold the key and how many
    /// dial with it, after the operation.
    pub keys: std::collections::BTreeMap<String, KeyUse>,
}

/// How many nodes hold one key, and how many of those dial with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyUse {
    /// Nodes that hold the key.
    pub installed: usize,
    /// Nodes whose primary key it is.
    pub primary: usize,
}

/// Membership commands of the public API.
pub(crate) enum MembershipCommand {
    Join {
        addr: SocketAddr,
        reply: oneshot::Sender<Result<String, Error>>,
    },
    SetTags {
        tags: Tags,
        reply: oneshot::Sender<()>,
    },
    Leave {
        reply: oneshot::Sender<()>,
    },
    Remove {
        name: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Fault injection commands of the public API.
pub(crate) enum FaultCommand {
    InjectPartition {
        names: BTreeSet<String>,
        /// Resolved by itself after this long (None: until resolved).
        ttl: Option<std::time::Duration>,
        reply: oneshot::Sender<u64>,
    },
    ResolvePartition {
        id: u64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// Broadcast commands of the public API.
pub(crate) enum BroadcastCommand {
    Broadcast {
        handler: String,
        msg: Bytes,
        reply: oneshot::Sender<Result<Bytes, BroadcastError>>,
    },
    Register {
        name: String,
        handler: Box<dyn Handler>,
        reply: oneshot::Sender<Result<(), BroadcastError>>,
    },
    Status {
        root: Option<String>,
        reply: oneshot::Sender<BroadcastStatus>,
    },
    CancelExchanges {
        selector: ExchangeSelector,
        reply: oneshot::Sender<usize>,
    },
    /// One member's peers for a root and its exchanges (asked over the mesh if remote).
    Peers {
        node: String,
        root: Option<String>,
        timeout: Duration,
        reply: oneshot::Sender<Result<BroadcastPeers, Error>>,
    },
    /// Custom exchanges of `handler` go to `tx` from now on.
    RunExchanges {
        handler: String,
        tx: mpsc::Sender<ExchangeRequest>,
        reply: oneshot::Sender<()>,
    },
    /// A custom exchange finished with these items.
    ExchangeDone {
        session: u64,
        items: Vec<(Bytes, Bytes)>,
        reply: oneshot::Sender<bool>,
    },
    /// Every live member's peers for `root`.
    Tree {
        root: String,
        timeout: Duration,
        reply: oneshot::Sender<BroadcastTree>,
    },
}

/// Named messaging commands of the public API.
pub(crate) enum MessagingCommand {
    RegisterName {
        name: String,
        tx: mpsc::Sender<Envelope>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    UnregisterName {
        name: String,
    },
    /// A cast already checked by the caller: no answer.
    Cast(Outgoing),
    SendDirect {
        out: Outgoing,
        ack: Option<Duration>,
        /// Answered at once with the receiver of the final result.
        reply: oneshot::Sender<oneshot::Receiver<Result<(), Error>>>,
    },
}

/// A named message to send.
pub(crate) struct Outgoing {
    pub to: String,
    pub name: String,
    pub payload: Bytes,
    /// None: the default channel.
    pub channel: Option<String>,
}

/// A change batch of one table, for subscribers.
pub(crate) type ChangeBatch = Arc<Vec<table::Change>>;

/// Called with the name of a replica that went down.
pub(crate) type DownHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What a handle needs of a created table.
pub(crate) struct Opened {
    pub store: Arc<RwLock<Store>>,
    pub changes: broadcast::Sender<ChangeBatch>,
}

/// Where a table operation's outcome goes.
pub(crate) type Done = oneshot::Sender<Result<Reply, TableError>>;

/// Table commands of the public API.
pub(crate) enum TableCommand {
    Create {
        name: String,
        spec: TableSpec,
        down: Option<DownHook>,
        reply: oneshot::Sender<Result<Opened, TableError>>,
    },
    Write {
        table: String,
        ops: Vec<WriteOp>,
        reply: Done,
    },
    Leader {
        table: String,
        op: LeaderOp,
        timeout: Duration,
        reply: Done,
    },
    Join {
        table: String,
        node: String,
        timeout: Duration,
        reply: Done,
    },
    PingAll {
        table: String,
        timeout: Duration,
        reply: Done,
    },
    Pause {
        table: String,
        id: u64,
        reply: oneshot::Sender<Result<(), TableError>>,
    },
    Unpause {
        table: String,
        id: u64,
    },
    Info {
        table: String,
        reply: oneshot::Sender<Option<TableInfo>>,
    },
    List {
        reply: oneshot::Sender<Vec<String>>,
    },
}

/// Singleton commands of the public API.
pub(crate) enum SingletonCommand {
    Register {
        name: String,
        spec: SingletonSpec,
        task: SingletonTask,
        reply: oneshot::Sender<Result<(), SingletonError>>,
    },
    Unregister {
        name: String,
        reply: oneshot::Sender<()>,
    },
    List {
        reply: oneshot::Sender<Vec<SingletonStatus>>,
    },
}

/// The task that runs a singleton's handler, as the driver reaches it.
pub(crate) struct SingletonTask {
    /// Where the activator's events go.
    pub events: mpsc::UnboundedSender<SingletonEvent>,
    /// What the handler exposes of its state ([`crate::Singleton::mod_state`]), after its
    /// latest event.
    pub mod_state: watch::Receiver<Option<serde_json::Value>>,
}

/// Messages a mailbox holds before new ones are dropped (with a warning in the log).
pub const MAILBOX_CAPACITY: usize = 4096;

/// A message for a named handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The member that sent it.
    pub from: String,
    /// The name it was sent to.
    pub name: String,
    /// The payload.
    pub payload: Bytes,
}

/// A snapshot of a node's broadcast state.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BroadcastStatus {
    /// Live members other than this node.
    pub members: Vec<String>,
    /// Members this node has a connection to (the peers trees are built from).
    pub neighbours: Vec<String>,
    /// Registered handlers.
    pub handlers: Vec<String>,
    /// The tree root the peers below are for.
    pub root: String,
    /// Eager peers for `root`.
    pub eager: Vec<String>,
    /// Lazy peers for `root`.
    pub lazy: Vec<String>,
    /// Roots of the trees this node keeps.
    pub roots: Vec<String>,
    /// Exchanges (anti-entropy) running.
    pub exchanges: Vec<ExchangeInfo>,
    /// Counters since start.
    pub stats: Stats,
    /// Announcement frames shed because a peer's send queue was filling.
    pub shed_frames: u64,
    /// Frames of any protocol dropped because a peer's send queue was full.
    pub dropped_frames: u64,
    /// Connections to peers that closed since start, for any reason (a peer gone, a
    /// duplicate connection replaced, a partition, a frame a peer refused).
    pub connections_closed: u64,
}

/// One node's part of a broadcast tree, as that node sees it (Partisan's
/// `debug_get_peers(node, root)` and `exchanges(node)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BroadcastPeers {
    /// The node that answered.
    pub node: String,
    /// The tree root the peers are for.
    pub root: String,
    /// Its eager peers for `root`.
    pub eager: Vec<String>,
    /// Its lazy peers for `root`.
    pub lazy: Vec<String>,
    /// Its running exchanges.
    pub exchanges: Vec<ExchangeInfo>,
    /// True if a list was cut to the reporting limits (1,024 peers per list, 256 exchanges).
    pub truncated: bool,
}

/// A custom exchange to run ([`crate::Handler::custom_exchange`]): with member `peer`, for
/// `handler`; report its outcome with [`crate::Node::finish_exchange`] and `session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRequest {
    /// The exchange, as [`BroadcastStatus::exchanges`] lists it.
    pub session: u64,
    /// The handler.
    pub handler: String,
    /// The neighbour to exchange with.
    pub peer: String,
}

/// A broadcast tree gathered through the cluster (Partisan's `debug_get_tree(root)`): every
/// live member's eager and lazy peers for one root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BroadcastTree {
    /// The tree root.
    pub root: String,
    /// Each node that answered, with its peers.
    pub nodes: BTreeMap<String, BroadcastPeers>,
    /// Live members that did not answer in time.
    pub unanswered: Vec<String>,
}

/// A singleton as the API reports it, with wall-clock times.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SingletonStatus {
    /// The singleton.
    pub name: String,
    /// This node's role: `leader`, `candidate` or `follower`.
    pub role: ensemble_proto::singleton::Role,
    /// The leader, when known.
    pub leader: Option<String>,
    /// The leader's fencing epoch (0 when no leader is known).
    pub epoch: u64,
    /// Since when (milliseconds since the Unix epoch) this node leads or follows that leader.
    pub since_ms: Option<u64>,
    /// When (milliseconds since the Unix epoch) the activator was started on this node.
    pub created_at_ms: Option<u64>,
    /// When (milliseconds since the Unix epoch) this node's current leadership began; `None`
    /// unless this node leads.
    pub active_from_ms: Option<u64>,
    /// What the handler exposes of its own state ([`crate::Singleton::mod_state`]), as of
    /// its latest event; `None` if it exposes nothing.
    pub mod_state: Option<serde_json::Value>,
    /// Other nodes that run it and are up.
    pub candidates: Vec<String>,
    /// The majority rule's expected number of candidates, if on.
    pub majority_of: Option<usize>,
    /// Nodes that run it with another majority rule: a configuration error; they are ignored.
    pub mismatched: Vec<String>,
}

/// The last suspicion of each member a node marked suspect, by name, as the driver publishes
/// it for [`crate::Node::accusations`].
pub type AccusationMap = BTreeMap<String, ensemble_proto::membership::Accusation>;

/// A connection to another member opened or closed (see [`crate::Node::connection_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// The member on the other end.
    pub peer: String,
    /// True when it opened, false when it closed.
    pub up: bool,
}

/// A join of a table that this node coordinated ended (see [`crate::Node::table_joins`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableJoinEvent {
    /// This node's replica of `table` and `node`'s segment are one (a caller's join, a join
    /// by discovery, or an automatic re-merge after a split).
    Joined {
        /// The table.
        table: String,
        /// The node whose segment it joined.
        node: String,
        /// How long the join took.
        took: Duration,
        /// Keys the two sides held with different values, settled by the conflict handler.
        conflicts: u64,
    },
    /// An automatic re-merge with `node` after a split ended: after its `Joined` if it
    /// succeeded; a failed one is tried again.
    Remerged {
        /// The table.
        table: String,
        /// The other node.
        node: String,
        /// Its outcome.
        result: Result<(), TableError>,
    },
}
