//! Replicated tables (after CETS): every replica holds all records and reads locally; writes
//! apply here and go to every replica of the table's segment; segments join with a pause,
//! a snapshot exchange and a conflict handler, and re-merge by themselves after a split heals.
//!
//! [`Tables`] holds this node's replicas and the joins and leader calls it runs. Like every
//! protocol here it is sans-IO: it takes messages, commands and ticks, and yields
//! [`Output`]s. Writes carry versions ([`Version`]), so replicas that see the same writes in
//! different orders converge.
//!
//! - [`store`]: the records of a replica (set or bag).
//! - [`msg`]: the messages between replicas.

mod blob;
mod join;
mod keys;
pub mod msg;
mod replica;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use msg::{LeaderOp, LeaderResult, Op, Record, TableMsg, Version};
pub use store::{Change, Chunks, Kind, Store};

/// Resolves a key present on both sides of a join with different values: `(key, left, right)`
/// to the value both sides keep (all encoded).
pub type ConflictHandler = Arc<dyn Fn(&[u8], &[u8], &[u8]) -> Bytes + Send + Sync>;

/// What a table is: set or bag, its conflict handler and its limits.
#[derive(Clone)]
pub struct TableSpec {
    /// Set or bag.
    pub kind: Kind,
    /// Merges conflicting values at a join (sets only). Without one, the newer write wins.
    pub conflict: Option<ConflictHandler>,
    /// Most live records a local write may bring the replica to.
    pub max_records: Option<usize>,
    /// Most bytes (estimated) a local write may bring the replica to.
    pub max_bytes: Option<usize>,
}

impl std::fmt::Debug for TableSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableSpec")
            .field("kind", &self.kind)
            .field("conflict", &self.conflict.is_some())
            .field("max_records", &self.max_records)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl TableSpec {
    /// A set without conflict handler or limits.
    pub fn set() -> Self {
        TableSpec {
            kind: Kind::Set,
            conflict: None,
            max_records: None,
            max_bytes: None,
        }
    }
}

/// Timings and sizes of the table protocol.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Unacked writes are sent again after this.
    pub retransmit: Duration,
    /// Most unacked write messages per peer; more wait and go out coalesced.
    pub window: usize,
    /// Most writes coalesced into one message.
    pub max_ops_per_message: usize,
    /// A join lock nobody releases expires after this.
    pub lock_timeout: Duration,
    /// How long automatic re-merges may take.
    pub merge_timeout: Duration,
    /// The higher-named of two nodes waits this long before starting a re-merge itself (the
    /// lower-named starts at once), so that usually one join runs.
    pub merge_delay: Duration,
    /// Deletes are remembered this long to order late writes.
    pub tombstone_ttl: Duration,
    /// Largest key + value.
    pub max_record_bytes: usize,
    /// Records per join chunk are cut at about this many bytes.
    pub chunk_bytes: usize,
    /// A leader that does not answer within this is asked again.
    pub leader_retry: Duration,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            retransmit: Duration::from_millis(500),
            window: 64,
            max_ops_per_message: 4096,
            lock_timeout: Duration::from_secs(30),
            merge_timeout: Duration::from_secs(10),
            merge_delay: Duration::from_secs(2),
            tombstone_ttl: Duration::from_secs(30),
            max_record_bytes: 256 * 1024,
            chunk_bytes: 256 * 1024,
            leader_retry: Duration::from_secs(1),
        }
    }
}

/// A write asked of the local replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert (set: replace) `key` with `value`.
    Insert(Bytes, Bytes),
    /// Delete `key` (bag: all its values).
    Delete(Bytes),
    /// Delete `key` only with this value (bag: this object).
    DeleteObject(Bytes, Bytes),
}

impl WriteOp {
    fn into_op(self, version: Version) -> Op {
        match self {
            WriteOp::Insert(key, value) => Op::Insert {
                key,
                value,
                version,
            },
            WriteOp::Delete(key) => Op::Delete { key, version },
            WriteOp::DeleteObject(key, value) => Op::DeleteObject {
                key,
                value,
                version,
            },
        }
    }
}

/// Why a table operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// No table by this name here.
    #[error("no table {0:?} on this node")]
    Unknown(String),
    /// The table exists with another kind.
    #[error("table {table:?} exists as a {existing:?}; open it with the same kind")]
    KindMismatch {
        /// The table.
        table: String,
        /// Its kind.
        existing: Kind,
    },
    /// Bags do not take conflict handlers (a key holds many values, so there is no conflict).
    #[error("table {0:?} is a bag: bags have no conflicts, remove the conflict handler")]
    BagWithConflictHandler(String),
    /// Key + value exceed the largest record.
    #[error("record of {size} bytes in table {table:?} exceeds the limit of {max} bytes")]
    TooLarge {
        /// The table.
        table: String,
        /// The record's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The table's limit would be exceeded.
    #[error("table {table:?} is full ({limit})")]
    Full {
        /// The table.
        table: String,
        /// Which limit.
        limit: String,
    },
    /// A replica answered that it does not host the table; the write is applied here and on
    /// the other replicas.
    #[error("node {node} does not host table {table:?}; the write reached the other replicas")]
    NotHosted {
        /// The table.
        table: String,
        /// The node.
        node: String,
    },
    /// No leader answered before the deadline.
    #[error("no leader of table {table:?} answered after {attempts} attempts")]
    LeaderUnavailable {
        /// The table.
        table: String,
        /// Requests sent.
        attempts: u32,
    },
    /// The join did not happen.
    #[error("join of table {table:?} with {node} failed: {reason}")]
    Join {
        /// The table.
        table: String,
        /// The other node.
        node: String,
        /// Why.
        reason: String,
    },
    /// Some replicas did not answer before the deadline.
    #[error("no answer from {0:?} before the deadline")]
    Timeout(Vec<String>),
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
}

/// An output of the table protocol.
#[derive(Debug)]
pub enum Output {
    /// Send `msg` to the member `to`.
    Send {
        /// The member.
        to: String,
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
        node: String,
    },
    /// An automatic re-merge with `node` ended.
    Merged {
        /// The table.
        table: String,
        /// The other node.
        node: String,
        /// Its outcome.
        result: Result<(), TableError>,
    },
}

/// What to do when an operation completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Completion {
    /// Tell the local caller.
    Token(u64),
    /// Answer a leader request.
    LeaderReply { table: String, to: String, id: u64 },
    /// An automatic re-merge.
    Merge,
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
    /// The segment's join id.
    pub join_id: u64,
    /// Replicas that went down, oldest first, with when.
    pub down_history: Vec<(String, Instant)>,
    /// Writes are paused (a join or a `pause`).
    pub paused: bool,
}

/// Effects of handling one input, gathered while replicas are borrowed.
pub(crate) struct Fx {
    pub me: String,
    pub origin: u64,
    pub config: TableConfig,
    pub sends: Vec<(String, TableMsg)>,
    pub outs: Vec<Output>,
    pub done: Vec<(Completion, Result<Reply, TableError>)>,
    /// (table, node): a peer's writes showed it is in another segment.
    pub diverged: Vec<(String, String)>,
    /// Tables whose replica left a write made here for [`Tables::settle`].
    pub unsettled: Vec<String>,
}

impl Fx {
    pub fn send(&mut self, to: &str, msg: TableMsg) {
        self.sends.push((to.to_string(), msg));
    }

    /// Sends a snapshot's chunks (see [`Store::chunks`]).
    pub fn send_chunks(&mut self, to: &str, table: &str, join: u64, chunks: Chunks) {
        for records in chunks.into_iter().filter(|c| !c.is_empty()) {
            self.send(
                to,
                TableMsg::Chunk {
                    table: table.to_string(),
                    join,
                    records,
                },
            );
        }
    }
}

/// A leader request or a ping this node waits on.
#[derive(Debug)]
pub(crate) enum Call {
    Leader {
        table: String,
        op: LeaderOp,
        token: u64,
        deadline: Instant,
        attempts: u32,
        /// When to ask (again).
        retry_at: Instant,
    },
    Ping {
        token: u64,
        deadline: Instant,
        waiting: BTreeSet<String>,
        table: String,
        /// Writes numbered below this were made before the ping.
        before: u64,
    },
}

/// A re-merge with a node that hosts one of our tables but is not in its segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remerge {
    due: Instant,
    backoff: Duration,
}

mod tables;
pub use tables::Tables;

/// A stable 64-bit id of a node name (FNV-1a), the `origin` of its writes.
pub fn origin_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
