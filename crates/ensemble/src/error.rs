//! Errors of the runtime and the public API.

use std::net::SocketAddr;
use std::path::PathBuf;

use ensemble_proto::MemberError;

/// Errors returned by [`crate::Node`] and its configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the setting and the fix.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A name or tag set is invalid.
    #[error(transparent)]
    Member(#[from] MemberError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The cluster secret file could not be read or created.
    #[error("cluster secret file {path}: {reason}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Joining through `addr` failed.
    #[error("cannot join through {addr}: {reason}")]
    Join {
        /// The address dialled.
        addr: SocketAddr,
        /// Why it failed (refused, timed out, wrong secret, ...).
        reason: String,
    },
    /// The node has shut down.
    #[error("the node has shut down")]
    Stopped,
    /// A broadcast was refused (unknown handler, payload too large, duplicate handler).
    #[error(transparent)]
    Broadcast(#[from] ensemble_proto::broadcast::BroadcastError),
    /// The member is not live (unknown, down, left, or partitioned away).
    #[error("{0} is not a live member")]
    UnknownNode(String),
    /// No handler is registered under this name on that member.
    #[error("no handler is registered as {name:?} on {node}")]
    UnknownName {
        /// The member.
        node: String,
        /// The name.
        name: String,
    },
    /// A handler name is registered already on this node.
    #[error("a handler is already registered as {0:?} on this node")]
    DuplicateName(String),
    /// No acknowledgement came in time.
    #[error("no acknowledgement from {node} for {name:?} within {after:?}")]
    Timeout {
        /// The member.
        node: String,
        /// The name.
        name: String,
        /// How long the sender waited.
        after: std::time::Duration,
    },
    /// A query was refused (name, payload, filter or timeout over its limit, too many
    /// running).
    #[error(transparent)]
    Query(#[from] ensemble_proto::query::QueryError),
    /// A singleton could not be registered.
    #[error(transparent)]
    Singleton(#[from] ensemble_proto::singleton::SingletonError),
    /// A replicated-table operation failed.
    #[error(transparent)]
    Table(#[from] ensemble_proto::table::TableError),
    /// A table's key or value could not be encoded or decoded.
    #[error("table {table:?}: {reason}")]
    Codec {
        /// The table.
        table: String,
        /// What failed.
        reason: String,
    },
    /// A change subscriber fell behind and missed this many change batches.
    #[error("the subscriber fell behind and missed {0} change batches")]
    Lagged(u64),
    /// A message was sent on a channel this node did not declare.
    #[error("no channel {0:?} is declared on this node (Config::channels)")]
    UnknownChannel(String),
    /// [`crate::Node::reserve`] with every slot taken already.
    #[error("no available slots: a node reserves at most {0} (Node::reserve)")]
    NoAvailableSlots(usize),
    /// No partition with this reference is in force.
    #[error("no injected partition {0}")]
    UnknownPartition(u64),
    /// A message, event or table write that cannot travel in one frame: refused before
    /// anything is queued, so that no peer ever receives a frame it must refuse.
    #[error(
        "{what} of {size} bytes does not fit in one frame of at most {max} bytes \
         (Config::max_frame_size); send less at once"
    )]
    TooLarge {
        /// What was refused (`a named message`, `a table write`...).
        what: &'static str,
        /// Its encoded size in its frame, in bytes.
        size: usize,
        /// The largest frame, in bytes.
        max: usize,
    },
    /// A table name starting with [`crate::RESERVED_TABLE_PREFIX`]: Ensemble's own tables
    /// (the tracker's) are opened only by Ensemble.
    #[error(
        "table name {0:?} is reserved: names starting with \"ensemble.\" belong to Ensemble \
         itself (the node tracker's table); pick another name"
    )]
    ReservedName(String),
    /// A handler name starting with [`crate::RESERVED_TABLE_PREFIX`]: Ensemble's own messages
    /// (key rotation) travel under such names.
    #[error(
        "handler name {0:?} is reserved: names starting with \"ensemble.\" carry Ensemble's own \
         messages (key rotation); pick another name"
    )]
    ReservedHandler(String),
}
