//! Re-merges: a node that hosts one of our tables but is not in its segment (the two sides of
//! a healed split, a node that restarted) is joined again automatically, usually by one side
//! only; and secession, when the replicas' views of a segment disagree.

use std::time::{Duration, Instant};

use rand::Rng;

use super::effects::Completion;
use super::msg::TableMsg;
use super::tables::{Tables, TICK};

/// A re-merge with a node that hosts one of our tables but is not in its segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remerge {
    /// When to start it.
    pub due: Instant,
    /// How long to wait after a failed attempt (doubles, at most 30 s).
    pub backoff: Duration,
}

impl Tables {
    /// `node` hosts `table` but is not in this replica's segment: schedule a re-merge.
    pub(super) fn consider_remerge(&mut self, now: Instant, table: &str, node: &str) {
        let Some(r) = self.replicas.get(table) else {
            return;
        };
        if r.peers.contains(node) || node == self.me {
            return;
        }
        // Usually one join per pair of segments: the lower-named segment leader starts it at
        // once, the other leader a little later, other replicas only if both leaders failed
        // (they may not reach each other in a partial partition).
        let delay = self.config.merge_delay;
        let jitter = Duration::from_millis(self.rng.gen_range(0..200));
        let wait = match (r.leader(&self.me) == self.me, self.me.as_str() < node) {
            (true, true) => jitter / 40,
            (true, false) => delay + jitter,
            (false, _) => delay * 3 + jitter,
        };
        self.remerges
            .entry((table.to_string(), node.to_string()))
            .or_insert(Remerge {
                due: now + wait,
                backoff: Duration::from_secs(1),
            });
    }

    /// Starts the re-merges that are due (one join per table at a time).
    pub(super) fn tick_remerges(&mut self, now: Instant) {
        let due: Vec<(String, String)> = self
            .remerges
            .iter()
            .filter(|(_, m)| now >= m.due)
            .map(|(k, _)| k.clone())
            .collect();
        for (table, node) in due {
            let wanted = self.connected.contains(&node)
                && self
                    .replicas
                    .get(&table)
                    .is_some_and(|r| !r.peers.contains(&node));
            let running = self.joins.values().any(|j| j.table == table);
            if !wanted {
                self.remerges.remove(&(table, node));
            } else if running {
                // One join per table at a time: look again later.
                if let Some(m) = self.remerges.get_mut(&(table, node)) {
                    m.due = now + TICK;
                }
            } else {
                let deadline = now + self.config.merge_timeout;
                let m = self
                    .remerges
                    .get_mut(&(table.clone(), node.clone()))
                    .expect("due");
                m.due = now + m.backoff;
                m.backoff = (m.backoff * 2).min(Duration::from_secs(30));
                self.start_join(now, &table, &node, Completion::Merge, deadline, 0);
            }
        }
    }

    /// Leaves this replica's segment: the replicas' views of it disagree (a partial partition
    /// left some replicas dropping others). Everyone drops this replica, and re-merges bring it
    /// back with its records, so views converge one secession at a time.
    pub(super) fn secede(&mut self, now: Instant, table: &str) {
        let join_id = self.rng.gen();
        let mut fx = self.fx();
        let Some(r) = self.replicas.get_mut(table) else {
            return;
        };
        let peers: Vec<String> = r.peers.iter().cloned().collect();
        for p in &peers {
            fx.send(
                p,
                TableMsg::Forget {
                    table: table.to_string(),
                },
            );
            r.remove_peer(now, &mut fx, p, None);
        }
        r.set_join_id(join_id);
        self.finish(now, fx);
        for p in peers {
            self.consider_remerge(now, table, &p);
        }
    }
}
