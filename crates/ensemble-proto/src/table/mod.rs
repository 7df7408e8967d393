//! Replicated tables (after CETS): every replica holds all records and reads locally; writes
//! apply here and go to every replica of the table's segment; segments join with a pause,
//! a snapshot exchange and a conflict handler, and re-merge by themselves after a split heals.
//!
//! [`Tables`] holds this node's replicas and the joins and leader calls it runs. Like every
//! protocol here it is sans-IO: it takes [`Input`]s (commands, connection and membership
//! changes, messages, ticks) through [`Tables::handle`] and yields [`Output`]s. Writes carry
//! versions ([`Version`]), so replicas that see the same writes in different orders converge.
//!
//! The code is split by concern:
//! - `tables`: the machine, its inputs and the effects they have;
//! - `dispatch`: what each message from a replica does;
//! - `coordinator` and `join`: the joins this node coordinates, the merge of two snapshots;
//! - `remerge`: re-merges after a split heals, and secession when views disagree;
//! - `calls`: leader operations and pings this node waits on;
//! - `replica`: one replica (writes, acks, its side of a join, the leader's side);
//! - [`store`]: the records of a replica (set or bag); [`msg`]: the messages between replicas.

mod blob;
mod calls;
mod coordinator;
mod dispatch;
mod effects;
mod error;
mod join;
mod keys;
pub mod msg;
mod remerge;
mod replica;
mod spec;
pub mod store;
mod tables;
#[cfg(test)]
mod tests;

use crate::member::NodeName;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use error::{JoinFailure, TableError};
pub use msg::{LeaderOp, LeaderResult, Op, Record, Refusal, TableMsg, Version};
pub use spec::{TableConfig, TableSpec, WriteOp};
pub use store::{Change, Chunks, Kind, Store};
pub use tables::Tables;

/// Resolves a key present on both sides of a join with different values: `(key, left, right)`
/// to the value both sides keep (all encoded).
pub type ConflictHandler = Arc<dyn Fn(&[u8], &[u8], &[u8]) -> Bytes + Send + Sync>;

/// An input to the table protocol: a command of the local API, a change of a connection or a
/// member, a message from a replica, or time passing.
///
/// Commands that answer carry a `token` of the caller's choosing: exactly one
/// [`Output::Done`] with that token follows, at once for a command refused here (an unknown
/// table, a record over the limits) and otherwise when the operation completes.
#[derive(Debug)]
pub enum Input {
    /// Create the local replica of `table`, or open it again with the same kind. Connected
    /// nodes are told, and re-merges with those that host it follow. `Done` with
    /// [`Reply::Created`] (the records are then at [`Tables::store`]) or why not.
    Create {
        /// The caller's token.
        token: u64,
        /// The table.
        table: String,
        /// Its kind, conflict handler and limits.
        spec: TableSpec,
    },
    /// Apply `ops` here and send them to every replica; `Done` with [`Reply::Written`] when
    /// every replica acked or went down. While the replica is paused the write waits, in
    /// order. A large write to a replica with peers is applied here by [`Input::Settle`]
    /// (or the next input), after its sends.
    Write {
        /// The caller's token.
        token: u64,
        /// The table.
        table: String,
        /// The writes, in order.
        ops: Vec<WriteOp>,
    },
    /// Send a leader operation to the table's leader; `Done` with [`Reply::Leader`], retried
    /// with back-off across leader changes until `deadline`.
    Leader {
        /// The caller's token.
        token: u64,
        /// The table.
        table: String,
        /// The operation.
        op: LeaderOp,
        /// When to give up.
        deadline: Instant,
    },
    /// Ping every replica of the table; `Done` with [`Reply::Pinged`] when each answered (so
    /// each has applied every write made here before) or went down.
    PingAll {
        /// The caller's token.
        token: u64,
        /// The table.
        table: String,
        /// When to give up.
        deadline: Instant,
    },
    /// Pause local writes (they wait, in order) until [`Input::Unpause`] with the same
    /// `pause` number; `Done` with [`Reply::Paused`] at once.
    Pause {
        /// The caller's token.
        token: u64,
        /// The table.
        table: String,
        /// The pause's number, of the caller's choosing.
        pause: u64,
    },
    /// End a pause; queued writes run when no pause is left. No answer.
    Unpause {
        /// The table.
        table: String,
        /// The pause's number.
        pause: u64,
    },
    /// Join the local segment of `table` with `node`'s; `Done` with [`Reply::Joined`] or the
    /// reason it failed.
    Join {
        /// The caller's token.
        token: u64,
        /// The table.
        table: String,
        /// The node to join with.
        node: NodeName,
        /// When to give up.
        deadline: Instant,
    },
    /// Apply here the writes made here that [`Input::Write`] sent but left unapplied, so that
    /// a runtime can hand their sends to its connections first and apply them here while the
    /// peers do (see [`Tables::unsettled`]). Every other input that reads or changes records
    /// does this first; until then, local reads do not show them (their writes have not
    /// completed: they complete with the peers' acks).
    Settle,
    /// A connection to `peer` opened: it hears our tables and gets what it has not acked.
    PeerUp(NodeName),
    /// The connection to `peer` closed (the member may still be up).
    PeerGone(NodeName),
    /// Membership reports `node` up (again): if connected, it hears our tables, so that
    /// segments split while it was down re-merge.
    MemberUp(NodeName),
    /// Membership reports `node` down or left: it is out of every segment, and joins and
    /// calls that need it move on.
    MemberDown(NodeName),
    /// A message from the member `from`.
    Message {
        /// The sender.
        from: NodeName,
        /// The message.
        msg: TableMsg,
    },
    /// Time passed: retransmissions, expired locks, retries, deadlines, re-merges. Call at
    /// [`Tables::poll_timeout`].
    Tick,
}

/// A successful outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Written here and on every replica that stayed up.
    Written,
    /// A leader operation's answer ([`LeaderResult::Inserted`] or [`LeaderResult::Exists`]).
    Leader(LeaderResult),
    /// The segments are joined.
    Joined,
    /// Every replica answered.
    Pinged,
    /// The replica exists here ([`Input::Create`]).
    Created,
    /// Local writes are paused ([`Input::Pause`]).
    Paused,
}

/// An output of the table protocol.
#[derive(Debug)]
pub enum Output {
    /// Send `msg` to the member `to`.
    Send {
        /// The member.
        to: NodeName,
        /// The message.
        msg: TableMsg,
    },
    /// The operation with this token is done.
    Done {
        /// The caller's token.
        token: u64,
        /// Its outcome.
        result: Result<Reply, TableError>,
    },
    /// The local replica's contents changed.
    Changed {
        /// The table.
        table: String,
        /// The changes, in order.
        changes: Vec<Change>,
    },
    /// A replica went down (the `handle_down` hook).
    Down {
        /// The table.
        table: String,
        /// The member.
        node: NodeName,
    },
    /// A join this node coordinated with `node`'s segment completed (a caller's join or an
    /// automatic re-merge).
    Joined {
        /// The table.
        table: String,
        /// The other side's node.
        node: NodeName,
        /// From the first pause to the last replica applying the merge.
        took: Duration,
        /// Keys the two sides held with different values, settled by the conflict handler (or
        /// the later write).
        conflicts: u64,
    },
    /// An automatic re-merge with `node` ended.
    Merged {
        /// The table.
        table: String,
        /// The other node.
        node: NodeName,
        /// Its outcome.
        result: Result<(), TableError>,
    },
}

/// A snapshot of a replica's state, for `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The table.
    pub name: String,
    /// Set or bag.
    pub kind: Kind,
    /// Every replica of the segment, this node included, sorted.
    pub members: Vec<String>,
    /// The replica leader operations go through.
    pub leader: String,
    /// Live records.
    pub size: usize,
    /// Estimated bytes.
    pub memory: usize,
    /// An order-independent digest of the live records and their versions (XOR of a hash
    /// per record): replicas holding the same records, written by the same writes, have equal
    /// digests.
    pub digest: u64,
    /// The segment's join id.
    pub join_id: u64,
    /// Replicas that went down, oldest first, with when.
    pub down_history: Vec<(String, Instant)>,
    /// Writes are paused (a join or a `pause`).
    pub paused: bool,
    /// The joins of this table that this node coordinated.
    pub joins: JoinStats,
}

/// The joins of a table that one node coordinated, since it opened the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Joins completed.
    pub joins: u64,
    /// Keys the joined sides held with different values, settled by the conflict handler (or
    /// the later write), over every join.
    pub conflicts_resolved: u64,
    /// The last completed join: the other side's node, when it completed, how long it took.
    pub last: Option<(String, Instant, Duration)>,
}

/// A stable 64-bit id of a node name (FNV-1a), the `origin` of its writes.
pub fn origin_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
