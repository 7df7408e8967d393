//! What the nemesis did, as it did it: each fault applied (kind, targets, when it started and
//! ended, the pairs of nodes it cut from each other, the partition references it injected on
//! each agent). The checkers ask it whether a node was paused, killed, flooded or cut off at
//! some time.

use serde::Serialize;

/// One fault as applied.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    /// The kind's name (`pause`, `majority-split`...).
    pub kind: &'static str,
    /// The nodes it was aimed at (for a partition: the nodes cut from someone).
    pub targets: Vec<String>,
    pub start_ms: u64,
    /// None while it lasts.
    pub end_ms: Option<u64>,
    /// The pairs of nodes cut from each other (partitions).
    pub cuts: Vec<(String, String)>,
    /// The partitions injected, as `(agent, reference)` (re-injections after a restart or a
    /// pause included).
    pub refs: Vec<(String, u64)>,
    /// What went otherwise than planned (no leader to isolate, an agent that did not answer).
    pub notes: Vec<String>,
}

impl Applied {
    fn during(&self, from: u64, to: u64) -> bool {
        self.start_ms <= to && self.end_ms.is_none_or(|e| e >= from)
    }

    fn process_fault(&self) -> bool {
        matches!(self.kind, "pause" | "kill-restart" | "flood")
    }
}

/// Every fault applied in a campaign.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultRecord {
    pub applied: Vec<Applied>,
}

impl FaultRecord {
    /// Why a `down` of `x` seen by `y` during `[from, to]` is no false positive, if it is
    /// not: `x` was paused, killed or flooded, or cut off from `y` or from a majority of the
    /// `n` nodes, at some time in that window.
    pub fn excuse(&self, x: &str, y: &str, n: usize, from: u64, to: u64) -> Option<String> {
        let window: Vec<&Applied> = self.applied.iter().filter(|a| a.during(from, to)).collect();
        if let Some(a) = window
            .iter()
            .find(|a| a.process_fault() && a.targets.iter().any(|t| t == x))
        {
            return Some(format!("{x}: {} at {} ms", a.kind, a.start_ms));
        }
        let cut = |a: &&&Applied, p: &str, q: &str| {
            a.cuts
                .iter()
                .any(|(c, d)| (c == p && d == q) || (c == q && d == p))
        };
        if let Some(a) = window.iter().find(|a| cut(a, x, y)) {
            return Some(format!("{x} cut from {y}: {} at {} ms", a.kind, a.start_ms));
        }
        // Cut off from a majority at some moment: check at each start of a cut within the
        // window, counting the peers cut at that moment.
        let mut moments: Vec<u64> = window.iter().map(|a| a.start_ms.max(from)).collect();
        moments.sort_unstable();
        for t in moments {
            let mut peers: Vec<&str> = window
                .iter()
                .filter(|a| a.during(t, t))
                .flat_map(|a| a.cuts.iter())
                .filter_map(|(c, d)| match (c == x, d == x) {
                    (true, _) => Some(d.as_str()),
                    (_, true) => Some(c.as_str()),
                    _ => None,
                })
                .collect();
            peers.sort_unstable();
            peers.dedup();
            // x and the nodes it still reaches are no majority.
            if 2 * (n - peers.len()) <= n {
                return Some(format!("{x} cut from a majority at {t} ms"));
            }
        }
        None
    }

    /// Whether `a` and `b` were cut from each other at some time in `[from, to]`.
    pub fn separated(&self, a: &str, b: &str, from: u64, to: u64) -> bool {
        self.applied.iter().any(|f| {
            f.during(from, to)
                && f.cuts
                    .iter()
                    .any(|(c, d)| (c == a && d == b) || (c == b && d == a))
        })
    }

    /// The pause, kill or flood of `x` in force at some time in `[from, to]`, if any.
    pub fn stopped(&self, x: &str, from: u64, to: u64) -> Option<&'static str> {
        self.applied
            .iter()
            .find(|a| a.during(from, to) && a.process_fault() && a.targets.iter().any(|t| t == x))
            .map(|a| a.kind)
    }

    /// Whether some nodes were cut from some others at some time in `[from, to]` (a split,
    /// a bridge or a non-transitive cut anywhere in the cluster).
    pub fn any_cut(&self, from: u64, to: u64) -> bool {
        self.applied
            .iter()
            .any(|f| f.during(from, to) && !f.cuts.is_empty())
    }

    /// Faults applied, by kind.
    pub fn by_kind(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut by = std::collections::BTreeMap::new();
        for a in &self.applied {
            *by.entry(a.kind).or_default() += 1;
        }
        by
    }
}

/// The pairs cut by a side `left` from a side `right`.
pub fn cuts_between(left: &[String], right: &[String]) -> Vec<(String, String)> {
    left.iter()
        .flat_map(|l| right.iter().map(move |r| (l.clone(), r.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|n| n.to_string()).collect()
    }

    fn applied(kind: &'static str, targets: &[&str], start: u64, end: u64) -> Applied {
        Applied {
            kind,
            targets: names(targets),
            start_ms: start,
            end_ms: Some(end),
            ..Applied::default()
        }
    }

    #[test]
    fn process_faults_excuse_only_their_node_and_only_in_the_window() {
        let r = FaultRecord {
            applied: vec![applied("pause", &["n1"], 10_000, 12_000)],
        };
        assert!(r.excuse("n1", "n2", 5, 11_000, 21_000).is_some());
        assert!(r.excuse("n1", "n2", 5, 12_000, 22_000).is_some());
        assert!(r.excuse("n1", "n2", 5, 12_001, 22_001).is_none());
        assert!(r.excuse("n2", "n1", 5, 0, 20_000).is_none());
    }

    #[test]
    fn a_cut_excuses_the_pair_and_a_minority_side_but_not_the_majority() {
        let mut split = applied("majority-split", &["n1", "n2"], 0, 5_000);
        split.cuts = cuts_between(&names(&["n1", "n2"]), &names(&["n3", "n4", "n5"]));
        let mut pair = applied("non-transitive", &["n3", "n4"], 20_000, 25_000);
        pair.cuts = vec![("n3".into(), "n4".into())];
        let r = FaultRecord {
            applied: vec![split, pair],
        };
        // n1 is on the minority side: a down of n1 seen by n2 (its own side) is excused.
        assert!(r.excuse("n1", "n2", 5, 0, 6_000).is_some());
        // n3 on the majority side seen down by n4 (same side): no excuse.
        assert!(r.excuse("n3", "n4", 5, 0, 6_000).is_none());
        // n3 seen down by n1 (across the cut): excused.
        assert!(r.excuse("n3", "n1", 5, 0, 6_000).is_some());
        // The non-transitive pair excuses each other only.
        assert!(r.excuse("n3", "n4", 5, 21_000, 22_000).is_some());
        assert!(r.excuse("n3", "n5", 5, 21_000, 22_000).is_none());
        assert!(r.separated("n4", "n3", 24_000, 30_000));
        assert!(!r.separated("n4", "n5", 0, 30_000));
    }
}
