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
    /// No partition with this reference is in force.
    #[error("no injected partition {0}")]
    UnknownPartition(u64),
}
