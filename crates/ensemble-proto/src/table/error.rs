//! Why a table operation failed ([`TableError`]) and why a join did not happen
//! ([`JoinFailure`]). Decisions are made on the variants, never on the text.

use std::collections::BTreeSet;

use super::msg::Refusal;
use super::store::Kind;

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
        reason: JoinFailure,
    },
    /// Some replicas did not answer before the deadline.
    #[error("no answer from {0:?} before the deadline")]
    Timeout(Vec<String>),
}

/// Why a join of two segments did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinFailure {
    /// The node to join with is down.
    #[error("it is down")]
    Down,
    /// A replica taking part went down before the join completed.
    #[error("replica {0} went down")]
    ReplicaDown(String),
    /// A replica taking part does not host the table.
    #[error("{0} does not host the table")]
    NotHosted(String),
    /// A replica refused a step of the join.
    #[error("{by}: {refusal}")]
    Refused {
        /// The refusing replica.
        by: String,
        /// Why.
        refusal: Refusal,
    },
    /// The table is a set on one side and a bag on the other.
    #[error(
        "the table is a {} on {node} and a {} here: open it with the same kind everywhere",
        theirs.as_str(),
        ours.as_str()
    )]
    KindMismatch {
        /// The node with the other kind.
        node: String,
        /// Its kind.
        theirs: Kind,
        /// The kind here.
        ours: Kind,
    },
    /// A replica is in both segments.
    #[error("segments overlap: {0} is in both")]
    Overlap(String),
    /// A replica's view of its segment differs from the others'.
    #[error("replicas disagree on the segment: {node} has {has:?}, expected {expected:?}")]
    SegmentDisagreement {
        /// The replica.
        node: String,
        /// Its view of its segment.
        has: BTreeSet<String>,
        /// The segment as its side's coordinator or remote sees it.
        expected: BTreeSet<String>,
    },
    /// The replicas of one segment hold different join ids.
    #[error("replicas disagree on the join id: {0:?}")]
    JoinIdDisagreement(BTreeSet<u64>),
    /// Fewer snapshot records arrived than the source announced.
    #[error("{arrived} of {total} snapshot records arrived from {from}")]
    SnapshotIncomplete {
        /// The source.
        from: String,
        /// Records that arrived.
        arrived: u64,
        /// Records announced.
        total: u64,
    },
    /// The join's deadline passed.
    #[error("deadline passed")]
    Deadline,
}

impl JoinFailure {
    /// Worth trying again after a back-off: a replica was busy with another join, or a
    /// snapshot came incomplete.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            JoinFailure::Refused {
                refusal: Refusal::Busy { .. },
                ..
            } | JoinFailure::SnapshotIncomplete { .. }
        )
    }

    /// The replicas' views of their segments are inconsistent (a replica counts one that does
    /// not count it): only a secession can make the join possible.
    pub fn is_inconsistent(&self) -> bool {
        matches!(
            self,
            JoinFailure::Overlap(_)
                | JoinFailure::SegmentDisagreement { .. }
                | JoinFailure::JoinIdDisagreement(_)
        )
    }
}
