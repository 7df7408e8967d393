//! The interface between the broadcast protocol and the application data it carries.

use bytes::Bytes;

/// What a handler can say about a message another node asks for (a graft).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Graft {
    /// Here it is.
    Payload(Bytes),
    /// The message is outdated (superseded or expired): there is nothing to send.
    Stale,
    /// The message should be here but is not (evicted): the asker must repair by exchange.
    Lost,
}

/// Application logic of one broadcast: what a message is, how it merges, what is missing.
///
/// Several handlers run side by side on one node, each registered under its own name; every
/// node that takes part registers the same handlers. Handlers run inside the protocol's state
/// machine, so they must not block: keep state in memory and hand deliveries to the
/// application through a channel or queue.
///
/// The shape follows Plumtree's original handler interface: `broadcast_data`, `merge`,
/// `is_stale`, `graft` and `exchange` (split here into [`Handler::summary`] on the requesting
/// side and [`Handler::missing`] on both sides, or a protocol of the handler's own:
/// [`Handler::custom_exchange`]).
pub trait Handler: Send + 'static {
    /// Turns a message the application broadcasts into its id and payload. The id must be
    /// unique per message cluster-wide (for example origin and sequence number).
    fn broadcast_data(&mut self, msg: Bytes) -> (Bytes, Bytes);

    /// Merges a received message. Returns true if it was new here (it is then delivered and
    /// forwarded), false if it was already known or is outdated (a duplicate: the link that
    /// brought it is pruned).
    fn merge(&mut self, id: &Bytes, payload: &Bytes) -> bool;

    /// True if the message is known here or outdated, so an announcement of it needs no graft.
    fn is_stale(&self, id: &Bytes) -> bool;

    /// Another node lacks message `id`: the payload, or why there is none.
    fn graft(&self, id: &Bytes) -> Graft;

    /// Anti-entropy: a compact summary of what this handler holds, sent to a random peer
    /// every exchange tick and to every newly connected peer. `None` (the default) turns
    /// anti-entropy off for this handler.
    fn summary(&self) -> Option<Bytes> {
        None
    }

    /// Anti-entropy by a protocol of the handler's own (Partisan's `exchange(peer)`): true
    /// makes each exchange of this handler an [`crate::broadcast::Output::CustomExchange`]
    /// for the application, which runs it (over named messaging, for example) and reports
    /// what it learnt with [`crate::broadcast::Input::ExchangeDone`]; [`Handler::summary`]
    /// and [`Handler::missing`] are then not used. False (the default) keeps that pair.
    fn custom_exchange(&self) -> bool {
        false
    }

    /// Anti-entropy: messages held here that a peer with `summary` lacks, as (id, payload),
    /// at most `limit` of them. A summary that does not decode gives nothing. It may also
    /// learn from the peer's summary (for example where a newcomer's history starts).
    fn missing(&mut self, summary: &[u8], limit: usize) -> Vec<(Bytes, Bytes)> {
        let _ = (summary, limit);
        Vec::new()
    }
}
