//! What a table is ([`TableSpec`]), the protocol's timings and sizes ([`TableConfig`]), and a
//! write asked of the local replica ([`WriteOp`]).

use std::time::Duration;

use bytes::Bytes;

use super::msg::{Op, Version};
use super::store::Kind;
use super::ConflictHandler;

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
    pub(crate) fn into_op(self, version: Version) -> Op {
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
