//! The broadcast workload and its metrics: the engine of `ensemble sim broadcast`.
//!
//! As in Maelstrom's broadcast workload, random live nodes broadcast `rate` messages per
//! second and as many reads happen (reads are local, so they cost no messages but count as
//! operations). Faults: a fraction of the nodes crashing at once a third into the run, and
//! random two-way partitions toggled every `partition_every`. After the workload the
//! partitions heal and the cluster gets `recovery` to repair.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::network::{NodeId, Sim, SimConfig};
use crate::scenario::join_storm;

/// Settings of a broadcast run.
#[derive(Debug, Clone)]
pub struct BroadcastScenario {
    /// Network and protocol settings (latency, loss, seed...).
    pub sim: SimConfig,
    /// Cluster size.
    pub nodes: usize,
    /// Broadcasts per second (and as many reads).
    pub rate: f64,
    /// Length of the workload.
    pub duration: Duration,
    /// Fraction of the nodes that crash at once, a third into the workload.
    pub crash_fraction: f64,
    /// Toggle a random partition (two halves) this often, if set.
    pub partition_every: Option<Duration>,
    /// Time after the workload (and the last heal) for repairs.
    pub recovery: Duration,
}

/// Figures of a broadcast run.
#[derive(Debug, Clone, Serialize)]
pub struct BroadcastReport {
    /// Cluster size.
    pub nodes: usize,
    /// RNG seed.
    pub seed: u64,
    /// Broadcasts sent.
    pub broadcasts: u64,
    /// Reads (local, free).
    pub reads: u64,
    /// Broadcast-protocol messages (payload, ihave, ihave_ack, graft, prune, exchange) per
    /// operation (broadcasts plus reads).
    pub msgs_per_op: f64,
    /// Broadcast-protocol messages by kind.
    pub msgs_by_kind: HashMap<String, u64>,
    /// Membership messages per second, cluster-wide, during the workload.
    pub membership_msgs_per_s: f64,
    /// Median over broadcasts of the time from the send to the last live node's delivery.
    pub latency_p50_ms: f64,
    /// 99th percentile of the same.
    pub latency_p99_ms: f64,
    /// Largest of the same.
    pub latency_max_ms: f64,
    /// Deliveries at nodes live at the end, over broadcasts times such nodes.
    pub delivered_fraction: f64,
    /// Relative message redundancy: payload messages / (n - 1) / broadcasts - 1.
    pub rmr: f64,
    /// The same over the last third of the workload (after a crash, once trees healed).
    pub rmr_last_third: f64,
    /// Mean over broadcasts of the hop count of the last delivery along a tree.
    pub ldh: f64,
    /// Largest hop count of any delivery along a tree.
    pub ldh_max: u32,
    /// Deliveries made by anti-entropy rather than along a tree.
    pub repaired: u64,
    /// Nodes crashed.
    pub crashed: usize,
    /// Partitions started.
    pub partitions: usize,
    /// Time for the cluster to form before the workload, in ms.
    pub convergence_ms: Option<u64>,
    /// Wall-clock time of the run, in ms.
    pub wall_ms: u64,
}

struct Sent {
    at: Duration,
    origin: NodeId,
}

/// Runs the workload; `progress` is called about once per simulated second.
pub fn run(cfg: &BroadcastScenario, mut progress: impl FnMut(Duration)) -> BroadcastReport {
    let wall = Instant::now();
    let n = cfg.nodes.max(2);
    let mut sim = join_storm(&cfg.sim, n);
    let mut rng = SmallRng::seed_from_u64(cfg.sim.seed ^ 0xb0ad);
    let convergence = sim.run_until(Duration::from_secs(120), |s| s.all_count_up(n));
    // Let the overlay settle (extra join connections are pruned after `prune_grace`) and the
    // first exchanges finish.
    sim.run_for(cfg.sim.membership.prune_grace * 2);
    sim.record_deliveries = true;
    let counts0 = (sim.broadcast_messages, sim.messages);
    let kinds0 = sim.by_kind.clone();
    let start = sim.elapsed();
    let interval = Duration::from_secs_f64(1.0 / cfg.rate.max(0.001));
    let crash_at = start + cfg.duration / 3;
    let last_third = start + cfg.duration * 2 / 3;
    let mut sent: HashMap<Bytes, Sent> = HashMap::new();
    let mut crashed = Vec::new();
    let mut partitions = 0;
    let mut partitioned = false;
    let mut next_toggle = cfg.partition_every.map(|p| start + p);
    let mut next_progress = start;
    let mut payloads_last_third = 0;
    let mut broadcasts_last_third = 0u64;
    let payloads = |s: &Sim| s.by_kind.get("payload").copied().unwrap_or(0);
    let mut p_at_third = 0;
    let mut t = start;
    while t < start + cfg.duration {
        sim.run_for(t - sim.elapsed());
        if crashed.is_empty() && cfg.crash_fraction > 0.0 && t >= crash_at {
            let mut live = sim.live();
            live.shuffle(&mut rng);
            let k = ((n as f64) * cfg.crash_fraction).round() as usize;
            for id in live.into_iter().take(k.min(n - 1)) {
                sim.crash(id);
                crashed.push(id);
            }
        }
        if let Some(at) = next_toggle.filter(|at| t >= *at) {
            next_toggle = cfg.partition_every.map(|p| at + p);
            if partitioned {
                sim.heal();
            } else {
                let mut ids: Vec<NodeId> = (0..n).collect();
                ids.shuffle(&mut rng);
                let (a, b) = ids.split_at(n / 2);
                sim.partition(a, b);
                partitions += 1;
            }
            partitioned = !partitioned;
        }
        if t >= last_third && p_at_third == 0 {
            p_at_third = payloads(&sim).max(1);
        }
        let live = sim.live();
        let origin = live[rng.gen_range(0..live.len())];
        let payload = Bytes::from(rng.gen::<u64>().to_be_bytes().to_vec());
        if let Some(id) = sim.broadcast(origin, payload) {
            sent.insert(id, Sent { at: t, origin });
            if t >= last_third {
                broadcasts_last_third += 1;
            }
        }
        if t >= next_progress {
            next_progress = t + Duration::from_secs(1);
            progress(t);
        }
        t += interval;
    }
    if t >= last_third && p_at_third > 0 {
        payloads_last_third = payloads(&sim) - p_at_third;
    }
    sim.heal();
    let end = sim.elapsed();
    let recovery = cfg.recovery;
    let step = Duration::from_secs(1);
    while sim.elapsed() < end + recovery {
        sim.run_for(step);
        progress(sim.elapsed());
    }
    let window = sim.elapsed() - start;
    let broadcast_msgs = sim.broadcast_messages - counts0.0;
    let membership_msgs = sim.messages - counts0.1;
    let mut by_kind = HashMap::new();
    for (k, v) in &sim.by_kind {
        let v = v - kinds0.get(k).copied().unwrap_or(0);
        if matches!(
            *k,
            "payload" | "ihave" | "ihave_ack" | "graft" | "prune" | "exchange"
        ) || k.starts_with("exchange")
        {
            by_kind.insert(k.to_string(), v);
        }
    }
    // Deliveries per broadcast at nodes live at the end.
    let live = sim.live();
    let is_live: Vec<bool> = (0..n).map(|i| live.contains(&i)).collect();
    let mut got: HashMap<&Bytes, (usize, Duration, u32)> = HashMap::new();
    let mut ldh_max = 0;
    let mut repaired = 0;
    for d in &sim.deliveries {
        if !is_live[d.node] {
            continue;
        }
        let Some(s) = sent.get(&d.id) else { continue };
        let e = got.entry(&d.id).or_insert((0, Duration::ZERO, 0));
        e.0 += 1;
        e.1 = e.1.max(d.at - s.at);
        if d.repaired {
            repaired += 1;
        } else {
            e.2 = e.2.max(d.round);
            ldh_max = ldh_max.max(d.round);
        }
        let _ = s.origin;
    }
    let broadcasts = sent.len() as u64;
    let expected = broadcasts as f64 * live.len() as f64;
    let delivered: usize = got.values().map(|g| g.0).sum();
    let mut latencies: Vec<f64> = got.values().map(|g| g.1.as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() - 1) as f64 * q).round() as usize;
        latencies[i]
    };
    let ldh = if got.is_empty() {
        0.0
    } else {
        got.values().map(|g| f64::from(g.2)).sum::<f64>() / got.len() as f64
    };
    let total_payloads = by_kind.get("payload").copied().unwrap_or(0);
    let rmr = |payloads: u64, b: u64, nodes: usize| -> f64 {
        if b == 0 || nodes < 2 {
            return 0.0;
        }
        payloads as f64 / ((nodes - 1) as f64 * b as f64) - 1.0
    };
    let reads = broadcasts;
    BroadcastReport {
        nodes: n,
        seed: cfg.sim.seed,
        broadcasts,
        reads,
        msgs_per_op: broadcast_msgs as f64 / (broadcasts + reads).max(1) as f64,
        msgs_by_kind: by_kind,
        membership_msgs_per_s: membership_msgs as f64 / window.as_secs_f64(),
        latency_p50_ms: pct(0.5),
        latency_p99_ms: pct(0.99),
        latency_max_ms: pct(1.0),
        delivered_fraction: if expected > 0.0 {
            delivered as f64 / expected
        } else {
            1.0
        },
        rmr: rmr(total_payloads, broadcasts, n - crashed.len()),
        rmr_last_third: rmr(
            payloads_last_third,
            broadcasts_last_third,
            n - crashed.len(),
        ),
        ldh,
        ldh_max,
        repaired,
        crashed: crashed.len(),
        partitions,
        convergence_ms: convergence.map(|d| d.as_millis() as u64),
        wall_ms: wall.elapsed().as_millis() as u64,
    }
}
