//! Messages of the broadcast protocol (Plumtree).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An `ihave` entry: "I hold message `id` of handler `handler`, from the tree rooted at `root`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The handler the message belongs to.
    pub handler: String,
    /// The message id, as the handler made it.
    pub id: Bytes,
    /// The tree the message travels on (its origin, or the node that repaired it).
    pub root: String,
    /// Hops from the root to the announcing node.
    pub round: u32,
}

/// Messages of the broadcast protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BroadcastMsg {
    /// A payload pushed along an eager link.
    Gossip {
        /// The handler the message belongs to.
        handler: String,
        /// The message id.
        id: Bytes,
        /// The payload.
        payload: Bytes,
        /// The tree the message travels on.
        root: String,
        /// Hops from the root to the receiver.
        round: u32,
        /// End (a ring position) of the interval the receiver covers; None for a payload
        /// sent on request (graft), which the receiver does not forward beyond its own
        /// interval.
        limit: Option<u64>,
    },
    /// Lazy push: ids the sender holds, batched per lazy tick; answered by `IHaveAck`.
    IHave {
        /// Numbers the batch, so the ack clears exactly what was announced.
        batch: u64,
        /// The announcements.
        items: Vec<Announcement>,
    },
    /// Acknowledges an `IHave` batch.
    IHaveAck {
        /// The batch acknowledged.
        batch: u64,
    },
    /// Asks for missing messages and turns the link eager for their trees (all the grafts
    /// due at one time towards one peer travel together).
    Graft {
        /// The messages asked for, as they were announced.
        items: Vec<Announcement>,
    },
    /// A duplicate arrived on this link: turn it lazy for the tree rooted at `root`.
    Prune {
        /// The tree.
        root: String,
    },
    /// Anti-entropy, first step: the sender's summary of what its handler holds.
    Exchange {
        /// Matches the reply to the request.
        session: u64,
        /// The handler exchanging.
        handler: String,
        /// The handler's summary.
        summary: Bytes,
    },
    /// Anti-entropy, second step: what the requester lacks, and the replier's own summary.
    ExchangeReply {
        /// The request's session.
        session: u64,
        /// The handler exchanging.
        handler: String,
        /// The replier's summary.
        summary: Bytes,
        /// Messages the requester lacks, as (id, payload).
        items: Vec<(Bytes, Bytes)>,
    },
    /// Anti-entropy, last step: what the replier lacks.
    ExchangeItems {
        /// The handler exchanging.
        handler: String,
        /// Messages the replier lacks, as (id, payload).
        items: Vec<(Bytes, Bytes)>,
    },
}

impl BroadcastMsg {
    /// A short name of the message's kind, for counters (distinct from membership's).
    pub fn kind(&self) -> &'static str {
        match self {
            BroadcastMsg::Gossip { .. } => "payload",
            BroadcastMsg::IHave { .. } => "ihave",
            BroadcastMsg::IHaveAck { .. } => "ihave_ack",
            BroadcastMsg::Graft { .. } => "graft",
            BroadcastMsg::Prune { .. } => "prune",
            BroadcastMsg::Exchange { .. } => "exchange",
            BroadcastMsg::ExchangeReply { .. } => "exchange_reply",
            BroadcastMsg::ExchangeItems { .. } => "exchange_items",
        }
    }

    /// True for lazy traffic, which is shed first when a peer is slow.
    pub fn is_lazy(&self) -> bool {
        matches!(
            self,
            BroadcastMsg::IHave { .. } | BroadcastMsg::IHaveAck { .. }
        )
    }
}
