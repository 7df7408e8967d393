//! Joining tracked tables with connected nodes: one join at a time, a result per (node,
//! table), and failed joins tried again after [`super::DiscoveryConfig::after_error`].

use std::time::Instant;

use super::{Discovery, Output};

impl Discovery {
    pub(super) fn table_joined(
        &mut self,
        now: Instant,
        node: String,
        table: String,
        result: Result<(), String>,
    ) {
        let key = (node, table);
        if self.joining.as_ref() == Some(&key) {
            self.joining = None;
        }
        if !self.tables.contains(&key.1) || !self.connected_names().contains(&key.0) {
            return;
        }
        match &result {
            Ok(()) => self.join_retry.remove(&key),
            Err(_) => self
                .join_retry
                .insert(key.clone(), now + self.config.after_error),
        };
        self.join_results.insert(key, result);
    }

    /// Forgets the joins of a member that went down or left (joined again when it returns).
    pub(super) fn forget_joins(&mut self, name: &str) {
        self.join_results.retain(|(n, _), _| n != name);
        self.join_retry.retain(|(n, _), _| n != name);
    }

    /// When the next failed join with a connected node is due again, unless a join runs.
    pub(super) fn next_join_retry(&self) -> Option<Instant> {
        if self.joining.is_some() || self.join_retry.is_empty() {
            return None;
        }
        let connected = self.connected_names();
        self.join_retry
            .iter()
            .filter(|(k, _)| connected.contains(&k.0))
            .map(|(_, t)| *t)
            .min()
    }

    /// Starts the next join unless one runs: first a (node, table) pair without a result, then
    /// a failed one whose retry is due.
    pub(super) fn start_next_join(&mut self, now: Instant) {
        if self.joining.is_some() {
            return;
        }
        let connected = self.connected_names();
        let fresh = connected.iter().find_map(|n| {
            self.tables
                .iter()
                .find(|t| !self.join_results.contains_key(&(n.clone(), (*t).clone())))
                .map(|t| (n.clone(), t.clone()))
        });
        let next = fresh.or_else(|| {
            self.join_retry
                .iter()
                .filter(|(k, t)| **t <= now && connected.contains(&k.0))
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        });
        if let Some((node, table)) = next {
            self.joining = Some((node.clone(), table.clone()));
            self.outputs.push_back(Output::JoinTable { node, table });
        }
    }
}
