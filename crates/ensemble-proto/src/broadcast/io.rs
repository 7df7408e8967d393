//! The broadcast protocol's inputs, outputs, refusals and counters.

use bytes::Bytes;

use super::*;

/// An input to the broadcast protocol: a command, a change of a connection or a member, a
/// message from a neighbour, or time passing.
///
/// Commands carry a `token` of the caller's choosing; exactly one [`Output::Done`] with it
/// follows, at once.
pub enum Input {
    /// Register `handler` under `name`. Every node should register the same handlers.
    /// Answered with [`Reply::Registered`].
    Register {
        /// The caller's token.
        token: u64,
        /// The handler's name.
        name: String,
        /// The handler.
        handler: Box<dyn Handler>,
    },
    /// Broadcast `msg` through the handler `handler`: it is merged (delivered) here, pushed to
    /// the eager peers of this node's tree and announced to the lazy ones. Answered with
    /// [`Reply::Broadcast`] and the message id.
    Broadcast {
        /// The caller's token.
        token: u64,
        /// The handler's name.
        handler: String,
        /// The message, as the application gives it to the handler.
        msg: Bytes,
    },
    /// Cancel the running exchanges `selector` picks (their replies are then ignored).
    /// Answered with [`Reply::Cancelled`] and how many.
    CancelExchanges {
        /// The caller's token.
        token: u64,
        /// Which exchanges.
        selector: ExchangeSelector,
    },
    /// The application finished custom exchange `session` ([`Output::CustomExchange`]) and
    /// learnt `items` (id, payload): they are merged, delivered and announced like any repair
    /// (at most `exchange_limit` of them, each within `max_payload`). Answered with
    /// [`Reply::ExchangeDone`]: false if the exchange was cancelled or expired (nothing merged).
    ExchangeDone {
        /// The caller's token.
        token: u64,
        /// The exchange.
        session: u64,
        /// What the exchange brought.
        items: Vec<(Bytes, Bytes)>,
    },
    /// A message from a neighbour.
    Message {
        /// The sender.
        from: NodeName,
        /// The message.
        msg: BroadcastMsg,
    },
    /// A connection to this member is open: it can be sent to.
    NeighborUp(NodeName),
    /// The connection to this member closed.
    NeighborDown(NodeName),
    /// This neighbour is a leaf: it is connected to a few members only (a client, as its
    /// server sees it), so the ring layout of a tree may pass it by. It gets payloads of every
    /// root at once from this node, besides the ring layout, until a duplicate prunes it for
    /// a root (it has more than one server). Forgotten when the connection closes.
    Leaf(NodeName),
    /// A member joined or came back (only live members' trees are kept).
    MemberUp(NodeName),
    /// A member went down or left: its tree is dropped.
    MemberDown(NodeName),
    /// The members of the formed cluster this node starts in (see `Stack::formed`): those
    /// `alive` or `suspect` in this view count as up until a [`Input::MemberDown`], as if each
    /// had come with a [`Input::MemberUp`]. The view is kept as given, so it shares its
    /// storage with the other clones of the same view.
    FormedMembers(Box<View>),
    /// Time passed.
    Tick,
}

/// A delivery: a message that was new here and went to its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The handler.
    pub handler: String,
    /// The message id.
    pub id: Bytes,
    /// The tree it came along (its origin for messages that were not repaired).
    pub root: String,
    /// Hops from the root (0 for the node's own broadcasts).
    pub round: u32,
    /// True if it came from anti-entropy rather than along a tree.
    pub repaired: bool,
}

/// An output of the broadcast protocol.
#[derive(Debug)]
pub enum Output {
    /// Send `msg` to neighbour `to`.
    Send {
        /// The neighbour.
        to: NodeName,
        /// The message.
        msg: BroadcastMsg,
    },
    /// A message was delivered to its handler.
    Delivered(Delivery),
    /// Run handler `handler`'s own exchange protocol with neighbour `peer`
    /// ([`Handler::custom_exchange`]); report its outcome with [`Input::ExchangeDone`].
    CustomExchange {
        /// The exchange, as [`Plumtree::exchanges`] lists it.
        session: u64,
        /// The handler.
        handler: String,
        /// The neighbour to exchange with.
        peer: NodeName,
    },
    /// The answer to the command with this token.
    Done {
        /// The caller's token.
        token: u64,
        /// The command's outcome.
        result: Result<Reply, BroadcastError>,
    },
}

/// A command's successful outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The handler is registered.
    Registered,
    /// The message was broadcast, with this id.
    Broadcast(Bytes),
    /// This many exchanges were cancelled.
    Cancelled(usize),
    /// A custom exchange finished: true if it was still running (its items were merged).
    ExchangeDone(bool),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Register { token, name, .. } => f
                .debug_struct("Register")
                .field("token", token)
                .field("name", name)
                .finish_non_exhaustive(),
            Input::Broadcast {
                token,
                handler,
                msg,
            } => f
                .debug_struct("Broadcast")
                .field("token", token)
                .field("handler", handler)
                .field("msg", msg)
                .finish(),
            Input::CancelExchanges { token, selector } => f
                .debug_struct("CancelExchanges")
                .field("token", token)
                .field("selector", selector)
                .finish(),
            Input::ExchangeDone {
                token,
                session,
                items,
            } => f
                .debug_struct("ExchangeDone")
                .field("token", token)
                .field("session", session)
                .field("items", &items.len())
                .finish(),
            Input::Message { from, msg } => f
                .debug_struct("Message")
                .field("from", from)
                .field("msg", msg)
                .finish(),
            Input::NeighborUp(p) => f.debug_tuple("NeighborUp").field(p).finish(),
            Input::NeighborDown(p) => f.debug_tuple("NeighborDown").field(p).finish(),
            Input::Leaf(p) => f.debug_tuple("Leaf").field(p).finish(),
            Input::MemberUp(m) => f.debug_tuple("MemberUp").field(m).finish(),
            Input::MemberDown(m) => f.debug_tuple("MemberDown").field(m).finish(),
            Input::FormedMembers(v) => f.debug_tuple("FormedMembers").field(&v.len()).finish(),
            Input::Tick => f.write_str("Tick"),
        }
    }
}

/// Why a broadcast or registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// No handler is registered under this name.
    #[error("no broadcast handler is registered under {0:?}")]
    UnknownHandler(String),
    /// A handler is already registered under this name.
    #[error("a broadcast handler is already registered under {0:?}")]
    DuplicateHandler(String),
    /// The payload exceeds [`BroadcastConfig::max_payload`].
    #[error("broadcast payload of {size} bytes exceeds the limit of {max} bytes (broadcast max_payload)")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// Counters of the broadcast protocol since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Messages broadcast from this node.
    pub broadcasts: u64,
    /// Messages delivered here (own broadcasts included).
    pub delivered: u64,
    /// Payloads received that were already known.
    pub duplicates: u64,
    /// Messages asked for by graft.
    pub grafts: u64,
    /// Prunes sent.
    pub prunes: u64,
    /// Announcements dropped because a peer's lazy queue was full.
    pub lazy_shed: u64,
    /// Messages for handlers not registered here.
    pub unknown_handler: u64,
    /// Grafts this node could not answer (message evicted).
    pub lost: u64,
    /// Messages delivered through anti-entropy.
    pub repaired: u64,
    /// Exchanges started.
    pub exchanges: u64,
    /// Payloads received over `max_payload`, refused.
    pub oversized: u64,
}
