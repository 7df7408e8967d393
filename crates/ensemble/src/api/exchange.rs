//! Custom anti-entropy on a [`Node`]: a handler that runs its own exchange protocol
//! ([`crate::Handler::custom_exchange`]) gets each exchange as an [`ExchangeRequest`], runs it
//! over named messaging, and reports what it learnt.

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::command::{BroadcastCommand, Command, ExchangeRequest};
use crate::error::Error;
use crate::node::Node;

/// Exchanges waiting for the application, per handler; more are not run (and logged).
const PENDING_EXCHANGES: usize = 64;

impl Node {
    /// The custom exchanges of the handler registered as `handler` (one that returns true
    /// from [`crate::Handler::custom_exchange`]), from now on: each names the neighbour to
    /// exchange with. Run it (for example with [`Node::forward_message`] to a name the
    /// handler's application registered on every node) and report the outcome with
    /// [`Node::finish_exchange`]. A later call replaces the earlier stream. Exchanges that
    /// nobody runs, or that are not finished within `exchange_timeout`, expire; more than 64
    /// waiting are not run.
    pub async fn custom_exchanges(
        &self,
        handler: &str,
    ) -> Result<impl Stream<Item = ExchangeRequest> + Send + Unpin + 'static, Error> {
        let (tx, rx) = mpsc::channel(PENDING_EXCHANGES);
        let handler = handler.to_owned();
        self.call(|reply| {
            Command::Broadcast(BroadcastCommand::RunExchanges { handler, tx, reply })
        })
        .await?;
        Ok(ReceiverStream::new(rx))
    }

    /// Finishes custom exchange `session` with the messages it brought, as (id, payload):
    /// they are merged through the handler, delivered and announced like any repair (at most
    /// `exchange_limit` of them, each within `max_payload`). Returns false if the exchange
    /// was cancelled or had expired: nothing is merged then.
    pub async fn finish_exchange(
        &self,
        session: u64,
        items: Vec<(Bytes, Bytes)>,
    ) -> Result<bool, Error> {
        self.call(|reply| {
            Command::Broadcast(BroadcastCommand::ExchangeDone {
                session,
                items,
                reply,
            })
        })
        .await
    }
}
