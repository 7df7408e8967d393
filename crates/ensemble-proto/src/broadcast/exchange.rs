//! Anti-entropy: exchanges of handler summaries that repair whatever the trees missed.

use std::time::Instant;

use bytes::Bytes;
use rand::seq::IteratorRandom;

use super::{Announcement, BroadcastMsg, Output, Plumtree};

/// An exchange this node started and that is waiting for its reply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExchangeInfo {
    /// Session number.
    pub session: u64,
    /// The neighbour exchanging with this node.
    pub peer: String,
    /// The handler exchanging.
    pub handler: String,
    /// When it started.
    #[serde(skip)]
    pub started: Option<Instant>,
}

/// Which running exchanges to cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeSelector {
    /// Every one.
    All,
    /// Those with this peer.
    Peer(String),
    /// Those of this handler.
    Handler(String),
    /// The one with this session number.
    Session(u64),
}

impl ExchangeSelector {
    fn matches(&self, e: &ExchangeInfo) -> bool {
        match self {
            ExchangeSelector::All => true,
            ExchangeSelector::Peer(p) => e.peer == *p,
            ExchangeSelector::Handler(h) => e.handler == *h,
            ExchangeSelector::Session(s) => e.session == *s,
        }
    }
}

/// Repaired messages remembered so that their late tree payload does not prune.
const REPAIRED_RECENT: usize = 1024;

/// Keeps the first items whose payloads fit in `max` bytes (at least one).
fn trim(mut items: Vec<(Bytes, Bytes)>, max: usize) -> Vec<(Bytes, Bytes)> {
    let mut total = 0;
    let keep = items
        .iter()
        .take_while(|(id, p)| {
            total += id.len() + p.len();
            total <= max
        })
        .count()
        .max(1);
    items.truncate(keep);
    items
}

impl Plumtree {
    /// Exchanges now running.
    pub fn exchanges(&self) -> Vec<ExchangeInfo> {
        self.exchanges.values().cloned().collect()
    }

    /// Cancels the running exchanges `selector` picks (their replies are then ignored);
    /// returns how many.
    pub(super) fn cancel_exchanges(&mut self, selector: &ExchangeSelector) -> usize {
        let before = self.exchanges.len();
        self.exchanges.retain(|_, e| !selector.matches(e));
        before - self.exchanges.len()
    }

    /// Starts an exchange with `peer` for every handler that does anti-entropy.
    pub(super) fn start_exchanges(&mut self, now: Instant, peer: &str) {
        // None: a custom exchange, run by the application.
        let summaries: Vec<(String, Option<Bytes>)> = (self.handlers.iter())
            .filter_map(|(name, h)| {
                let summary = if h.custom_exchange() {
                    None
                } else {
                    Some(h.summary()?)
                };
                Some((name.clone(), summary))
            })
            .collect();
        for (handler, summary) in summaries {
            let session = self.next_session;
            self.next_session += 1;
            self.stats.exchanges += 1;
            self.exchanges.insert(
                session,
                ExchangeInfo {
                    session,
                    peer: peer.to_owned(),
                    handler: handler.clone(),
                    started: Some(now),
                },
            );
            let Some(summary) = summary else {
                let peer = peer.to_owned();
                let out = Output::CustomExchange {
                    session,
                    handler,
                    peer,
                };
                self.outputs.push_back(out);
                continue;
            };
            self.send(
                peer,
                BroadcastMsg::Exchange {
                    session,
                    handler,
                    summary,
                },
            );
        }
    }

    /// The application finished custom exchange `session` with `items`: merged like any
    /// repair, if the exchange still runs. Returns whether it did.
    pub(super) fn exchange_done(&mut self, session: u64, mut items: Vec<(Bytes, Bytes)>) -> bool {
        let Some(e) = self.exchanges.remove(&session) else {
            return false;
        };
        let max = self.config.max_payload;
        items.truncate(self.config.exchange_limit);
        let before = items.len();
        items.retain(|(id, p)| id.len() + p.len() <= max);
        self.stats.oversized += (before - items.len()) as u64;
        self.merge_repaired(&e.peer, &e.handler, items);
        true
    }

    /// Drops expired exchanges and starts one with a random neighbour.
    pub(super) fn exchange_tick(&mut self, now: Instant) {
        let timeout = self.config.exchange_timeout;
        self.exchanges
            .retain(|_, e| e.started.is_some_and(|s| s + timeout > now));
        let peer = self.neighbours.iter().choose(&mut self.rng).cloned();
        if let Some(peer) = peer {
            self.start_exchanges(now, &peer);
        }
    }

    pub(super) fn on_exchange(
        &mut self,
        from: &str,
        session: u64,
        handler: String,
        summary: &[u8],
    ) {
        let limit = self.config.exchange_limit;
        let Some(h) = self.handlers.get_mut(&handler) else {
            self.stats.unknown_handler += 1;
            return;
        };
        let items = trim(h.missing(summary, limit), self.config.exchange_bytes);
        let summary = h.summary().unwrap_or_default();
        self.send(
            from,
            BroadcastMsg::ExchangeReply {
                session,
                handler,
                summary,
                items,
            },
        );
    }

    pub(super) fn on_exchange_reply(
        &mut self,
        from: &str,
        session: u64,
        handler: String,
        summary: &[u8],
        items: Vec<(Bytes, Bytes)>,
    ) {
        // Cancelled or expired: ignore.
        if self.exchanges.remove(&session).is_none() {
            return;
        }
        let limit = self.config.exchange_limit;
        let Some(h) = self.handlers.get_mut(&handler) else {
            return;
        };
        // Learn from the peer's summary before merging what it sent.
        let theirs = trim(h.missing(summary, limit), self.config.exchange_bytes);
        self.merge_repaired(from, &handler, items);
        if !theirs.is_empty() {
            self.send(
                from,
                BroadcastMsg::ExchangeItems {
                    handler,
                    items: theirs,
                },
            );
        }
    }

    /// Merges messages from anti-entropy: new ones are delivered and announced to the ring
    /// successors (the trees are left alone: these links did not carry them).
    pub(super) fn merge_repaired(&mut self, from: &str, handler: &str, items: Vec<(Bytes, Bytes)>) {
        let Some(h) = self.handlers.get_mut(handler) else {
            self.stats.unknown_handler += 1;
            return;
        };
        let new: Vec<Bytes> = items
            .into_iter()
            .filter(|(id, payload)| h.merge(id, payload))
            .map(|(id, _)| id)
            .collect();
        let me = self.me.clone();
        let successors: Vec<String> = self
            .base_lazy
            .iter()
            .filter(|p| *p != from)
            .cloned()
            .collect();
        for id in new {
            self.deliver(handler, &id, &me, 0, true);
            if self.repaired_recent.len() >= REPAIRED_RECENT {
                self.repaired_recent.pop_front();
            }
            self.repaired_recent
                .push_back((handler.to_owned(), id.clone()));
            for p in &successors {
                let a = Announcement {
                    handler: handler.to_owned(),
                    id: id.clone(),
                    root: me.clone(),
                    round: 0,
                };
                self.announce(p, a);
            }
        }
    }
}
