//! The nemesis's schedule: a pure function of the seed, the node names and the campaign's
//! length. The same seed gives the same faults at the same times; every fault ends before the
//! campaign does. Faults may overlap (a new one starts every 1-6 s and most last longer), but
//! a node is paused, killed or flooded by one fault at a time.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// What one fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultKind {
    /// The minority is cut off from everyone else (each side reaches its own).
    MajoritySplit { minority: Vec<String> },
    /// `a` and `b` are cut from each other; both still reach every other node.
    NonTransitive { a: String, b: String },
    /// `left` and `right` are cut from each other; only `bridge` reaches both sides.
    Bridge {
        left: Vec<String>,
        right: Vec<String>,
        bridge: String,
    },
    /// The majority-rule singleton's leader, asked of an agent when the fault starts, is cut
    /// off from every other node.
    IsolateLeader,
    /// SIGSTOP, then SIGCONT at the end.
    Pause { node: String },
    /// SIGKILL, then a restart under the same name at the end (on a new cluster and HTTP port
    /// when `new_port`).
    KillRestart { node: String, new_port: bool },
    /// Many TCP connections to the node's cluster port sending garbage or half handshakes.
    Flood { node: String },
}

impl FaultKind {
    /// The kind's name, as the report counts it.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::MajoritySplit { .. } => "majority-split",
            FaultKind::NonTransitive { .. } => "non-transitive",
            FaultKind::Bridge { .. } => "bridge",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::Pause { .. } => "pause",
            FaultKind::KillRestart { .. } => "kill-restart",
            FaultKind::Flood { .. } => "flood",
        }
    }

    /// The node this fault stops, kills or floods, if any.
    #[cfg(test)]
    pub fn process_target(&self) -> Option<&str> {
        match self {
            FaultKind::Pause { node }
            | FaultKind::KillRestart { node, .. }
            | FaultKind::Flood { node } => Some(node),
            _ => None,
        }
    }
}

/// Every kind's name, in the order the schedule cycles through them.
pub const KINDS: [&str; 7] = [
    "majority-split",
    "non-transitive",
    "bridge",
    "isolate-leader",
    "pause",
    "kill-restart",
    "flood",
];

/// One fault of the schedule, in ms since the campaign started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultEvent {
    pub start_ms: u64,
    pub end_ms: u64,
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// No fault starts in the first 2 s (the workloads get going) nor ends in the last second.
const LEAD_IN_MS: u64 = 2_000;
const TAIL_MS: u64 = 1_000;

/// The schedule of a campaign of `duration_ms` over `names` (at least 3), for `seed`.
pub fn schedule(seed: u64, names: &[String], duration_ms: u64) -> Vec<FaultEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    if names.len() < 3 || duration_ms < LEAD_IN_MS + TAIL_MS + 500 {
        return out;
    }
    let last_end = duration_ms - TAIL_MS;
    // Per node, when the fault that stops, kills or floods it ends.
    let mut busy_until: BTreeMap<String, u64> = BTreeMap::new();
    // The kinds in a shuffled cycle, so every kind comes up in a long enough campaign.
    let mut cycle: Vec<usize> = Vec::new();
    let mut t = LEAD_IN_MS;
    while t + 500 <= last_end {
        if cycle.is_empty() {
            cycle = (0..KINDS.len()).collect();
            cycle.shuffle(&mut rng);
        }
        let which = cycle.pop().expect("refilled");
        let idle: Vec<&String> = names
            .iter()
            .filter(|n| !matches!(busy_until.get(n.as_str()), Some(&u) if u > t))
            .collect();
        let (kind, len) = match KINDS[which] {
            "majority-split" => {
                let mut all = names.to_vec();
                all.shuffle(&mut rng);
                let minority = rng.gen_range(1..=(names.len() - 1) / 2);
                all.truncate(minority);
                all.sort();
                (
                    FaultKind::MajoritySplit { minority: all },
                    rng.gen_range(3_000..15_000),
                )
            }
            "non-transitive" => {
                let pair: Vec<&String> = names.choose_multiple(&mut rng, 2).collect();
                (
                    FaultKind::NonTransitive {
                        a: pair[0].clone(),
                        b: pair[1].clone(),
                    },
                    rng.gen_range(3_000..15_000),
                )
            }
            "bridge" => {
                let mut all = names.to_vec();
                all.shuffle(&mut rng);
                let bridge = all.pop().expect("3 names or more");
                let cut = rng.gen_range(1..all.len());
                let mut right = all.split_off(cut);
                let mut left = all;
                left.sort();
                right.sort();
                (
                    FaultKind::Bridge {
                        left,
                        right,
                        bridge,
                    },
                    rng.gen_range(3_000..15_000),
                )
            }
            "isolate-leader" => (FaultKind::IsolateLeader, rng.gen_range(3_000..12_000)),
            process => {
                let Some(node) = idle.choose(&mut rng).map(|n| n.to_string()) else {
                    t += 1_000;
                    continue;
                };
                let (kind, len) = match process {
                    "pause" => (
                        FaultKind::Pause { node: node.clone() },
                        rng.gen_range(500..=10_000),
                    ),
                    "kill-restart" => (
                        FaultKind::KillRestart {
                            node: node.clone(),
                            new_port: rng.gen_bool(0.5),
                        },
                        rng.gen_range(500..8_000),
                    ),
                    _ => (
                        FaultKind::Flood { node: node.clone() },
                        rng.gen_range(1_000..=2_000),
                    ),
                };
                busy_until.insert(node, (t + len).min(last_end) + 1_000);
                (kind, len)
            }
        };
        out.push(FaultEvent {
            start_ms: t,
            end_ms: (t + len).min(last_end),
            kind,
        });
        t += rng.gen_range(1_000..6_000);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        (1..=5).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let a = schedule(7, &names(), 120_000);
        assert_eq!(a, schedule(7, &names(), 120_000));
        assert_ne!(a, schedule(8, &names(), 120_000));
        assert!(a.len() > 10, "{a:?}");
    }

    #[test]
    fn every_fault_ends_before_the_campaign_and_process_faults_never_share_a_node() {
        for seed in 0..50 {
            let s = schedule(seed, &names(), 60_000);
            for (i, f) in s.iter().enumerate() {
                assert!(f.start_ms < f.end_ms && f.end_ms < 60_000, "{f:?}");
                let Some(node) = f.kind.process_target() else {
                    continue;
                };
                for g in &s[i + 1..] {
                    if g.kind.process_target() == Some(node) {
                        assert!(g.start_ms > f.end_ms, "{f:?} and {g:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_kind_appears_and_faults_overlap_over_a_few_seeds() {
        let mut seen = std::collections::BTreeSet::new();
        let mut overlaps = 0;
        for seed in 0..5 {
            let s = schedule(seed, &names(), 120_000);
            for (i, f) in s.iter().enumerate() {
                seen.insert(f.kind.name());
                overlaps += s[i + 1..].iter().filter(|g| g.start_ms < f.end_ms).count();
            }
        }
        assert_eq!(seen.len(), KINDS.len(), "{seen:?}");
        assert!(overlaps > 10, "{overlaps} overlaps");
    }

    #[test]
    fn splits_leave_a_majority_and_bridges_two_non_empty_sides() {
        for seed in 0..50 {
            for f in schedule(seed, &names(), 60_000) {
                match f.kind {
                    FaultKind::MajoritySplit { minority } => {
                        assert!(!minority.is_empty() && minority.len() <= 2)
                    }
                    FaultKind::Bridge {
                        left,
                        right,
                        bridge,
                    } => {
                        assert!(!left.is_empty() && !right.is_empty());
                        assert_eq!(left.len() + right.len(), 4);
                        assert!(!left.contains(&bridge) && !right.contains(&bridge));
                    }
                    FaultKind::NonTransitive { a, b } => assert_ne!(a, b),
                    _ => {}
                }
            }
        }
    }
}
