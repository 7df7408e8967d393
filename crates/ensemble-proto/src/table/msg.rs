//! The messages replicas of a table exchange.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Orders writes to one key (or one bag object): a Lamport time, then the writer's id. Every
/// replica applies a write only if its version is newer than the one it holds, so replicas that
/// receive the same writes in different orders end up equal.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Lamport time of the write.
    pub time: u64,
    /// The writing node's id (a hash of its name); breaks ties.
    pub origin: u64,
}

impl Op {
    /// About how many bytes the write takes encoded: its key and value, plus its version.
    pub fn approx_len(&self) -> usize {
        match self {
            Op::Insert { key, value, .. } | Op::DeleteObject { key, value, .. } => {
                key.len() + value.len() + 24
            }
            Op::Delete { key, .. } => key.len() + 24,
        }
    }
}

/// Why a replica refused a step of a join (`TableMsg::Refused`). The coordinator decides on the
/// variant, never on the text: [`Refusal::Busy`] makes it retry with back-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The replica is locked by another join, of `coordinator`.
    #[error("busy: locked by a join of {coordinator}")]
    Busy {
        /// The node coordinating the join that holds the lock.
        coordinator: String,
    },
    /// The replica is not locked for this join (its lock expired or went to another join).
    #[error("not locked for this join")]
    NotLocked,
    /// Fewer records arrived before `Apply` than it announced.
    #[error("{got} of {total} records arrived")]
    Incomplete {
        /// Records that arrived.
        got: u64,
        /// Records announced.
        total: u64,
    },
}

/// One replicated write, as it travels between replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Insert or replace (set); add the object (bag).
    Insert {
        /// The encoded key.
        #[serde(deserialize_with = "crate::shared_bytes::deserialize")]
        key: Bytes,
        /// The encoded value.
        #[serde(deserialize_with = "crate::shared_bytes::deserialize")]
        value: Bytes,
        /// Its version.
        version: Version,
    },
    /// Remove the key (set) or every object under it (bag).
    Delete {
        /// The encoded key.
        #[serde(deserialize_with = "crate::shared_bytes::deserialize")]
        key: Bytes,
        /// Its version.
        version: Version,
    },
    /// Remove the record only if it holds exactly this value (set), or this one object (bag).
    DeleteObject {
        /// The encoded key.
        #[serde(deserialize_with = "crate::shared_bytes::deserialize")]
        key: Bytes,
        /// The encoded value.
        #[serde(deserialize_with = "crate::shared_bytes::deserialize")]
        value: Bytes,
        /// Its version.
        version: Version,
    },
}

/// A live record, as snapshots and joins carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The encoded key.
    #[serde(deserialize_with = "crate::shared_bytes::deserialize")]
    pub key: Bytes,
    /// The encoded value.
    #[serde(deserialize_with = "crate::shared_bytes::deserialize")]
    pub value: Bytes,
    /// The version it was written with.
    pub version: Version,
}

/// An operation that goes through the table's leader, so it is decided once for the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderOp {
    /// Insert if the key is absent.
    InsertNew {
        /// The encoded key.
        key: Bytes,
        /// The encoded value.
        value: Bytes,
    },
    /// Insert if the key is absent, else answer the value it holds.
    InsertNewOrLookup {
        /// The encoded key.
        key: Bytes,
        /// The encoded value.
        value: Bytes,
    },
    /// Insert these records, in the order the leader receives such requests.
    InsertSerial {
        /// Encoded (key, value) pairs.
        records: Vec<(Bytes, Bytes)>,
    },
}

/// The leader's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderResult {
    /// Written on every replica.
    Inserted,
    /// The key was present with this value; nothing was written.
    Exists(Bytes),
    /// The receiver is not the leader (as it sees the table's replicas): ask again.
    NotLeader,
}

/// Messages of the replicated-table protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TableMsg {
    /// The tables the sender hosts (sent when a connection opens and when a table is created).
    Hosted {
        /// Table names.
        tables: Vec<String>,
    },
    /// Replicated writes, in the order the sender applied them. Answered by `Ack`.
    Ops {
        /// The table.
        table: String,
        /// The sender's join id; a receiver with another one ignores the writes (and acks).
        join_id: u64,
        /// Per (sender, receiver, table); retransmissions repeat it.
        seq: u64,
        /// The writes (shared between the peers they go to and the copies kept for
        /// retransmission).
        ops: Arc<Vec<Op>>,
    },
    /// The writes with this `seq` are applied (or ignored because of their join id).
    Ack {
        /// The table.
        table: String,
        /// The acked sequence number.
        seq: u64,
    },
    /// The receiver hosts no table by this name.
    NotHosted {
        /// The table.
        table: String,
    },
    /// Leader operation; answered by `LeaderReply`.
    LeaderRequest {
        /// The table.
        table: String,
        /// Unique per requester; retries repeat it.
        id: u64,
        /// The operation.
        op: LeaderOp,
    },
    /// Answer to `LeaderRequest`.
    LeaderReply {
        /// The table.
        table: String,
        /// The request's id.
        id: u64,
        /// The outcome.
        result: LeaderResult,
    },
    /// Answered by `Pong` once every write the sender applied before it is applied here.
    Ping {
        /// The table.
        table: String,
        /// Matches the pong.
        id: u64,
    },
    /// Answer to `Ping`.
    Pong {
        /// The table.
        table: String,
        /// The ping's id.
        id: u64,
    },
    /// Join, step 1: lock the replica for join `join` of the sender (its coordinator) and
    /// pause its writes. Answered by `Paused` once the replica's own writes are acked
    /// everywhere, or `Refused`.
    Pause {
        /// The table.
        table: String,
        /// The coordinator's join number.
        join: u64,
    },
    /// The replica is locked for the join; its segment as it sees it.
    Paused {
        /// The table.
        table: String,
        /// The join.
        join: u64,
        /// Its replicas (without itself).
        peers: Vec<String>,
        /// Its join id.
        join_id: u64,
        /// Its records' digest: replicas with equal digests hold equal records.
        digest: u64,
        /// Set or bag: replicas of one table must agree.
        kind: super::Kind,
    },
    /// The replica will not take part in the join.
    Refused {
        /// The table.
        table: String,
        /// The join.
        join: u64,
        /// Why: the coordinator decides on it (a busy replica is asked again later).
        reason: Refusal,
    },
    /// Join, step 2: send your records.
    SnapshotRequest {
        /// The table.
        table: String,
        /// The join.
        join: u64,
    },
    /// Part of a snapshot or of the records to apply.
    Chunk {
        /// The table.
        table: String,
        /// The join.
        join: u64,
        /// Records.
        records: Vec<Record>,
    },
    /// The snapshot is complete: `total` records were sent in chunks.
    SnapshotEnd {
        /// The table.
        table: String,
        /// The join.
        join: u64,
        /// How many records the chunks held.
        total: u64,
    },
    /// Join, step 3: apply the chunks sent before this (`total` records), take this segment
    /// and join id, and stay paused. Answered by `Applied`.
    Apply {
        /// The table.
        table: String,
        /// The join.
        join: u64,
        /// How many records the chunks held.
        total: u64,
        /// Every replica of the joined segment.
        members: Vec<String>,
        /// The new join id.
        join_id: u64,
    },
    /// Answer to `Apply`.
    Applied {
        /// The table.
        table: String,
        /// The join.
        join: u64,
    },
    /// Join, step 4 (or abort): release the lock and replay the queued writes.
    Unpause {
        /// The table.
        table: String,
        /// The join.
        join: u64,
    },
    /// The sender left its segment (it found the replicas' views of the segment inconsistent,
    /// after a partial partition): drop it from yours; a re-merge brings it back.
    Forget {
        /// The table.
        table: String,
    },
}

impl TableMsg {
    /// A short name of the message's kind, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            TableMsg::Hosted { .. } => "table.hosted",
            TableMsg::Ops { .. } => "table.ops",
            TableMsg::Ack { .. } => "table.ack",
            TableMsg::NotHosted { .. } => "table.not_hosted",
            TableMsg::LeaderRequest { .. } => "table.leader_request",
            TableMsg::LeaderReply { .. } => "table.leader_reply",
            TableMsg::Ping { .. } => "table.ping",
            TableMsg::Pong { .. } => "table.pong",
            TableMsg::Pause { .. } => "table.pause",
            TableMsg::Paused { .. } => "table.paused",
            TableMsg::Refused { .. } => "table.refused",
            TableMsg::SnapshotRequest { .. } => "table.snapshot_request",
            TableMsg::Chunk { .. } => "table.chunk",
            TableMsg::SnapshotEnd { .. } => "table.snapshot_end",
            TableMsg::Apply { .. } => "table.apply",
            TableMsg::Applied { .. } => "table.applied",
            TableMsg::Unpause { .. } => "table.unpause",
            TableMsg::Forget { .. } => "table.forget",
        }
    }
}
