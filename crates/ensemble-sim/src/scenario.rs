//! Membership scenarios and their metrics: the engine of `ensemble sim membership`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ensemble_proto::{EventKind, Status};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::network::{NodeId, Sim, SimConfig, SimEvent};

/// What happens to the cluster after it formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// All nodes join at once, each through a random node started before it; then nothing
    /// happens.
    Join,
    /// One node crashes (connections close, dials refused).
    Crash,
    /// One node hangs (nothing closes), then resumes.
    Pause,
    /// The cluster splits in two halves, then heals.
    Partition,
    /// Nodes keep crashing and restarting, one every two seconds.
    Churn,
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "join" => Scenario::Join,
            "crash" => Scenario::Crash,
            "pause" => Scenario::Pause,
            "partition" => Scenario::Partition,
            "churn" => Scenario::Churn,
            _ => {
                return Err(format!(
                    "unknown scenario {s:?}: join, crash, pause, partition or churn"
                ))
            }
        })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Scenario::Join => "join",
            Scenario::Crash => "crash",
            Scenario::Pause => "pause",
            Scenario::Partition => "partition",
            Scenario::Churn => "churn",
        };
        f.write_str(s)
    }
}

impl Scenario {
    /// How the scenario starts unless told: crash and pause from a formed cluster, the others
    /// with a join storm.
    pub fn default_start(self) -> Start {
        match self {
            Scenario::Crash | Scenario::Pause => Start::Formed,
            Scenario::Join | Scenario::Partition | Scenario::Churn => Start::Storm,
        }
    }
}

/// How the cluster comes to be before the scenario's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// All nodes join at once, each through a random node started before it, and the run
    /// waits until every node sees every node up (the convergence it reports).
    Storm,
    /// The cluster starts formed: every node's view holds every node alive (one view shared
    /// between the nodes until each changes its copy), and each node connects to the members
    /// its overlay picks. No convergence is measured. It takes a fraction of the time and
    /// memory of a storm at thousands of nodes (see `Sim::formed`).
    Formed,
}

impl FromStr for Start {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "storm" => Ok(Start::Storm),
            "formed" => Ok(Start::Formed),
            _ => Err(format!("unknown start {s:?}: storm or formed")),
        }
    }
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Start::Storm => "storm",
            Start::Formed => "formed",
        })
    }
}

/// A scenario run's settings.
#[derive(Debug, Clone)]
pub struct ScenarioConfig {
    /// Cluster size.
    pub nodes: usize,
    /// What happens.
    pub scenario: Scenario,
    /// How the cluster forms first (None: [`Scenario::default_start`]).
    pub start: Option<Start>,
    /// Virtual time to run after the cluster formed; scenarios that need longer take longer.
    pub duration: Duration,
    /// Network model and membership settings.
    pub sim: SimConfig,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Cluster size.
    pub nodes: usize,
    /// RNG seed: the same seed gives the same report.
    pub seed: u64,
    /// Scenario name.
    pub scenario: Scenario,
    /// How the cluster formed.
    pub start: Start,
    /// Virtual time until every node saw every node up, after all joined at once (None for a
    /// formed start, or if it did not converge).
    pub convergence_ms: Option<u64>,
    /// Median delay, over observers, from a fault to the observer marking it down.
    pub detect_p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub detect_p99_ms: Option<u64>,
    /// Slowest observer.
    pub detect_max_ms: Option<u64>,
    /// Observers that detected the fault, and how many there were.
    pub detected_by: (usize, usize),
    /// Pause: time from resume until everyone sees the node up. Partition: from heal until the
    /// halves merged. Churn: from the last change until the cluster converged.
    pub recover_ms: Option<u64>,
    /// `down` events about a node that was healthy and reachable at the time.
    pub false_positives: usize,
    /// Membership messages sent per live node per second, in steady state.
    pub msgs_per_node_per_s: f64,
    /// Bytes sent per live node per second, in steady state (4-byte frame header included).
    pub bytes_per_node_per_s: f64,
    /// Largest estimated membership state of one node, in bytes, sampled every simulated
    /// second (an upper bound: it ignores member versions shared between nodes).
    pub peak_state_bytes: usize,
    /// Open connections per node at the end.
    pub connections_per_node: f64,
    /// Virtual time simulated.
    pub simulated_ms: u64,
    /// Wall-clock time the run took.
    pub wall_ms: u64,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn percentile(sorted: &[Duration], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(ms(sorted[i]))
}

/// One fault whose detection is measured.
struct Fault {
    target: NodeId,
    incarnation: u64,
    at: Duration,
    observers: Vec<NodeId>,
}

struct Runner {
    sim: Sim,
    n: usize,
    /// (node, incarnation) pairs that were crashed, paused or partitioned away: `down` events
    /// about them are right. Observer sides matter for partitions, see `cross`.
    faulty: HashSet<(NodeId, u64)>,
    /// Incarnations on the other side of a partition, as (observer side, target, incarnation).
    cross: HashSet<(bool, NodeId, u64)>,
    side: Vec<bool>,
    faults: Vec<Fault>,
    peak_state: usize,
    progress_at: Duration,
}

impl Runner {
    fn run_for(&mut self, d: Duration, progress: &mut impl FnMut(Duration)) {
        let end = self.sim.elapsed() + d;
        while self.sim.elapsed() < end {
            let step = (end - self.sim.elapsed()).min(Duration::from_secs(1));
            self.sim.run_for(step);
            self.tick(progress);
        }
    }

    fn run_until(
        &mut self,
        limit: Duration,
        progress: &mut impl FnMut(Duration),
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.sim.elapsed();
        loop {
            if done(&self.sim) {
                return Some(self.sim.elapsed() - start);
            }
            if self.sim.elapsed() - start >= limit {
                return None;
            }
            self.sim.run_for(Duration::from_millis(10));
            self.tick(progress);
        }
    }

    fn tick(&mut self, progress: &mut impl FnMut(Duration)) {
        if self.sim.elapsed() >= self.progress_at {
            self.progress_at = self.sim.elapsed() + Duration::from_secs(1);
            self.peak_state = self.peak_state.max(self.sim.max_state_bytes());
            progress(self.sim.elapsed());
        }
    }

    fn incarnation(&self, id: NodeId) -> u64 {
        self.sim.incarnation(id).unwrap_or(0)
    }

    fn live_except(&self, skip: &[NodeId]) -> Vec<NodeId> {
        self.sim
            .live()
            .into_iter()
            .filter(|i| !skip.contains(i))
            .collect()
    }

    fn all_see(sim: &Sim, observers: &[NodeId], target: NodeId, status: Status) -> bool {
        observers
            .iter()
            .all(|o| sim.status(*o, target) == Some(status))
    }

    /// Steady-state traffic per live node per second over `window`.
    fn traffic(&mut self, window: Duration, progress: &mut impl FnMut(Duration)) -> (f64, f64) {
        let (m0, b0) = (self.sim.messages, self.sim.bytes);
        self.run_for(window, progress);
        let live = self.sim.live().len().max(1) as f64;
        let secs = window.as_secs_f64();
        (
            (self.sim.messages - m0) as f64 / live / secs,
            (self.sim.bytes - b0) as f64 / live / secs,
        )
    }

    fn false_positives(&self) -> usize {
        self.sim
            .events()
            .iter()
            .filter(|e| e.kind == EventKind::Down)
            .filter(|e| !self.faulty.contains(&(e.target, e.incarnation)))
            .filter(|e| {
                !self
                    .cross
                    .contains(&(self.side[e.observer], e.target, e.incarnation))
            })
            .count()
    }

    fn detections(&self) -> (Vec<Duration>, usize) {
        // Down events by (target, incarnation), read once.
        let mut downs: HashMap<(NodeId, u64), Vec<&SimEvent>> = HashMap::new();
        for e in self
            .sim
            .events()
            .iter()
            .filter(|e| e.kind == EventKind::Down)
        {
            downs.entry((e.target, e.incarnation)).or_default().push(e);
        }
        let mut delays = Vec::new();
        let mut expected = 0;
        for f in &self.faults {
            expected += f.observers.len();
            let observers: HashSet<NodeId> = f.observers.iter().copied().collect();
            let mut seen = HashSet::new();
            for e in downs.get(&(f.target, f.incarnation)).into_iter().flatten() {
                if e.at >= f.at && observers.contains(&e.observer) && seen.insert(e.observer) {
                    delays.push(e.at - f.at);
                }
            }
        }
        delays.sort();
        (delays, expected)
    }
}

/// Starts `n` nodes at once (`n0`, `n1`...), each joining through a random node started before
/// it (its seed may be joining too), so that no single seed holds n connections.
pub(crate) fn join_storm(config: &SimConfig, n: usize) -> Sim {
    let mut sim = Sim::new(config.clone());
    sim.record_up_events = false;
    sim.add_node("n0", &[]);
    let mut seeds = SmallRng::seed_from_u64(config.seed ^ 0x5eed);
    for i in 1..n {
        let seed = seeds.gen_range(0..i);
        sim.add_node(&format!("n{i}"), &[seed]);
    }
    sim
}

/// Runs a scenario; `progress` is called about once per simulated second with the virtual time.
pub fn run(cfg: &ScenarioConfig, mut progress: impl FnMut(Duration)) -> Report {
    let wall = Instant::now();
    let n = cfg.nodes.max(2);
    let start = cfg.start.unwrap_or(cfg.scenario.default_start());
    let sim = match start {
        Start::Storm => join_storm(&cfg.sim, n),
        Start::Formed => Sim::formed(cfg.sim.clone(), n),
    };
    let first = 0;
    let mut r = Runner {
        sim,
        n,
        faulty: HashSet::new(),
        cross: HashSet::new(),
        side: vec![false; n],
        faults: Vec::new(),
        peak_state: 0,
        progress_at: Duration::ZERO,
    };
    let p = &mut progress;
    let limit = cfg.duration.max(Duration::from_secs(60));
    let convergence = match start {
        Start::Storm => r.run_until(limit, p, |s| s.all_count_up(n)),
        Start::Formed => None,
    };
    let end = r.sim.elapsed() + cfg.duration;
    // Let the overlay settle (a join storm's extra connections are pruned after
    // `prune_grace`; a formed cluster's nodes open theirs), then measure steady-state traffic.
    r.run_for(cfg.sim.membership.prune_grace * 2, p);
    // At least one anti-entropy round per node falls inside the window.
    let sync = cfg.sim.membership.sync_interval;
    let steady =
        (cfg.duration / 4).clamp(sync.min(Duration::from_secs(30)), Duration::from_secs(30));
    let (msgs, bytes) = r.traffic(steady, p);
    let mut recover = None;
    let victim = n / 2;
    let wait = Duration::from_secs(60);
    match cfg.scenario {
        Scenario::Join => {}
        Scenario::Crash | Scenario::Pause => {
            let observers = r.live_except(&[victim]);
            let incarnation = r.incarnation(victim);
            r.faulty.insert((victim, incarnation));
            r.faults.push(Fault {
                target: victim,
                incarnation,
                at: r.sim.elapsed(),
                observers: observers.clone(),
            });
            if cfg.scenario == Scenario::Crash {
                r.sim.crash(victim);
            } else {
                r.sim.pause(victim);
            }
            r.run_until(wait, p, |s| {
                Runner::all_see(s, &observers, victim, Status::Down)
            });
            if cfg.scenario == Scenario::Pause {
                r.sim.resume(victim);
                recover = r.run_until(wait, p, |s| s.all_count_up(n));
            }
        }
        Scenario::Partition => {
            let (a, b): (Vec<NodeId>, Vec<NodeId>) = (0..n).partition(|i| *i < n / 2);
            for &i in &b {
                r.side[i] = true;
            }
            for i in 0..n {
                r.cross.insert((!r.side[i], i, r.incarnation(i)));
            }
            let at = r.sim.elapsed();
            for (observers, targets) in [(&a, &b), (&b, &a)] {
                for &t in targets.iter() {
                    r.faults.push(Fault {
                        target: t,
                        incarnation: r.incarnation(t),
                        at,
                        observers: observers.clone(),
                    });
                }
            }
            r.sim.partition(&a, &b);
            r.run_until(wait, p, |s| {
                a.iter()
                    .all(|x| b.iter().all(|y| s.status(*x, *y) == Some(Status::Down)))
                    && b.iter()
                        .all(|x| a.iter().all(|y| s.status(*x, *y) == Some(Status::Down)))
            });
            r.sim.heal();
            recover = r.run_until(wait, p, |s| s.all_count_up(n));
        }
        Scenario::Churn => {
            let mut rng = SmallRng::seed_from_u64(cfg.sim.seed ^ 0xc0ffee);
            let mut crashed: Vec<NodeId> = Vec::new();
            let end = r.sim.elapsed() + cfg.duration.max(Duration::from_secs(10));
            while r.sim.elapsed() < end {
                let restart = !crashed.is_empty() && (rng.gen_bool(0.5) || crashed.len() * 3 >= n);
                if restart {
                    let id = crashed.swap_remove(rng.gen_range(0..crashed.len()));
                    r.sim.restart(id);
                } else {
                    let live = r.live_except(&[first]);
                    let id = live[rng.gen_range(0..live.len())];
                    let incarnation = r.incarnation(id);
                    r.faulty.insert((id, incarnation));
                    let observers = r.live_except(&[id]);
                    r.faults.push(Fault {
                        target: id,
                        incarnation,
                        at: r.sim.elapsed(),
                        observers,
                    });
                    r.sim.crash(id);
                    crashed.push(id);
                }
                r.run_for(Duration::from_secs(2), p);
            }
            let live = n - crashed.len();
            recover = r.run_until(wait, p, |s| s.all_count_up(live));
        }
    }
    // Run out the requested duration (a join or soak run is all steady state), then a little
    // more so that late events are counted.
    if r.sim.elapsed() < end {
        let rest = end - r.sim.elapsed();
        r.run_for(rest, p);
    }
    r.run_for(Duration::from_secs(5), p);
    let (delays, expected) = r.detections();
    let false_positives = r.false_positives();
    let peak_state_bytes = r.peak_state.max(r.sim.max_state_bytes());
    Report {
        nodes: r.n,
        seed: cfg.sim.seed,
        scenario: cfg.scenario,
        start,
        convergence_ms: convergence.map(ms),
        detect_p50_ms: percentile(&delays, 0.5),
        detect_p99_ms: percentile(&delays, 0.99),
        detect_max_ms: delays.last().copied().map(ms),
        detected_by: (delays.len(), expected),
        recover_ms: recover.map(ms),
        false_positives,
        msgs_per_node_per_s: (msgs * 10.0).round() / 10.0,
        bytes_per_node_per_s: bytes.round(),
        peak_state_bytes,
        connections_per_node: (2.0 * r.sim.connections() as f64 / r.sim.live().len().max(1) as f64
            * 10.0)
            .round()
            / 10.0,
        simulated_ms: ms(r.sim.elapsed()),
        wall_ms: ms(wall.elapsed()),
    }
}
