//! `ensemble sim membership`: membership and failure detection in the simulator (join, crash,
//! pause, partition or churn): convergence, detection time, false positives, traffic.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use ensemble_sim::{Report, Scenario, ScenarioConfig, Start};

use super::shared::{print_report, NetArgs, Progress};

#[derive(Args, Debug)]
pub struct MembershipSim {
    #[command(flatten)]
    net: NetArgs,
    /// join, crash, pause, partition or churn.
    #[arg(long, default_value = "crash")]
    scenario: Scenario,
    /// How the cluster forms before the scenario: storm (all nodes join at once; the run
    /// measures convergence) or formed (every node starts with a view of all nodes alive,
    /// shared between the simulated nodes, and opens its overlay connections: fast at
    /// thousands of nodes, no convergence measured). Default: formed for crash and pause,
    /// storm for join, partition and churn.
    #[arg(long)]
    start: Option<Start>,
    /// Virtual seconds to run after the cluster formed (churn: how long nodes keep failing).
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
}

pub fn run(a: MembershipSim) -> Result<()> {
    let cfg = ScenarioConfig {
        nodes: a.net.nodes,
        scenario: a.scenario,
        start: a.start,
        duration: Duration::from_secs(a.duration_s),
        sim: a.net.config()?,
    };
    let mut progress = Progress::new();
    let report = ensemble_sim::scenario::run(&cfg, |virt| progress.show(virt));
    progress.done();
    print_report(&report, a.json, || readable(&report, &a))
}

fn readable(r: &Report, a: &MembershipSim) -> String {
    let opt = |v: Option<u64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "-".into());
    format!(
        "Simulated {} nodes, scenario {}, start {}, seed {}, latency {} ms +- {} ms, loss {}\n\
         \n  convergence after the join storm  {}\
         \n  detection p50 / p99 / max         {} / {} / {} ({} of {} observers)\
         \n  recovery                          {}\
         \n  false positives                   {}\
         \n  traffic per node                  {:.1} msgs/s, {:.0} bytes/s\
         \n  connections per node              {}\
         \n  peak state per node               {} KiB\
         \n  simulated {:.1} s in {:.1} s of wall time\n",
        r.nodes,
        r.scenario,
        r.start,
        r.seed,
        a.net.latency_ms,
        a.net.jitter_ms,
        a.net.loss,
        opt(r.convergence_ms),
        opt(r.detect_p50_ms),
        opt(r.detect_p99_ms),
        opt(r.detect_max_ms),
        r.detected_by.0,
        r.detected_by.1,
        opt(r.recover_ms),
        r.false_positives,
        r.msgs_per_node_per_s,
        r.bytes_per_node_per_s,
        r.connections_per_node,
        r.peak_state_bytes / 1024,
        r.simulated_ms as f64 / 1000.0,
        r.wall_ms as f64 / 1000.0,
    )
}
