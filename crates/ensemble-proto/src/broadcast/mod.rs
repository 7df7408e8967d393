//! Plumtree epidemic broadcast: reliable cluster-wide broadcast with near-minimal messages.
//!
//! Every node keeps, per tree root (the node a message started from), **eager** peers that get
//! payloads at once and **lazy** peers that only get `ihave` announcements, batched every lazy
//! tick and kept per peer until acked. A duplicate payload prunes its link to lazy; an
//! announcement of a missing message grafts the link back to eager after `graft_timeout`.
//! Periodic anti-entropy (`exchange` with a random neighbour, and with every new neighbour)
//! repairs whatever the trees missed, for example across a healed partition.
//!
//! Trees start near their optimum: a root pushes to all its neighbours; in a full mesh a node
//! that got a message straight from its root forwards nothing (the root reached everyone), and
//! in a partial view a node forwards to every neighbour until duplicates prune the extra links.
//! Each node also announces everything it receives to `lazy_fanout` fixed neighbours (its
//! successors on the hash ring), which keeps the repair paths connected at a cost of one
//! `ihave` per such neighbour per lazy tick, however many messages flow.
//!
//! Application data goes through [`Handler`]s registered under names; see [`handler`].

mod config;
pub mod events;
mod exchange;
pub mod handler;
mod io;
mod lazy;
pub mod msg;
#[cfg(test)]
mod tests;
mod tree;

use crate::member::NodeName;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use crate::view::{position, View};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;

pub use config::{BroadcastConfig, MAX_INITIAL_PEERS};
pub use exchange::{ExchangeInfo, ExchangeSelector};
pub use handler::{Graft, Handler};
pub use io::{BroadcastError, Delivery, Input, Output, Reply, Stats};
pub use msg::{Announcement, BroadcastMsg};

use lazy::{Missing, Outstanding};
use tree::Tree;

/// The Plumtree broadcast protocol of one node.
pub struct Plumtree {
    config: BroadcastConfig,
    me: String,
    rng: SmallRng,
    handlers: BTreeMap<String, Box<dyn Handler>>,
    /// Open connections.
    neighbours: BTreeSet<String>,
    /// Neighbours the ring layout may pass by (see [`Input::Leaf`]).
    leaves: BTreeSet<String>,
    /// Ring positions of the live members other than this node: a hash, not the name, because
    /// a simulated cluster holds n^2 of them (a collision only keeps a dead root's tree a
    /// little longer).
    members: BTreeSet<u64>,
    /// The members this node started with in a formed cluster ([`Input::FormedMembers`]),
    /// shared with the other nodes' views, and the positions of those gone since.
    formed: Option<(View, BTreeSet<u64>)>,
    /// Neighbours that get every announcement (ring successors), recomputed on change.
    base_lazy: Vec<String>,
    trees: HashMap<String, Tree>,
    /// Announcements waiting for the next lazy tick, per peer.
    lazy_queue: BTreeMap<String, VecDeque<Announcement>>,
    /// The `ihave` batch sent to each peer and not yet acked.
    outstanding: BTreeMap<String, Outstanding>,
    /// Announced messages this node lacks, by (handler, id).
    missing: BTreeMap<(String, Bytes), Missing>,
    exchanges: BTreeMap<u64, ExchangeInfo>,
    /// Messages anti-entropy delivered lately: their tree payload may still be on its way,
    /// and that duplicate must not prune the tree (oldest first, bounded).
    repaired_recent: VecDeque<(String, Bytes)>,
    next_batch: u64,
    next_session: u64,
    next_lazy: Instant,
    next_exchange: Instant,
    outputs: VecDeque<Output>,
    stats: Stats,
}

impl std::fmt::Debug for Plumtree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plumtree")
            .field("me", &self.me)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("neighbours", &self.neighbours)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Plumtree {
    /// The broadcast protocol of node `me`, with no neighbours and no handlers yet.
    pub fn new(config: BroadcastConfig, me: String, rng_seed: u64, now: Instant) -> Self {
        Plumtree {
            next_lazy: now + config.lazy_tick,
            next_exchange: now + config.exchange_interval,
            config,
            me,
            rng: SmallRng::seed_from_u64(rng_seed),
            handlers: BTreeMap::new(),
            neighbours: BTreeSet::new(),
            leaves: BTreeSet::new(),
            members: BTreeSet::new(),
            formed: None,
            base_lazy: Vec::new(),
            trees: HashMap::new(),
            lazy_queue: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            missing: BTreeMap::new(),
            exchanges: BTreeMap::new(),
            repaired_recent: VecDeque::new(),
            next_batch: 1,
            next_session: 1,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    fn register(&mut self, name: &str, handler: Box<dyn Handler>) -> Result<(), BroadcastError> {
        if self.handlers.contains_key(name) {
            return Err(BroadcastError::DuplicateHandler(name.to_owned()));
        }
        self.handlers.insert(name.to_owned(), handler);
        Ok(())
    }

    /// Names of the registered handlers.
    pub fn handlers(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    fn broadcast(&mut self, handler: &str, msg: Bytes) -> Result<Bytes, BroadcastError> {
        let max = self.config.max_payload;
        if msg.len() > max {
            return Err(BroadcastError::TooLarge {
                size: msg.len(),
                max,
            });
        }
        let h = self
            .handlers
            .get_mut(handler)
            .ok_or_else(|| BroadcastError::UnknownHandler(handler.to_owned()))?;
        let (id, payload) = h.broadcast_data(msg);
        if payload.len() > max {
            return Err(BroadcastError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        h.merge(&id, &payload);
        self.stats.broadcasts += 1;
        let root = self.me.clone();
        self.deliver(handler, &id, &root, 0, false);
        self.forward(handler, &id, &payload, &root, 0, None, None);
        Ok(id)
    }

    /// Feeds one input; see [`Input`] for what each does.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Register {
                token,
                name,
                handler,
            } => {
                let result = self.register(&name, handler).map(|()| Reply::Registered);
                self.outputs.push_back(Output::Done { token, result });
            }
            Input::Broadcast {
                token,
                handler,
                msg,
            } => {
                // The answer comes before the deliveries and sends it causes.
                let at = self.outputs.len();
                let result = self.broadcast(&handler, msg).map(Reply::Broadcast);
                self.outputs.insert(at, Output::Done { token, result });
            }
            Input::CancelExchanges { token, selector } => {
                let n = self.cancel_exchanges(&selector);
                let result = Ok(Reply::Cancelled(n));
                self.outputs.push_back(Output::Done { token, result });
            }
            Input::ExchangeDone {
                token,
                session,
                items,
            } => {
                let done = self.exchange_done(session, items);
                let result = Ok(Reply::ExchangeDone(done));
                self.outputs.push_back(Output::Done { token, result });
            }
            Input::Message { from, msg } => self.on_message(now, from, msg),
            Input::NeighborUp(p) => self.neighbor_up(now, p),
            Input::NeighborDown(p) => self.neighbor_down(&p),
            Input::Leaf(p) => {
                if self.neighbours.contains(&p) {
                    self.leaves.insert(p);
                }
            }
            Input::MemberUp(m) => {
                if m != self.me {
                    self.members.insert(position(&m));
                }
                if let Some((_, gone)) = &mut self.formed {
                    gone.remove(&position(&m));
                }
            }
            Input::MemberDown(m) => {
                self.members.remove(&position(&m));
                if let Some((_, gone)) = &mut self.formed {
                    gone.insert(position(&m));
                }
                self.trees.remove(&m);
            }
            Input::FormedMembers(view) => self.formed = Some((*view, BTreeSet::new())),
            Input::Tick => self.tick(now),
        }
    }

    /// The next output to carry out, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next wanted (always: the lazy and exchange ticks run).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_lazy.min(self.next_exchange);
        for m in self.missing.values() {
            t = t.min(m.due);
        }
        Some(t)
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.me
    }

    /// Neighbours (open connections) the protocol sends to.
    pub fn neighbours(&self) -> impl Iterator<Item = &str> {
        self.neighbours.iter().map(String::as_str)
    }

    /// This node's (eager, lazy) peers for the tree rooted at `root`: the neighbours it
    /// pushes payloads of that root to, and those it only announces them to.
    pub fn peers(&self, root: &str) -> (Vec<String>, Vec<String>) {
        let eager: Vec<String> = self
            .children(root, None, None)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let mut lazy: BTreeSet<String> = self.announce_to(root, &eager).into_iter().collect();
        if let Some(t) = self.trees.get(root) {
            lazy.extend(t.pruned.iter().cloned());
        }
        lazy.extend(self.initially_lazy(root, &eager));
        (eager, lazy.into_iter().collect())
    }

    /// Where announcements of a message of `root` go: the ring successors not pushed to,
    /// and the initial lazy peers.
    fn announce_to(&self, root: &str, pushed: &[String]) -> Vec<String> {
        let mut to: Vec<String> = self
            .base_lazy
            .iter()
            .filter(|p| *p != root && !pushed.contains(p))
            .cloned()
            .collect();
        for p in self.initially_lazy(root, pushed) {
            if !to.contains(&p) {
                to.push(p);
            }
        }
        to
    }

    /// The initial lazy peers that are neighbours and not pushed payloads of `root`.
    fn initially_lazy(&self, root: &str, pushed: &[String]) -> Vec<String> {
        (self.config.initial_lazy.iter())
            .filter(|p| *p != root && self.neighbours.contains(*p) && !pushed.contains(p))
            .cloned()
            .collect()
    }

    /// Roots of the trees this node keeps adjustments or an interval for.
    pub fn roots(&self) -> impl Iterator<Item = &str> {
        self.trees.keys().map(String::as_str)
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The settings in use.
    pub fn config(&self) -> &BroadcastConfig {
        &self.config
    }

    /// True for this node and the live members: only their trees are kept.
    fn is_member(&self, root: &str) -> bool {
        let pos = position(root);
        let formed = self.formed.as_ref().is_some_and(|(view, gone)| {
            !gone.contains(&pos) && view.get(root).is_some_and(|m| m.status.is_up())
        });
        root == self.me || self.members.contains(&pos) || formed
    }

    fn send(&mut self, to: &str, msg: BroadcastMsg) {
        self.outputs.push_back(Output::Send {
            to: to.to_owned(),
            msg,
        });
    }

    fn deliver(&mut self, handler: &str, id: &Bytes, root: &str, round: u32, repaired: bool) {
        self.stats.delivered += 1;
        if repaired {
            self.stats.repaired += 1;
        }
        self.missing.remove(&(handler.to_owned(), id.clone()));
        self.outputs.push_back(Output::Delivered(Delivery {
            handler: handler.to_owned(),
            id: id.clone(),
            root: root.to_owned(),
            round,
            repaired,
        }));
    }

    fn on_message(&mut self, now: Instant, from: String, msg: BroadcastMsg) {
        match msg {
            BroadcastMsg::Gossip {
                handler,
                id,
                payload,
                root,
                round,
                limit,
            } => self.on_gossip(from, handler, id, payload, root, round, limit),
            BroadcastMsg::Prune { root } => self.add_lazy(&root, &from),
            BroadcastMsg::IHave { batch, items } => self.on_ihave(now, &from, batch, items),
            BroadcastMsg::IHaveAck { batch } => self.on_ihave_ack(&from, batch),
            BroadcastMsg::Graft { mut items } => {
                // Each message once, and at most `exchange_bytes` of payloads per graft: one
                // frame must not make this node queue without bound.
                items.sort_by(|a, b| (&a.handler, &a.id).cmp(&(&b.handler, &b.id)));
                items.dedup_by(|a, b| a.handler == b.handler && a.id == b.id);
                let mut budget = self.config.exchange_bytes;
                for a in items {
                    let sent = self.on_graft(&from, a);
                    budget = budget.saturating_sub(sent);
                    if budget == 0 {
                        break;
                    }
                }
            }
            BroadcastMsg::Exchange {
                session,
                handler,
                summary,
            } => self.on_exchange(&from, session, handler, &summary),
            BroadcastMsg::ExchangeReply {
                session,
                handler,
                summary,
                items,
            } => self.on_exchange_reply(&from, session, handler, &summary, items),
            BroadcastMsg::ExchangeItems { handler, items } => {
                self.merge_repaired(&from, &handler, items)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_gossip(
        &mut self,
        from: String,
        handler: String,
        id: Bytes,
        payload: Bytes,
        root: String,
        round: u32,
        limit: Option<u64>,
    ) {
        if payload.len() > self.config.max_payload {
            // Nothing this build would send: refuse it rather than store it.
            self.stats.oversized += 1;
            return;
        }
        let Some(h) = self.handlers.get_mut(&handler) else {
            self.stats.unknown_handler += 1;
            return;
        };
        if h.merge(&id, &payload) {
            if limit.is_some() && root != self.me && self.is_member(&root) {
                self.tree_mut(&root).limit = limit;
            }
            self.deliver(&handler, &id, &root, round, false);
            self.forward(&handler, &id, &payload, &root, round, Some(&from), limit);
        } else {
            self.stats.duplicates += 1;
            let key = (handler, id);
            if let Some(i) = self.repaired_recent.iter().position(|k| *k == key) {
                // Anti-entropy overtook the tree: the tree link is fine.
                self.repaired_recent.remove(i);
                return;
            }
            self.stats.prunes += 1;
            self.add_lazy(&root, &from);
            self.send(&from, BroadcastMsg::Prune { root });
        }
    }

    /// Eager push to the children in the tree of `root`, lazy push to the ring successors.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        handler: &str,
        id: &Bytes,
        payload: &Bytes,
        root: &str,
        round: u32,
        except: Option<&str>,
        limit: Option<u64>,
    ) {
        let children = self.children(root, limit, except);
        for (p, limit) in &children {
            self.send(
                p,
                BroadcastMsg::Gossip {
                    handler: handler.to_owned(),
                    id: id.clone(),
                    payload: payload.clone(),
                    root: root.to_owned(),
                    round: round.saturating_add(1),
                    limit: *limit,
                },
            );
        }
        let pushed: Vec<String> = children.into_iter().map(|(p, _)| p).collect();
        let a = Announcement {
            handler: handler.to_owned(),
            id: id.clone(),
            root: root.to_owned(),
            round,
        };
        for p in self.announce_to(root, &pushed) {
            if Some(p.as_str()) != except {
                self.announce(&p, a.clone());
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        self.graft_due(now);
        if now >= self.next_lazy {
            self.next_lazy = now + self.config.lazy_tick;
            self.lazy_tick(now);
        }
        if now >= self.next_exchange {
            self.next_exchange = now + self.config.exchange_interval;
            self.exchange_tick(now);
        }
    }
}
