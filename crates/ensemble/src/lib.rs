//! Ensemble: cluster primitives for Rust services.
//!
//! Start a [`Node`] in your service and it finds its peers, keeps a replicated member list,
//! detects failures (phi accrual with indirect confirmation), heals partitions, and carries
//! cluster-wide broadcasts (Plumtree: [`Node::broadcast`], [`Node::send_event`]). Nodes talk
//! over TCP, and every connection is authenticated by a shared cluster secret.
//!
//! ```no_run
//! use ensemble::{Config, Node, Secret};
//! use futures::StreamExt;
//!
//! # async fn run() -> Result<(), ensemble::Error> {
//! let secret = Secret::new("a-long-shared-cluster-secret")?;
//! let config = Config::new("app1", "127.0.0.1:7946".parse().unwrap(), secret);
//! let node = Node::start(config).await?;
//! node.join("127.0.0.1:7947".parse().unwrap()).await?;
//! let mut events = node.events();
//! while let Some(e) = events.next().await {
//!     println!("{} is {:?}", e.member.name, e.kind);
//! }
//! # Ok(()) }
//! ```
//!
//! The protocol logic lives in the sans-IO crate [`ensemble_proto`]; this crate moves bytes,
//! fires timers and hands out events.
//!
//! Cargo features, both on by default: `dns` (discovery by DNS, `discovery::DnsBackend`) and
//! `postgres` (discovery through a PostgreSQL table, `discovery::PostgresBackend`). Without
//! them (`default-features = false`) the static and file backends remain, and the crate builds
//! without the DNS resolver, the PostgreSQL client and rustls.

#![warn(missing_docs)]

mod api;
mod command;
mod config;
pub mod discovery;
mod driver;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod keyring;
mod limits;
pub mod metrics;
mod node;
mod secret;
mod time;
mod transport;

pub use api::broadcast::MAX_EVENT_NAME;
pub use api::faults::PartitionRef;
pub use api::keys::KEY_TIMEOUT;
pub use api::manager::{Capability, LocalState, MembersUpdate, MAX_UPDATE_MEMBERS};
pub use api::membership::Accusations;
pub use api::membership::Watch;
pub use api::messaging::Mailbox;
pub use api::query::QueryOptions;
pub use api::singleton::{
    ShutdownReason, Singleton, SingletonEvent, SingletonHandle, SingletonOptions, SingletonRole,
    TimerScope,
};
pub use api::table::{
    PauseGuard, RequestId, Table, TableChange, TableChanges, TableOptions, DEFAULT_TIMEOUT,
};
pub use api::tracker::{
    Detail, EntryPoint, Mode, NodeRow, NodeStatus, NodeUpdate, Tracker, TrackerEvent, TrackerOp,
    TRACKER_TABLE, UNTIL_EXISTS_INTERVAL, UNTIL_EXISTS_TIMEOUT,
};
pub use command::{
    BroadcastPeers, BroadcastStatus, BroadcastTree, ConnectionEvent, Envelope, ExchangeRequest,
    KeyResponse, KeyUse, SingletonStatus, TableJoinEvent, MAILBOX_CAPACITY,
};
pub use config::{Config, DEFAULT_CHANNEL, DEFAULT_MAX_FRAME, MAX_CHANNELS};
pub use ensemble_proto::broadcast::events::UserEvent;
pub use ensemble_proto::broadcast::{BroadcastConfig, ExchangeSelector, Graft, Handler};
pub use ensemble_proto::membership::{Accusation, Accuser};
/// Checks a query name: 1 to 128 bytes, no control characters.
pub use ensemble_proto::query::check_name as check_query_name;
/// Largest query response, in bytes (a handler's longer answer is refused).
pub use ensemble_proto::query::MAX_RESPONSE as MAX_QUERY_RESPONSE;
pub use ensemble_proto::query::{Incoming as IncomingQuery, QueryError, QueryEvent, QueryId};
pub use ensemble_proto::table::{Kind as TableKind, TableError, TableInfo};
pub use ensemble_proto::topology::{Role, Topology};
pub use ensemble_proto::{self as proto, EventKind, Member, MemberEvent, Status};
pub use error::Error;
pub use keyring::{fingerprint, Keyring, MAX_KEYS};
pub use limits::{check_table_name, MAX_TABLE_NAME, RESERVED_TABLE_PREFIX};
pub use node::Node;
pub use secret::{estimated_bits, Secret, MIN_SECRET_BITS, MIN_SECRET_LEN};
