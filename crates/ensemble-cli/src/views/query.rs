//! `POST /v1/query`: the request body and the lines of the answer (one JSON object per line).

use std::collections::BTreeMap;

use ensemble::QueryEvent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/query` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    pub name: String,
    #[serde(default)]
    pub payload: String,
    /// Member names; empty: every member.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Tag key to a regular expression its value must match.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// None: Serf's default for the cluster's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub no_ack: bool,
}

/// One line of the answer: an ack, a response, and last the counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueryLine {
    /// A selected member has the query.
    Ack { from: String },
    /// A member's handler answered (its bytes as text, invalid UTF-8 replaced).
    Response { from: String, payload: String },
    /// The timeout passed: nothing more comes.
    Done { acks: usize, responses: usize },
}

impl From<QueryEvent> for QueryLine {
    fn from(event: QueryEvent) -> Self {
        match event {
            QueryEvent::Ack { from } => QueryLine::Ack {
                from: from.to_string(),
            },
            QueryEvent::Response { from, payload } => QueryLine::Response {
                from: from.to_string(),
                payload: String::from_utf8_lossy(&payload).into_owned(),
            },
            QueryEvent::Done { acks, responses } => QueryLine::Done { acks, responses },
        }
    }
}
