//! Lazy push: announcements batched per peer, their acks, and grafts of missing messages.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::{Announcement, BroadcastMsg, Graft, Plumtree};

/// An `ihave` batch waiting for its ack.
#[derive(Debug)]
pub(super) struct Outstanding {
    batch: u64,
    items: Vec<Announcement>,
    sent: Instant,
}

/// A message announced to this node that it lacks.
#[derive(Debug)]
pub(super) struct Missing {
    /// When to graft (from the first announcer still waiting).
    pub due: Instant,
    /// Who announced it, in order, with the tree and round they announced.
    announcers: VecDeque<(String, String, u32)>,
}

impl Plumtree {
    /// Queues an announcement for `peer`'s next batch.
    pub(super) fn announce(&mut self, peer: &str, a: Announcement) {
        let max = self.config.max_lazy_queue;
        let q = self.lazy_queue.entry(peer.to_owned()).or_default();
        if q.len() >= max {
            // A slow or stuck peer: shed its oldest announcements; anti-entropy repairs.
            q.pop_front();
            self.stats.lazy_shed += 1;
        }
        q.push_back(a);
    }

    pub(super) fn on_ihave(
        &mut self,
        now: Instant,
        from: &str,
        batch: u64,
        items: Vec<Announcement>,
    ) {
        self.send(from, BroadcastMsg::IHaveAck { batch });
        for a in items {
            let Some(h) = self.handlers.get(&a.handler) else {
                self.stats.unknown_handler += 1;
                continue;
            };
            if h.is_stale(&a.id) {
                continue;
            }
            let due = now + self.config.graft_timeout;
            let m = self
                .missing
                .entry((a.handler, a.id))
                .or_insert_with(|| Missing {
                    due,
                    announcers: VecDeque::new(),
                });
            if !m.announcers.iter().any(|(p, _, _)| p == from) {
                m.announcers.push_back((from.to_owned(), a.root, a.round));
            }
        }
    }

    pub(super) fn on_ihave_ack(&mut self, from: &str, batch: u64) {
        if self.outstanding.get(from).is_some_and(|o| o.batch == batch) {
            self.outstanding.remove(from);
        }
    }

    /// Answers one grafted message; returns the payload bytes sent.
    pub(super) fn on_graft(&mut self, from: &str, a: Announcement) -> usize {
        self.add_eager(&a.root, from);
        let Some(h) = self.handlers.get(&a.handler) else {
            self.stats.unknown_handler += 1;
            return 0;
        };
        match h.graft(&a.id) {
            Graft::Payload(payload) => {
                let n = payload.len();
                self.send(
                    from,
                    BroadcastMsg::Gossip {
                        handler: a.handler,
                        id: a.id,
                        payload,
                        root: a.root,
                        round: a.round.saturating_add(1),
                        limit: None,
                    },
                );
                n
            }
            Graft::Stale => 0,
            Graft::Lost => {
                self.stats.lost += 1;
                0
            }
        }
    }

    /// Grafts every missing message whose wait is over, from its next announcer; one graft
    /// message per peer carries all its items.
    pub(super) fn graft_due(&mut self, now: Instant) {
        let due: Vec<(String, Bytes)> = self
            .missing
            .iter()
            .filter(|(_, m)| m.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut grafts: BTreeMap<String, Vec<Announcement>> = BTreeMap::new();
        for key in due {
            let stale = self.handlers.get(&key.0).is_none_or(|h| h.is_stale(&key.1));
            let Some(m) = self.missing.get_mut(&key) else {
                continue;
            };
            let next = if stale {
                None
            } else {
                let neighbours = &self.neighbours;
                std::iter::from_fn(|| m.announcers.pop_front())
                    .find(|(p, _, _)| neighbours.contains(p))
            };
            let Some((peer, root, round)) = next else {
                self.missing.remove(&key);
                continue;
            };
            m.due = now + self.config.graft_retry;
            if m.announcers.is_empty() {
                self.missing.remove(&key);
            }
            self.stats.grafts += 1;
            let (handler, id) = key;
            grafts.entry(peer).or_default().push(Announcement {
                handler,
                id,
                root,
                round,
            });
        }
        for (peer, items) in grafts {
            for chunk in items.chunks(self.config.max_ihave_items) {
                let items = chunk.to_vec();
                self.send(&peer, BroadcastMsg::Graft { items });
            }
        }
    }

    /// Sends each peer its batch of announcements, re-announcing batches that were not acked.
    pub(super) fn lazy_tick(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.sent + self.config.ack_timeout <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for p in expired {
            if let Some(o) = self.outstanding.remove(&p) {
                let q = self.lazy_queue.entry(p).or_default();
                for a in o.items.into_iter().rev() {
                    q.push_front(a);
                }
            }
        }
        let ready: Vec<String> = self
            .lazy_queue
            .iter()
            .filter(|(p, q)| !q.is_empty() && !self.outstanding.contains_key(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for p in ready {
            let q = self.lazy_queue.get_mut(&p).expect("listed above");
            let n = q.len().min(self.config.max_ihave_items);
            let items: Vec<Announcement> = q.drain(..n).collect();
            if q.is_empty() {
                self.lazy_queue.remove(&p);
            }
            let batch = self.next_batch;
            self.next_batch += 1;
            self.send(
                &p,
                BroadcastMsg::IHave {
                    batch,
                    items: items.clone(),
                },
            );
            self.outstanding.insert(
                p,
                Outstanding {
                    batch,
                    items,
                    sent: now,
                },
            );
        }
    }
}
