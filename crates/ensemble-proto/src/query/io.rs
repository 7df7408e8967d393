//! The query machine's inputs, outputs, settings and refusals.

use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use super::msg::{QueryFilter, QueryMsg};
use crate::member::{NodeName, Tags};

/// A query, named by its origin and the origin's id for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId {
    /// The member that asked.
    pub origin: String,
    /// Unique per origin.
    pub id: u64,
}

/// An input to the query machine.
#[derive(Debug)]
pub enum Input {
    /// Start a query: it fans out to every member by broadcast, and the members `filter`
    /// selects ack it (if `want_ack`) and hand it to their handler for `name`. Answered at
    /// once with [`Reply::Started`] (its id) or a refusal; then [`Output::Event`]s follow
    /// until [`QueryEvent::Done`] at the timeout.
    Query {
        /// The caller's token.
        token: u64,
        /// The query's name.
        name: String,
        /// Its payload.
        payload: Bytes,
        /// Who answers.
        filter: QueryFilter,
        /// How long to wait for answers (None: [`default_timeout`] of one member).
        timeout: Option<Duration>,
        /// Ask the selected members for an ack.
        want_ack: bool,
    },
    /// The local handler's answer to the query [`Output::Request`] handed it: sent back to
    /// the origin. Answered with [`Reply::Responded`] or a refusal (too large, after the
    /// deadline, answered already).
    Respond {
        /// The caller's token.
        token: u64,
        /// The query.
        query: QueryId,
        /// The answer.
        payload: Bytes,
    },
    /// The broadcast handler took new requests: check them against this member (named at
    /// construction, with these tags).
    Delivered {
        /// This member's tags.
        tags: Tags,
    },
    /// An ack or response from member `from`.
    Message {
        /// The sender.
        from: NodeName,
        /// The message.
        msg: QueryMsg,
    },
    /// Time passed.
    Tick,
}

/// What happens to a query this node started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryEvent {
    /// A selected member has the query.
    Ack {
        /// The member.
        from: NodeName,
    },
    /// A member's handler answered.
    Response {
        /// The member.
        from: NodeName,
        /// The answer.
        payload: Bytes,
    },
    /// The timeout passed: nothing more comes.
    Done {
        /// Acks received.
        acks: usize,
        /// Responses received.
        responses: usize,
    },
}

/// A query for a local handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The query.
    pub query: QueryId,
    /// Its name.
    pub name: String,
    /// Its payload.
    pub payload: Bytes,
    /// After this the origin no longer listens.
    pub deadline: Instant,
}

/// An output of the query machine.
#[derive(Debug)]
pub enum Output {
    /// Fan this encoded request out through the broadcast handler [`super::QUERY_HANDLER`]
    /// (the stack does it).
    Broadcast(Bytes),
    /// Send `msg` to member `to` (acknowledged named messaging to [`super::QUERY_HANDLER`],
    /// relayed where needed, sent again until acknowledged or `deadline`, and as soon as a
    /// connection to `to` opens; the stack does it).
    Send {
        /// The member.
        to: NodeName,
        /// The message.
        msg: QueryMsg,
        /// After this the origin no longer listens: the message is given up.
        deadline: Instant,
    },
    /// A query for the local handler of its name; answer with [`Input::Respond`].
    Request(Incoming),
    /// Something happened to the query `query` this node started.
    Event {
        /// Its id (from [`Reply::Started`]).
        query: u64,
        /// What.
        event: QueryEvent,
    },
    /// The answer to the command with this token.
    Done {
        /// The caller's token.
        token: u64,
        /// The outcome.
        result: Result<Reply, QueryError>,
    },
}

/// A command's successful outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The query started under this id.
    Started(u64),
    /// The response is on its way.
    Responded,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// The name is empty, too long or has control characters.
    #[error("query name must be 1 to {max} bytes without control characters")]
    BadName {
        /// The limit.
        max: usize,
    },
    /// The payload is over the limit.
    #[error("query payload of {len} bytes is over the limit of {max}")]
    PayloadTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The response is over the limit.
    #[error("query response of {len} bytes is over the limit of {max}")]
    ResponseTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A filter is over its limits or a tag pattern does not compile.
    #[error("bad query filter: {0}")]
    BadFilter(String),
    /// The timeout is zero or over the limit.
    #[error("query timeout must be between 1 ms and {max:?}")]
    BadTimeout {
        /// The limit.
        max: Duration,
    },
    /// Too many queries of this node are running.
    #[error("{max} queries are already running on this node")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// This node started queries faster than the rate limit allows.
    #[error("query rate limit exceeded ({per_sec} per second)")]
    RateLimited {
        /// The limit.
        per_sec: u32,
    },
    /// The query is unknown here or its deadline passed.
    #[error("no such query is waiting for a response (unknown, or its deadline passed)")]
    UnknownQuery,
    /// This node answered the query already.
    #[error("this node has already answered the query")]
    AlreadyResponded,
}

/// Settings of queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryConfig {
    /// Queries of this node running at once (more are refused).
    pub max_in_flight: usize,
    /// Queries each origin may start per second (refused at the origin, dropped at receivers
    /// beyond it), and as a burst.
    pub rate_per_sec: u32,
    /// The burst allowed above the rate.
    pub burst: u32,
    /// Serf's gossip interval, the unit of the default timeout.
    pub gossip_interval: Duration,
    /// Serf's `QueryTimeoutMult`.
    pub timeout_mult: u32,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            max_in_flight: 16,
            rate_per_sec: 20,
            burst: 40,
            gossip_interval: Duration::from_millis(200),
            timeout_mult: 16,
        }
    }
}

/// Serf's default timeout for a cluster of `members`: gossip interval × timeout multiplier ×
/// ⌈log10(members + 1)⌉ (3.2 s below 10 members, 6.4 s below 100), capped at
/// [`super::MAX_TIMEOUT`].
pub fn default_timeout(config: &QueryConfig, members: usize) -> Duration {
    let scale = ((members as f64 + 1.0).log10().ceil() as u32).max(1);
    let t = config.gossip_interval * config.timeout_mult.saturating_mul(scale);
    t.min(super::MAX_TIMEOUT)
}
