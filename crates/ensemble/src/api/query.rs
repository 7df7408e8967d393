//! Queries on a [`Node`] (Serf's `query`): ask the selected members a question and gather
//! their acks and answers until a timeout; answer other members' queries with a handler.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::query::{Incoming, QueryEvent, QueryFilter};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::command::{Command, DriverMsg, QueryCommand};
use crate::error::Error;
use crate::node::Node;

/// Queries waiting for a handler of one name (more are dropped while it is busy).
const HANDLER_QUEUE: usize = 64;

/// Who a query asks and how long it waits ([`Node::query`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Member names; empty: every member.
    pub nodes: Vec<String>,
    /// Tag key and a regular expression its value must match (unanchored, as in Serf).
    pub tags: Vec<(String, String)>,
    /// How long to wait for answers (None: Serf's default for the cluster's size).
    pub timeout: Option<Duration>,
    /// Do not ask the selected members for an ack.
    pub no_ack: bool,
}

impl Node {
    /// Starts a query: it reaches every member, and each one the options select acks it
    /// (unless `no_ack`) and hands it to its handler for `name`
    /// ([`Node::register_query_handler`]). The stream yields one [`QueryEvent::Ack`] and at
    /// most one [`QueryEvent::Response`] per member, then [`QueryEvent::Done`] at the timeout,
    /// and ends.
    ///
    /// Fails with [`Error::Query`] if the name, payload, filter or timeout is over its limit
    /// (see docs/QUERIES.md) or this node runs too many queries; nothing is sent then.
    pub async fn query(
        &self,
        name: &str,
        payload: impl Into<Bytes>,
        options: QueryOptions,
    ) -> Result<impl Stream<Item = QueryEvent> + Send + Unpin + 'static, Error> {
        let (events, rx) = mpsc::unbounded_channel();
        let name = name.to_owned();
        let payload = payload.into();
        let filter = QueryFilter {
            nodes: options.nodes,
            tags: options.tags,
        };
        self.call(|reply| {
            Command::Query(QueryCommand::Start {
                name,
                payload,
                filter,
                timeout: options.timeout,
                want_ack: !options.no_ack,
                events,
                reply,
            })
        })
        .await??;
        Ok(UnboundedReceiverStream::new(rx))
    }

    /// Answers queries named `name` that reach this node with `handler`: it gets the query
    /// (its id, name, payload and deadline) and returns the response, or None for none. A
    /// response after the deadline or over the 8 KiB limit is dropped. Each query runs in
    /// its own task; up to 64 wait for a busy handler, more are dropped.
    ///
    /// Fails with [`Error::DuplicateName`] if `name` has a handler already.
    pub async fn register_query_handler<F, Fut>(&self, name: &str, handler: F) -> Result<(), Error>
    where
        F: Fn(Incoming) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Bytes>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Incoming>(HANDLER_QUEUE);
        let owned = name.to_owned();
        let registered = self
            .call(|reply| {
                Command::Query(QueryCommand::RegisterHandler {
                    name: owned,
                    handler: tx,
                    reply,
                })
            })
            .await?;
        if !registered {
            return Err(Error::DuplicateName(name.to_owned()));
        }
        // The task holds no handle on the node, so it does not keep it running: it ends when
        // the driver drops the sender.
        let driver = self.driver_sender().downgrade();
        tokio::spawn(async move {
            while let Some(incoming) = rx.recv().await {
                let deadline = tokio::time::Instant::from_std(incoming.deadline);
                let query = incoming.query.clone();
                let answer = handler(incoming);
                let driver = driver.clone();
                tokio::spawn(async move {
                    let Ok(Some(payload)) = tokio::time::timeout_at(deadline, answer).await else {
                        return;
                    };
                    if let Some(driver) = driver.upgrade() {
                        let respond = QueryCommand::Respond { query, payload };
                        let _ = driver
                            .send(DriverMsg::Command(Command::Query(respond)))
                            .await;
                    }
                });
            }
        });
        Ok(())
    }
}
