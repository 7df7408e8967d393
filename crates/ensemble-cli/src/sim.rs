//! `ensemble sim membership|broadcast|client-server`: run a scenario in the deterministic simulator.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use ensemble_sim::{Report, Scenario, ScenarioConfig, SimConfig};

#[derive(Args, Debug)]
pub struct SimArgs {
    #[command(subcommand)]
    what: SimWhat,
}

#[derive(Subcommand, Debug)]
enum SimWhat {
    /// Membership and failure detection: convergence, detection time, false positives, traffic.
    Membership(MembershipSim),
    /// Plumtree broadcast under a Maelstrom-style workload: messages per op, latency, delivery.
    Broadcast(crate::sim_broadcast::BroadcastSim),
    /// A client-server cluster: convergence, connections, relayed client-to-client messages.
    ClientServer(crate::sim_client_server::ClientServerSim),
}

/// The simulated network, shared by every scenario.
#[derive(Args, Debug)]
pub struct NetArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// One-way latency of every message, in ms.
    #[arg(long, default_value_t = 1.0)]
    pub latency_ms: f64,
    /// Extra latency, uniform from 0 to this, in ms.
    #[arg(long, default_value_t = 0.0)]
    pub jitter_ms: f64,
    /// Probability that a message is lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// RNG seed; the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl NetArgs {
    /// Checks the values and makes the simulator's settings.
    pub fn config(&self) -> Result<SimConfig> {
        if self.nodes < 2 {
            bail!("--nodes must be at least 2");
        }
        if !(0.0..1.0).contains(&self.loss) {
            bail!("--loss must be at least 0 and below 1");
        }
        if self.latency_ms < 0.0 || self.jitter_ms < 0.0 {
            bail!("--latency-ms and --jitter-ms cannot be negative");
        }
        Ok(SimConfig {
            latency: Duration::from_secs_f64(self.latency_ms / 1000.0),
            jitter: Duration::from_secs_f64(self.jitter_ms / 1000.0),
            loss: self.loss,
            seed: self.seed,
            ..SimConfig::default()
        })
    }
}

/// Shows progress of long runs on stderr: in place on a terminal, every 10 s otherwise.
/// Call the returned closure with the virtual time; call `done` at the end.
pub struct Progress {
    wall: Instant,
    last: Instant,
    tty: bool,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            wall: Instant::now(),
            last: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn show(&mut self, virt: Duration) {
        if self.tty {
            eprint!(
                "\r  simulated {:>5} s in {:>6.1} s ",
                virt.as_secs(),
                self.wall.elapsed().as_secs_f64()
            );
        } else if self.last.elapsed() > Duration::from_secs(10) {
            self.last = Instant::now();
            eprintln!(
                "  simulated {} s in {:.1} s",
                virt.as_secs(),
                self.wall.elapsed().as_secs_f64()
            );
        }
    }

    pub fn done(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

#[derive(Args, Debug)]
struct MembershipSim {
    #[command(flatten)]
    net: NetArgs,
    /// join, crash, pause, partition or churn.
    #[arg(long, default_value = "crash")]
    scenario: Scenario,
    /// Virtual seconds to run after the cluster formed (churn: how long nodes keep failing).
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SimArgs) -> Result<()> {
    let a = match args.what {
        SimWhat::Membership(a) => a,
        SimWhat::Broadcast(b) => return crate::sim_broadcast::run(b),
        SimWhat::ClientServer(c) => return crate::sim_client_server::run(c),
    };
    let cfg = ScenarioConfig {
        nodes: a.net.nodes,
        scenario: a.scenario,
        duration: Duration::from_secs(a.duration_s),
        sim: a.net.config()?,
    };
    let mut progress = Progress::new();
    let report = ensemble_sim::scenario::run(&cfg, |virt| progress.show(virt));
    progress.done();
    print_report(&report, a.json, || readable(&report, &a))
}

/// Prints a report as one JSON object, or as text.
pub fn print_report<R: serde::Serialize>(
    report: &R,
    json: bool,
    readable: impl FnOnce() -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", readable());
    }
    Ok(())
}

fn readable(r: &Report, a: &MembershipSim) -> String {
    let opt = |v: Option<u64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "-".into());
    format!(
        "Simulated {} nodes, scenario {}, seed {}, latency {} ms +- {} ms, loss {}\n\
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
