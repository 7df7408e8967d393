//! Trees: which neighbours get a payload at once (eager) and which only an announcement (lazy).
//!
//! A root's tree is laid out on the hash ring of member names, as in broadcast over a
//! structured overlay: every payload carries the end of the ring interval its receiver is
//! responsible for. A node pushes to its neighbours inside that interval, in ring order, and
//! hands each the part of the interval up to the next one. The root's interval is the whole
//! ring. Intervals never overlap, so with no faults every node gets exactly one payload
//! (n-1 per broadcast, relative message redundancy 0) after O(log n) hops in a partial view,
//! and one hop in a full mesh (the root's children cover everyone).
//!
//! Plumtree's repairs adjust that layout per root: a `graft` adds an eager link (the asking
//! neighbour then always gets payloads of that root), a `prune` after a duplicate removes one.
//! A node remembers the interval it was given per root, so it keeps covering it even when a
//! payload reaches it along a grafted link.

use std::collections::BTreeSet;
use std::time::Instant;

use super::Plumtree;
use crate::view::position;

/// This node's adjustments to the tree of one root.
#[derive(Debug, Default)]
pub(super) struct Tree {
    /// Neighbours that asked (graft) for payloads beyond the ring layout.
    pub grafted: BTreeSet<String>,
    /// Neighbours that asked (prune) for announcements only.
    pub pruned: BTreeSet<String>,
    /// End of the ring interval this node covers for the root, as last given.
    pub limit: Option<u64>,
}

impl Plumtree {
    pub(super) fn tree_mut(&mut self, root: &str) -> &mut Tree {
        self.trees.entry(root.to_owned()).or_default()
    }

    /// Eager peers for a payload of `root` whose interval ends at `limit` (None: no interval
    /// given), each with the interval end to hand on; the sender is left out.
    pub(super) fn children(
        &self,
        root: &str,
        limit: Option<u64>,
        sender: Option<&str>,
    ) -> Vec<(String, Option<u64>)> {
        let me = position(&self.me);
        let tree = self.trees.get(root);
        let limit = if root == self.me {
            Some(me)
        } else {
            limit.or(tree.and_then(|t| t.limit))
        };
        let grafted = |p: &str| tree.is_some_and(|t| t.grafted.contains(p));
        let initially_lazy = |p: &str| self.config.initial_lazy.contains(p) && !grafted(p);
        let skip = |p: &str| {
            Some(p) == sender
                || p == root
                || tree.is_some_and(|t| t.pruned.contains(p))
                || initially_lazy(p)
        };
        let mut out: Vec<(String, Option<u64>)> = Vec::new();
        if let Some(limit) = limit {
            // Clockwise distance from here; the interval (me, limit) is the whole ring when
            // limit is this node's own position.
            let span = limit.wrapping_sub(me);
            let mut inside: Vec<(u64, &String)> = self
                .neighbours
                .iter()
                .map(|n| (position(n).wrapping_sub(me), n))
                .filter(|(d, _)| *d > 0 && (span == 0 || *d < span))
                .collect();
            inside.sort();
            for (i, (_, n)) in inside.iter().enumerate() {
                let end = inside.get(i + 1).map_or(limit, |(_, next)| position(next));
                if !skip(n) {
                    out.push(((*n).clone(), Some(end)));
                }
            }
        }
        let initial = (self.config.initial_eager.iter()).filter(|p| self.neighbours.contains(*p));
        let leaves = self.leaves.iter();
        for g in (tree.into_iter().flat_map(|t| &t.grafted))
            .chain(initial)
            .chain(leaves)
        {
            if !skip(g) && !out.iter().any(|(p, _)| p == g) {
                out.push((g.clone(), None));
            }
        }
        out
    }

    /// A neighbour grafted: it gets payloads of `root` at once from now on.
    pub(super) fn add_eager(&mut self, root: &str, peer: &str) {
        if !self.neighbours.contains(peer) || !self.is_member(root) {
            return;
        }
        let t = self.tree_mut(root);
        t.pruned.remove(peer);
        t.grafted.insert(peer.to_owned());
    }

    /// A neighbour pruned: it gets only announcements of `root` from now on.
    pub(super) fn add_lazy(&mut self, root: &str, peer: &str) {
        if !self.neighbours.contains(peer) || !self.is_member(root) {
            return;
        }
        let t = self.tree_mut(root);
        t.grafted.remove(peer);
        t.pruned.insert(peer.to_owned());
    }

    pub(super) fn neighbor_up(&mut self, now: Instant, peer: String) {
        if peer == self.me || !self.neighbours.insert(peer.clone()) {
            return;
        }
        self.recompute_base_lazy();
        // Whatever either side missed while apart (a healed partition, a restart).
        self.start_exchanges(now, &peer);
    }

    pub(super) fn neighbor_down(&mut self, peer: &str) {
        if !self.neighbours.remove(peer) {
            return;
        }
        self.leaves.remove(peer);
        for t in self.trees.values_mut() {
            t.grafted.remove(peer);
            t.pruned.remove(peer);
        }
        self.trees
            .retain(|_, t| t.limit.is_some() || !t.grafted.is_empty() || !t.pruned.is_empty());
        self.lazy_queue.remove(peer);
        self.outstanding.remove(peer);
        self.exchanges.retain(|_, e| e.peer != peer);
        self.recompute_base_lazy();
    }

    /// The `lazy_fanout` neighbours that follow this node on the hash ring.
    fn recompute_base_lazy(&mut self) {
        let me = position(&self.me);
        let mut ring: Vec<(u64, &String)> = self
            .neighbours
            .iter()
            .map(|n| (position(n).wrapping_sub(me), n))
            .collect();
        ring.sort();
        self.base_lazy = ring
            .into_iter()
            .take(self.config.lazy_fanout)
            .map(|(_, n)| n.clone())
            .collect();
    }
}
