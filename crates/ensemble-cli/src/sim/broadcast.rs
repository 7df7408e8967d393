//! `ensemble sim broadcast`: the Maelstrom-style broadcast workload in the simulator.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use ensemble_sim::{BroadcastReport, BroadcastScenario};

use super::shared::{print_report, NetArgs, Progress};

#[derive(Args, Debug)]
pub struct BroadcastSim {
    #[command(flatten)]
    net: NetArgs,
    /// Broadcasts per second from random live nodes (and as many reads).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Virtual seconds of workload.
    #[arg(long, default_value_t = 20)]
    duration_s: u64,
    /// Fraction of the nodes (0 to 1) that crash at once, a third into the workload.
    #[arg(long, default_value_t = 0.0)]
    crash_fraction: f64,
    /// Start or heal a random partition (two halves) every this many seconds.
    #[arg(long)]
    partition_every_s: Option<u64>,
    /// Seconds after the workload (and the last heal) left for repairs.
    #[arg(long, default_value_t = 10)]
    recovery_s: u64,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
}

pub fn run(a: BroadcastSim) -> Result<()> {
    if !(a.rate > 0.0 && a.rate <= 100_000.0) {
        bail!("--rate must be above 0 and at most 100000 broadcasts per second");
    }
    if !(0.0..1.0).contains(&a.crash_fraction) {
        bail!("--crash-fraction must be at least 0 and below 1");
    }
    if a.partition_every_s == Some(0) {
        bail!("--partition-every-s must be at least 1");
    }
    let cfg = BroadcastScenario {
        sim: a.net.config()?,
        nodes: a.net.nodes,
        rate: a.rate,
        duration: Duration::from_secs(a.duration_s),
        crash_fraction: a.crash_fraction,
        partition_every: a.partition_every_s.map(Duration::from_secs),
        recovery: Duration::from_secs(a.recovery_s),
    };
    let mut progress = Progress::new();
    let report = ensemble_sim::broadcast::run(&cfg, |virt| progress.show(virt));
    progress.done();
    print_report(&report, a.json, || readable(&report, &a))
}

fn readable(r: &BroadcastReport, a: &BroadcastSim) -> String {
    let mut kinds: Vec<_> = r.msgs_by_kind.iter().collect();
    kinds.sort();
    let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "Simulated broadcast on {} nodes, seed {}, latency {} ms +- {} ms, loss {}, \
         {} broadcasts/s for {} s\n\
         \n  broadcasts / reads                {} / {}\
         \n  messages per op                   {:.2} ({})\
         \n  latency p50 / p99 / max           {:.0} / {:.0} / {:.0} ms\
         \n  delivered fraction                {:.6}\
         \n  rmr (all / last third)            {:.3} / {:.3}\
         \n  last delivery hop (mean / max)    {:.2} / {}\
         \n  repaired by anti-entropy          {}\
         \n  crashed / partitions              {} / {}\
         \n  membership messages               {:.0} per s cluster-wide\
         \n  wall time                         {:.1} s\n",
        r.nodes,
        r.seed,
        a.net.latency_ms,
        a.net.jitter_ms,
        a.net.loss,
        a.rate,
        a.duration_s,
        r.broadcasts,
        r.reads,
        r.msgs_per_op,
        kinds.join(", "),
        r.latency_p50_ms,
        r.latency_p99_ms,
        r.latency_max_ms,
        r.delivered_fraction,
        r.rmr,
        r.rmr_last_third,
        r.ldh,
        r.ldh_max,
        r.repaired,
        r.crashed,
        r.partitions,
        r.membership_msgs_per_s,
        r.wall_ms as f64 / 1000.0,
    )
}
