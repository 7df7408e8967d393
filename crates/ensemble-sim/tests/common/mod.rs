//! Helpers shared by the simulation tests.
#![allow(dead_code)]

use std::time::Duration;

use ensemble_proto::Status;
use ensemble_sim::{NodeId, Sim, SimConfig};

/// `n` nodes ("n0".."n{n-1}") on 2-5 ms links that joined through n0 and all see each other
/// alive.
pub fn cluster(n: usize, seed: u64) -> (Sim, Vec<NodeId>) {
    cluster_with(n, seed, |_| {})
}

/// `cluster`, with the simulation's settings changed by `tweak` first.
pub fn cluster_with(n: usize, seed: u64, tweak: impl FnOnce(&mut SimConfig)) -> (Sim, Vec<NodeId>) {
    let mut config = SimConfig {
        seed,
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(3),
        ..SimConfig::default()
    };
    tweak(&mut config);
    let mut sim = Sim::new(config);
    let first = sim.add_node("n0", &[]);
    let mut ids = vec![first];
    for i in 1..n {
        ids.push(sim.add_node(&format!("n{i}"), &[first]));
    }
    let all = ids.clone();
    sim.run_until(Duration::from_secs(10), |s| s.all_see(&all, Status::Alive))
        .expect("cluster converges");
    (sim, ids)
}
