//! `GET /v1/history`: what the agent saw happen over the last hour (the dashboard's timeline).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an entry of the history tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// A member joined, or came back (restart, healed partition).
    Up,
    /// A member was declared failed (`detection_ms`: how long this agent took).
    Down,
    /// A member left gracefully (or was forced out).
    Left,
    /// A live member changed its tags, address or incarnation.
    Updated,
    /// A member became suspect in this agent's view.
    Suspect,
    /// A suspect member is alive again in this agent's view (it refuted the suspicion).
    Refuted,
    /// A singleton has a new leader or epoch (`member` leads `singleton` at `epoch`).
    Takeover,
    /// The candidates of `singleton` (the other members that run it and are up) changed, or
    /// this agent saw them first: `nodes` is the new set.
    Candidates,
    /// A join of `table` that this agent coordinated completed, with `member`'s segment.
    TableJoined,
    /// An automatic re-merge of `table` with `member` after a split ended (`error` if it
    /// failed; it is tried again).
    TableRemerged,
    /// A partition was injected at this agent (`partition`, cutting it off from `nodes`).
    PartitionInjected,
    /// An injected partition ended (resolved, or its time to live passed).
    PartitionResolved,
}

/// Who suspected a member, when it was this agent itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum SuspectedBy {
    /// This agent's own detector and probes.
    #[serde(rename = "this agent")]
    ThisAgent,
}

/// One thing the agent saw happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// Its place in the agent's history: grows by one per entry, from 1 at the agent's start.
    pub seq: u64,
    /// When the agent recorded it, in milliseconds since the Unix epoch (the agent's clock).
    pub at_ms: u64,
    pub kind: HistoryKind,
    /// The member it is about: who changed, the new leader of a takeover, the other side of a
    /// table join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The member's incarnation after the change (membership entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
    /// For a `suspect`: this agent suspected the member itself (its detector stopped hearing
    /// it and its probes could not reach it). Absent if a peer told it (`heard_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<SuspectedBy>,
    /// For a `suspect`: the member whose message told this agent of the suspicion (which may
    /// have heard it from another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_from: Option<String>,
    /// For a `down`: the detection latency, from the first sign of the failure this agent saw
    /// to its declaring the member down; absent if it saw no sign first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singleton: Option<String>,
    /// A takeover's fencing epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// How long a table join took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
    /// Keys a table join found with different values on the two sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u64>,
    /// Why a re-merge failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A partition's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u64>,
    /// The members a partition cuts this agent off from; a singleton's candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

impl HistoryEntry {
    /// An entry of `kind` with no detail yet (`seq` and `at_ms` are set when it is recorded).
    pub fn new(kind: HistoryKind) -> HistoryEntry {
        HistoryEntry {
            seq: 0,
            at_ms: 0,
            kind,
            member: None,
            incarnation: None,
            by: None,
            heard_from: None,
            detection_ms: None,
            singleton: None,
            epoch: None,
            table: None,
            took_ms: None,
            conflicts: None,
            error: None,
            partition: None,
            nodes: Vec::new(),
        }
    }
}

/// `GET /v1/history`: the entries asked for, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    pub entries: Vec<HistoryEntry>,
    /// The `seq` of the agent's latest entry (0 before the first): ask with `after` set to it
    /// for what comes next.
    pub last_seq: u64,
    /// The most entries the agent keeps.
    pub max_entries: usize,
    /// How long the agent keeps an entry, in milliseconds.
    pub max_age_ms: u64,
}
