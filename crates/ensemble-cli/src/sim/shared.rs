//! What the simulation commands share: the network flags, progress on stderr, and printing a
//! report as JSON or text.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use ensemble_sim::SimConfig;

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
