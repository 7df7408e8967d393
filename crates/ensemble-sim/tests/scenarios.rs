//! The scenarios behind `ensemble sim membership`, at sizes that run in seconds.

use std::time::Duration;

use ensemble_sim::{Report, Scenario, ScenarioConfig, SimConfig};

fn run(nodes: usize, scenario: Scenario, seed: u64) -> Report {
    let cfg = ScenarioConfig {
        nodes,
        scenario,
        start: None,
        duration: Duration::from_secs(20),
        sim: SimConfig {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(5),
            loss: 0.005,
            seed,
            ..SimConfig::default()
        },
    };
    ensemble_sim::scenario::run(&cfg, |_| {})
}

#[test]
fn the_same_seed_gives_the_same_metrics() {
    let a = run(30, Scenario::Churn, 3);
    let b = run(30, Scenario::Churn, 3);
    let strip = |r: &Report| {
        format!(
            "{:?}",
            Report {
                wall_ms: 0,
                ..r.clone()
            }
        )
    };
    assert_eq!(strip(&a), strip(&b));
    let c = run(30, Scenario::Churn, 4);
    assert_ne!(strip(&a), strip(&c), "another seed gives another run");
}

#[test]
fn a_crash_is_detected_by_all_with_zero_false_positives() {
    let r = run(60, Scenario::Crash, 1);
    assert_eq!(r.detected_by.0, r.detected_by.1, "{r:?}");
    assert_eq!(r.false_positives, 0, "{r:?}");
    assert!(r.detect_max_ms.unwrap() < 2000, "{r:?}");
}

#[test]
fn a_hang_is_detected_and_the_node_comes_back() {
    let r = run(40, Scenario::Pause, 2);
    assert_eq!(r.detected_by.0, r.detected_by.1, "{r:?}");
    assert!(r.recover_ms.is_some(), "{r:?}");
    assert_eq!(r.false_positives, 0, "{r:?}");
}

#[test]
fn a_partition_heals_converged_without_flapping_the_reachable_side() {
    let r = run(40, Scenario::Partition, 5);
    assert_eq!(
        r.detected_by.0, r.detected_by.1,
        "each half marks the other down: {r:?}"
    );
    assert!(r.recover_ms.is_some(), "the halves merge: {r:?}");
    // After the heal, one half's stale `down` gossip must not make the other half mark its own,
    // reachable members down.
    assert_eq!(r.false_positives, 0, "{r:?}");
}

#[test]
fn churn_ends_converged_without_false_positives() {
    let r = run(40, Scenario::Churn, 6);
    assert!(r.recover_ms.is_some(), "{r:?}");
    assert_eq!(r.false_positives, 0, "{r:?}");
    assert_eq!(r.detected_by.0, r.detected_by.1, "{r:?}");
}

#[test]
fn a_join_storm_converges() {
    let r = run(150, Scenario::Join, 7);
    assert!(r.convergence_ms.unwrap() < 3000, "{r:?}");
    assert!(r.msgs_per_node_per_s > 0.0 && r.bytes_per_node_per_s > 0.0);
}

#[test]
fn a_large_cluster_keeps_a_partial_view_and_still_detects_everywhere() {
    let r = run(200, Scenario::Crash, 8);
    // Full mesh would be 199 connections per node; the ring overlay keeps about 2 log2(n).
    assert!(r.connections_per_node < 30.0, "{r:?}");
    assert!(r.msgs_per_node_per_s < 80.0, "{r:?}");
    assert_eq!(r.detected_by.0, r.detected_by.1, "{r:?}");
    assert_eq!(r.false_positives, 0, "{r:?}");
    assert!(r.detect_max_ms.unwrap() < 2500, "{r:?}");
}

#[test]
fn a_large_cluster_heals_a_partition() {
    let r = run(160, Scenario::Partition, 9);
    assert_eq!(r.detected_by.0, r.detected_by.1, "{r:?}");
    assert!(r.recover_ms.is_some(), "{r:?}");
    assert_eq!(r.false_positives, 0, "{r:?}");
}
