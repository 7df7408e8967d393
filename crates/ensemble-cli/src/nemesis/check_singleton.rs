//! The singletons' guarantees, from their fenced logs. With the majority rule
//! (`singleton.no_overlap`): the epochs of accepted appends never go down, no epoch is used by
//! two nodes, and no two nodes' accepted appends interleave in time (each leadership's
//! accepted appends, from its first to its last, overlap no other's). Refusals (stale leaders
//! fenced) and takeovers are counted. Without the rule (`singleton.free`, reported, never
//! failed): leaderships whose appends overlap in time, and whether a partition separated the
//! two leaders then.

use std::collections::BTreeMap;

use super::fence::Append;
use super::history::Verdict;
use super::record::FaultRecord;

/// One leadership (node, epoch) and when its appends arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    node: String,
    epoch: u64,
    first_ms: u64,
    last_ms: u64,
}

/// The spans of the appends that `keep` selects, in order of their first append.
fn spans(log: &[Append], keep: impl Fn(&Append) -> bool) -> Vec<Span> {
    let mut by: BTreeMap<(u64, String), Span> = BTreeMap::new();
    for a in log.iter().filter(|a| keep(a)) {
        let s = by.entry((a.epoch, a.node.clone())).or_insert(Span {
            node: a.node.clone(),
            epoch: a.epoch,
            first_ms: a.at_ms,
            last_ms: a.at_ms,
        });
        s.first_ms = s.first_ms.min(a.at_ms);
        s.last_ms = s.last_ms.max(a.at_ms);
    }
    let mut all: Vec<Span> = by.into_values().collect();
    all.sort_by_key(|s| (s.first_ms, s.epoch));
    all
}

/// Pairs of spans of different nodes that overlap in time.
fn overlaps(spans: &[Span]) -> Vec<(&Span, &Span)> {
    let mut out = Vec::new();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if a.node != b.node && b.first_ms <= a.last_ms && a.first_ms <= b.last_ms {
                out.push((a, b));
            }
        }
    }
    out
}

/// `singleton.no_overlap` over the majority-rule singleton's fenced log.
pub fn no_overlap(log: &[Append]) -> Verdict {
    let mut violations = Vec::new();
    let accepted: Vec<&Append> = log.iter().filter(|a| a.accepted).collect();
    for w in accepted.windows(2) {
        if w[1].epoch < w[0].epoch {
            violations.push(format!(
                "accepted epochs went down: {} from {} at {} ms, then {} from {} at {} ms",
                w[0].epoch, w[0].node, w[0].at_ms, w[1].epoch, w[1].node, w[1].at_ms
            ));
        }
    }
    let mut owner: BTreeMap<u64, &str> = BTreeMap::new();
    for a in log {
        match owner.get(&a.epoch) {
            Some(n) if *n != a.node => violations.push(format!(
                "epoch {} used by {} and by {} (at {} ms)",
                a.epoch, n, a.node, a.at_ms
            )),
            Some(_) => {}
            None => {
                owner.insert(a.epoch, &a.node);
            }
        }
    }
    violations.dedup();
    let held = spans(log, |a| a.accepted);
    for (a, b) in overlaps(&held) {
        violations.push(format!(
            "{} (epoch {}) and {} (epoch {}) both had appends accepted during [{}, {}] ms",
            a.node,
            a.epoch,
            b.node,
            b.epoch,
            b.first_ms.max(a.first_ms),
            a.last_ms.min(b.last_ms)
        ));
    }
    let counts = BTreeMap::from([
        ("appends".to_string(), log.len() as u64),
        ("refused".to_string(), (log.len() - accepted.len()) as u64),
        ("leaderships".to_string(), held.len() as u64),
        ("takeovers".to_string(), held.len().saturating_sub(1) as u64),
    ]);
    Verdict::new("singleton.no_overlap", counts, violations)
}

/// How long after a cut healed, or a pause or kill ended, an overlap is still its doing.
const SETTLE_MS: u64 = 10_000;

/// What the singleton without the majority rule did (a verdict that always passes: its
/// counts and observations are for the report), with the faults to say whether a partition
/// separated two overlapping leaders, or one of them was stopped (paused, killed, flooded).
pub fn free(log: &[Append], faults: &FaultRecord) -> (Verdict, Vec<String>) {
    let all = spans(log, |_| true);
    let mut observations = Vec::new();
    let (mut separated, mut stopped) = (0, 0);
    for (a, b) in overlaps(&all) {
        let (from, to) = (a.first_ms.max(b.first_ms), a.last_ms.min(b.last_ms));
        // A cut that healed shortly before still counts: the two lead until they reconnect.
        let cut = faults.separated(&a.node, &b.node, from.saturating_sub(SETTLE_MS), to);
        let halted = [&a.node, &b.node].into_iter().find_map(|n| {
            faults
                .stopped(n, from.saturating_sub(SETTLE_MS), to)
                .map(|k| (n, k))
        });
        let why = match (cut, halted) {
            (true, _) => {
                separated += 1;
                ", while a partition separated them".to_string()
            }
            (false, Some((n, kind))) => {
                stopped += 1;
                format!(", while {n} was stopped ({kind}: its command ran on)")
            }
            (false, None) => ", with no partition between them".to_string(),
        };
        observations.push(format!(
            "singleton.free: {} (epoch {}) and {} (epoch {}) both led during [{from}, {to}] ms{why}",
            a.node, a.epoch, b.node, b.epoch,
        ));
    }
    let counts = BTreeMap::from([
        ("appends".to_string(), log.len() as u64),
        (
            "refused".to_string(),
            log.iter().filter(|a| !a.accepted).count() as u64,
        ),
        ("leaderships".to_string(), all.len() as u64),
        ("overlaps".to_string(), observations.len() as u64),
        ("overlaps_while_partitioned".to_string(), separated),
        ("overlaps_while_one_was_stopped".to_string(), stopped),
    ]);
    (
        Verdict::new("singleton.free", counts, Vec::new()),
        observations,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::fence::Mark;

    fn at(epoch: u64, node: &str, at_ms: u64, accepted: bool) -> Append {
        Append {
            epoch,
            node: node.into(),
            mark: Mark::Tick,
            at_ms,
            accepted,
        }
    }

    #[test]
    fn a_clean_takeover_passes_and_counts_the_refusals() {
        let log = [
            at(1, "n1", 0, true),
            at(1, "n1", 200, true),
            at(2, "n2", 300, true),
            at(1, "n1", 400, false),
            at(2, "n2", 500, true),
        ];
        let v = no_overlap(&log);
        assert!(v.passed, "{v:?}");
        assert_eq!(v.counts["refused"], 1);
        assert_eq!(v.counts["takeovers"], 1);
    }

    #[test]
    fn two_nodes_with_one_epoch_fail() {
        let log = [
            at(3, "n1", 0, true),
            at(3, "n2", 100, true),
            at(3, "n1", 200, true),
        ];
        let v = no_overlap(&log);
        assert!(!v.passed);
        assert!(
            v.violations
                .iter()
                .any(|e| e.contains("epoch 3 used by n1 and by n2")),
            "{v:?}"
        );
        assert!(
            v.violations
                .iter()
                .any(|e| e.contains("both had appends accepted")),
            "{v:?}"
        );
    }

    #[test]
    fn accepted_epochs_going_down_fail() {
        // What a broken fence would let through.
        let log = [at(5, "n1", 0, true), at(4, "n2", 100, true)];
        let v = no_overlap(&log);
        assert!(
            v.violations.iter().any(|e| e.contains("went down")),
            "{v:?}"
        );
    }

    #[test]
    fn free_overlaps_are_reported_with_the_partition_between_them() {
        let mut split = crate::nemesis::record::Applied {
            kind: "majority-split",
            start_ms: 0,
            end_ms: Some(1_000),
            ..Default::default()
        };
        split.cuts = vec![("n1".into(), "n2".into())];
        let faults = FaultRecord {
            applied: vec![split],
        };
        let log = [
            at(1, "n1", 0, true),
            at(2, "n2", 100, true),
            at(1, "n1", 300, false),
        ];
        let (v, obs) = free(&log, &faults);
        assert!(v.passed);
        assert_eq!(v.counts["overlaps"], 1);
        assert_eq!(v.counts["overlaps_while_partitioned"], 1);
        assert!(
            obs[0].contains("while a partition separated them"),
            "{obs:?}"
        );
    }

    #[test]
    fn a_free_overlap_while_a_leader_was_paused_says_so() {
        let pause = crate::nemesis::record::Applied {
            kind: "pause",
            targets: vec!["n1".into()],
            start_ms: 50,
            end_ms: Some(250),
            ..Default::default()
        };
        let log = [
            at(1, "n1", 0, true),
            at(2, "n2", 100, true),
            at(1, "n1", 300, false),
        ];
        let (v, obs) = free(&log, &FaultRecord::default());
        assert_eq!(v.counts["overlaps_while_one_was_stopped"], 0);
        assert!(obs[0].contains("with no partition"), "{obs:?}");
        let paused = FaultRecord {
            applied: vec![pause],
        };
        let (v, obs) = free(&log, &paused);
        assert_eq!(v.counts["overlaps_while_one_was_stopped"], 1);
        assert!(obs[0].contains("n1 was stopped (pause"), "{obs:?}");
    }
}
