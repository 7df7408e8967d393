//! The lines of the streaming answers (`GET /v1/events`, `GET /v1/monitor`): one JSON object
//! per line (`application/x-ndjson`). The event lines themselves are [`super::EventView`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{EventView, MemberView};

/// One line of `GET /v1/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EventLine {
    /// An event (`type` `user` or `member`).
    Event(EventView),
    /// With `snapshot=true`, one per member before the events.
    Snapshot(SnapshotLine),
    /// Every 5 s.
    Heartbeat(HeartbeatLine),
}

/// A member as it is when the stream starts (`GET /v1/events?snapshot=true`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotLine {
    /// `snapshot`.
    #[serde(rename = "type")]
    #[schema(pattern = "^snapshot$")]
    pub kind: String,
    pub member: MemberView,
}

/// `{"type": "heartbeat"}`, every 5 s on every stream, so that a quiet stream is told from a
/// dead one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatLine {
    /// `heartbeat`.
    #[serde(rename = "type")]
    #[schema(pattern = "^heartbeat$")]
    pub kind: String,
}

/// One line of `GET /v1/monitor`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MonitorLine {
    Record(LogRecordLine),
    Dropped(DroppedLine),
    Heartbeat(HeartbeatLine),
}

/// A log record of the agent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogRecordLine {
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The module that wrote it.
    pub target: String,
    /// The message, if the record has one.
    #[serde(default)]
    pub message: String,
    /// The event's own fields.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// The client read too slowly: this many records were lost.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DroppedLine {
    pub dropped: u64,
}
