//! A cluster that starts formed: every node's view already holds every member alive, as after
//! a join storm has converged, without simulating the storm.

use ensemble_proto::view::View;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{NodeId, Sim, SimConfig};

impl Sim {
    /// `n` nodes (`n0`, `n1`...) that start as one formed cluster: each node's view holds every
    /// node alive (one view, cloned: the clones share their storage until a node changes its
    /// copy), each node dials the members its overlay picks, as a formed cluster's nodes are
    /// connected to. No `up` event is reported for the starting members. A restarted node
    /// joins again through one other node, picked at random.
    pub fn formed(config: SimConfig, n: usize) -> Sim {
        let mut seeds = SmallRng::seed_from_u64(config.seed ^ 0x5eed);
        let topology = config.membership.topology;
        let mut sim = Sim::new(config);
        sim.record_up_events = false;
        let ids: Vec<NodeId> = (0..n)
            .map(|i| {
                // A seed other than the node itself, for restarts.
                let seed = (i + seeds.gen_range(1..n.max(2))) % n.max(2);
                let seed: &[NodeId] = if n > 1 { &[seed] } else { &[] };
                sim.push_node(&format!("n{i}"), seed, topology)
            })
            .collect();
        let mut view = View::new();
        for &id in &ids {
            view.merge(sim.now, sim.local_member(id));
        }
        for id in ids {
            sim.boot(id, Some(view.clone()));
        }
        sim
    }
}
