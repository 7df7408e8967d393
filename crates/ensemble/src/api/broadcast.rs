//! Broadcast on a [`Node`]: Plumtree handlers, Serf-style user events, introspection.

use bytes::Bytes;
use ensemble_proto::broadcast::events::{EventInput, UserEvent, USER_EVENTS};
use ensemble_proto::broadcast::{ExchangeSelector, Handler};
use ensemble_proto::member::validate_name;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tracing::warn;

use crate::command::{BroadcastCommand, BroadcastPeers, BroadcastStatus, BroadcastTree, Command};
use crate::error::Error;
use crate::node::Node;
use std::time::Duration;

/// Longest user-event name, in bytes.
pub const MAX_EVENT_NAME: usize = 128;

impl Node {
    /// Broadcasts `msg` to every member through the handler registered as `handler` (on every
    /// node). It is merged here first. Returns the message id the handler gave it.
    ///
    /// Fails with [`Error::Broadcast`] if no such handler is registered or the message is
    /// larger than the broadcast `max_payload` (64 KiB by default); nothing is sent then.
    pub async fn broadcast(&self, handler: &str, msg: impl Into<Bytes>) -> Result<Bytes, Error> {
        let handler = handler.to_owned();
        let msg = msg.into();
        self.call(|reply| {
            Command::Broadcast(BroadcastCommand::Broadcast {
                handler,
                msg,
                reply,
            })
        })
        .await?
        .map_err(Error::Broadcast)
    }

    /// Registers a broadcast handler under `name`. Register the same handlers on every node;
    /// messages for a name that is not registered are counted and dropped.
    pub async fn register_handler(&self, name: &str, handler: impl Handler) -> Result<(), Error> {
        let name = name.to_owned();
        let handler: Box<dyn Handler> = Box::new(handler);
        self.call(|reply| {
            Command::Broadcast(BroadcastCommand::Register {
                name,
                handler,
                reply,
            })
        })
        .await?
        .map_err(Error::Broadcast)
    }

    /// Sends a user event (Serf style) to every member, this node included. Every node
    /// delivers it once, in order with the other events of this node, to
    /// [`Node::user_events`] subscribers.
    pub async fn send_event(&self, name: &str, payload: impl Into<Bytes>) -> Result<(), Error> {
        if name.is_empty() || name.len() > MAX_EVENT_NAME || name.chars().any(char::is_control) {
            return Err(Error::Config(format!(
                "event name {name:?} must be 1 to {MAX_EVENT_NAME} bytes without control characters"
            )));
        }
        let input = EventInput {
            name: name.to_owned(),
            payload: payload.into(),
        };
        self.broadcast(USER_EVENTS, input.encode())
            .await
            .map(|_| ())
    }

    /// A stream of user events as they are delivered here, from now on. A subscriber that
    /// falls more than 4096 events behind skips the oldest (and a warning is logged).
    pub fn user_events(&self) -> impl Stream<Item = UserEvent> + Send + Unpin + 'static {
        BroadcastStream::new(self.user_events_receiver())
            .filter_map(|e| async move {
                match e {
                    Ok(e) => Some(e),
                    Err(err) => {
                        warn!("user event subscriber fell behind: {err}");
                        None
                    }
                }
            })
            .boxed()
    }

    fn user_events_receiver(&self) -> broadcast::Receiver<UserEvent> {
        self.inner.user_events.resubscribe()
    }

    /// The broadcast state: members, neighbours, the eager and lazy peers for the tree of
    /// `root` (this node's own tree if None), running exchanges, counters.
    pub async fn broadcast_status(&self, root: Option<&str>) -> Result<BroadcastStatus, Error> {
        let root = root.map(str::to_owned);
        self.call(|reply| Command::Broadcast(BroadcastCommand::Status { root, reply }))
            .await
    }

    /// Member `node`'s eager and lazy peers for the tree of `root` (None: `node`'s own tree)
    /// and its running exchanges, as that node sees them (Partisan's `debug_get_peers(node,
    /// root)` and `exchanges(node)`). This node answers at once; another live member is asked
    /// over the mesh. Fails with [`Error::UnknownNode`] if `node` is not a live member and
    /// [`Error::Timeout`] if it does not answer within `timeout`; a `root` that cannot name a
    /// member is refused with [`Error::Member`].
    pub async fn broadcast_peers(
        &self,
        node: &str,
        root: Option<&str>,
        timeout: Duration,
    ) -> Result<BroadcastPeers, Error> {
        if let Some(root) = root {
            validate_name(root)?;
        }
        let node = node.to_owned();
        let root = root.map(str::to_owned);
        self.call(|reply| {
            Command::Broadcast(BroadcastCommand::Peers {
                node,
                root,
                timeout,
                reply,
            })
        })
        .await?
    }

    /// The tree of `root` as every live member sees it (Partisan's `debug_get_tree(root)`):
    /// each member's eager and lazy peers for `root`, gathered through the cluster. Members
    /// that do not answer within `timeout` are listed in [`BroadcastTree::unanswered`].
    pub async fn broadcast_tree(
        &self,
        root: &str,
        timeout: Duration,
    ) -> Result<BroadcastTree, Error> {
        validate_name(root)?;
        let root = root.to_owned();
        self.call(|reply| {
            Command::Broadcast(BroadcastCommand::Tree {
                root,
                timeout,
                reply,
            })
        })
        .await
    }

    /// Cancels running exchanges; returns how many.
    pub async fn cancel_exchanges(&self, selector: ExchangeSelector) -> Result<usize, Error> {
        self.call(|reply| Command::Broadcast(BroadcastCommand::CancelExchanges { selector, reply }))
            .await
    }
}
