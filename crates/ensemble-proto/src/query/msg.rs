//! The messages of queries: the request that fans out by broadcast and the acks and
//! responses that come back to the origin by named messaging.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Which members a query is for: every one of `nodes` (all members if empty) whose tags match
/// every `(key, regex)` of `tags`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryFilter {
    /// Member names; empty: any member.
    pub nodes: Vec<String>,
    /// Tag key and a regular expression its value must match (unanchored, as in Serf).
    pub tags: Vec<(String, String)>,
}

/// A query as it fans out (the payload of a broadcast under
/// [`super::QUERY_HANDLER`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// Unique per origin.
    pub id: u64,
    /// The member that asks.
    pub origin: String,
    /// The query's name (handlers are registered by name).
    pub name: String,
    /// The payload handed to the handlers.
    pub payload: Bytes,
    /// Who answers.
    pub filter: QueryFilter,
    /// How long the origin waits, in milliseconds (receivers count it from arrival).
    pub timeout_ms: u32,
    /// The origin wants an ack from every member the filter selects.
    pub want_ack: bool,
}

/// What a member sends back to a query's origin (a named message under
/// [`super::QUERY_HANDLER`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryMsg {
    /// The query reached the sender and its filter selects it.
    Ack {
        /// The query's id at its origin.
        id: u64,
    },
    /// The sender's handler answered.
    Response {
        /// The query's id at its origin.
        id: u64,
        /// The answer.
        payload: Bytes,
    },
}

/// Longest encoded request or reply accepted off the wire (payload, name and filters with
/// their encoding overhead).
pub(super) const MAX_ENCODED: usize = 32 * 1024;

/// `value`'s encoding.
fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(postcard::to_stdvec(value).expect("serializes"))
}

/// A value from untrusted bytes (None if garbled or over [`MAX_ENCODED`]).
fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    if bytes.len() > MAX_ENCODED {
        return None;
    }
    postcard::from_bytes(bytes).ok()
}

impl QueryRequest {
    /// Its encoding.
    pub fn encode(&self) -> Bytes {
        encode(self)
    }

    /// Decodes a request from untrusted bytes (None if garbled or over the size limit).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        decode(bytes)
    }

    /// The broadcast id of this request: origin and id.
    pub fn key(&self) -> Bytes {
        key(&self.origin, self.id)
    }
}

/// The broadcast id of the request `id` of `origin`.
pub(super) fn key(origin: &str, id: u64) -> Bytes {
    encode(&(origin, id))
}

impl QueryMsg {
    /// Its encoding.
    pub fn encode(&self) -> Bytes {
        encode(self)
    }

    /// Decodes a reply from untrusted bytes (None if garbled or over the size limit).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        decode(bytes)
    }
}
