//! `ensemble bench singleton`: real agents on 127.0.0.1, each running an activator for one
//! singleton (`--singleton bench=...`). Measures how long the cluster goes without a leader
//! when the leader's agent is SIGKILLed, SIGSTOPped (against its failure detection) or
//! stopped (SIGTERM: a graceful hand-over); then, with the majority rule on, runs partition
//! and heal cycles through fault injection and checks that two leaderships never overlap.
//!
//! Times come from the agents' logs, stamped as each line arrives: `leading singleton bench
//! at epoch N` and `singleton bench: leadership ends`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nix::sys::signal::Signal;
use rand::{Rng, RngCore};
use serde::de::IgnoredAny;
use serde::Serialize;

use crate::client::ApiClient;
use crate::procs::{free_port, Proc};
use crate::token::{Token, TOKEN_ENV};
use crate::views::Inject;

#[derive(Args, Debug)]
pub struct SingletonBench {
    /// Cluster sizes to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "3,8")]
    nodes: Vec<usize>,
    /// Partition and heal cycles with the majority rule on (0: skip).
    #[arg(long, default_value_t = 10)]
    cycles: usize,
    /// Directory for the agents' logs (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON array instead of tables.
    #[arg(long)]
    json: bool,
}

/// Figures for one cluster size.
#[derive(Debug, Serialize)]
pub struct SingletonReport {
    pub nodes: usize,
    /// SIGKILL of the leader's agent to the next leader's start.
    pub takeover_after_sigkill_ms: f64,
    /// SIGSTOP of the leader's agent to the next leader's start.
    pub takeover_after_sigstop_ms: f64,
    /// SIGSTOP to the successor's membership marking the hung agent down.
    pub sigstop_detected_ms: f64,
    /// SIGTERM of the leader's agent to the next leader's start.
    pub handover_after_sigterm_ms: f64,
    /// Partition/heal cycles run with the majority rule.
    pub majority_cycles: usize,
    /// Leaderships seen during those cycles.
    pub majority_leaderships: usize,
    /// Moments with two leaders during those cycles (the target is 0).
    pub majority_overlaps: usize,
}

const START: &str = "leading singleton bench at epoch";
const END: &str = "singleton bench: leadership ends";

struct Agent {
    name: String,
    /// Its HTTP API.
    api: ApiClient,
    proc: Proc,
}

struct Cluster {
    agents: Vec<Agent>,
}

impl Cluster {
    fn start(n: usize, dir: &Path, majority: bool) -> Result<Cluster> {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let secret = hex::encode(raw);
        let token = Token::generate();
        let mut agents: Vec<Agent> = Vec::new();
        let mut seed: Option<String> = None;
        for i in 0..n {
            let name = format!("s{i}");
            let port = free_port()?;
            let http = format!("127.0.0.1:{}", free_port()?);
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["agent", "--name", &name, "--allow-fault-injection"])
                .args(["--bind", &format!("127.0.0.1:{port}"), "--http", &http])
                .args(["--singleton", "bench=exec sleep 3600"])
                .env("ENSEMBLE_SECRET", &secret)
                .env(TOKEN_ENV, token.as_str())
                .env("RUST_LOG", "info");
            if majority {
                cmd.args(["--singleton-majority", &format!("bench={n}")]);
            }
            if let Some(s) = &seed {
                cmd.args(["--join", s]);
            }
            seed.get_or_insert(format!("127.0.0.1:{port}"));
            let proc = Proc::spawn(cmd, &dir.join(format!("{name}.log")))?;
            let api = ApiClient::new(&http)?.token(token.clone());
            agents.push(Agent { name, api, proc });
        }
        let c = Cluster { agents };
        c.wait(
            "every agent follows one leader",
            Duration::from_secs(30),
            || c.settled(),
        )?;
        Ok(c)
    }

    fn wait(&self, what: &str, limit: Duration, f: impl FnMut() -> bool) -> Result<()> {
        crate::procs::wait_until(limit, what, f)
    }

    /// Every running agent reports the same leader.
    fn settled(&self) -> bool {
        let leaders: Vec<Option<String>> = self
            .agents
            .iter()
            .filter(|a| a.proc.pid().is_some())
            .map(|a| {
                a.api
                    .get::<serde_json::Value>("/v1/singletons")
                    .ok()
                    .and_then(|v| v[0]["leader"].as_str().map(str::to_string))
            })
            .collect();
        leaders.iter().all(|l| l.is_some() && *l == leaders[0])
    }

    /// Leadership starts and ends, from every agent's log: (when, agent, start?).
    fn leaderships(&self) -> Vec<(Instant, usize, bool)> {
        let mut out = Vec::new();
        for (i, a) in self.agents.iter().enumerate() {
            for (at, line) in a.proc.lines().lock().expect("lines").iter() {
                if line.contains(START) {
                    out.push((*at, i, true));
                } else if line.contains(END) {
                    out.push((*at, i, false));
                }
            }
        }
        out.sort_by_key(|e| e.0);
        out
    }

    /// The agent whose leadership started last and has not ended.
    fn leader(&self) -> Option<usize> {
        let mut current: Vec<usize> = Vec::new();
        for (_, i, start) in self.leaderships() {
            current.retain(|c| *c != i);
            if start {
                current.push(i);
            }
        }
        current.last().copied()
    }

    /// When an agent other than `old` started leading after `t0`.
    fn next_start(&self, old: usize, t0: Instant) -> Result<Instant> {
        let mut at = None;
        self.wait("another agent leads", Duration::from_secs(30), || {
            at = self
                .leaderships()
                .into_iter()
                .find(|(t, i, s)| *s && *i != old && *t >= t0)
                .map(|e| e.0);
            at.is_some()
        })?;
        Ok(at.expect("found"))
    }

    /// Takes the leader down with `signal`; returns it and the time to the next leader.
    fn fault(&mut self, signal: Signal) -> Result<(usize, Instant, Duration)> {
        let old = self.leader().context("no leader")?;
        let t0 = Instant::now();
        self.agents[old].proc.signal(signal)?;
        if signal == Signal::SIGKILL {
            // Reaped, so it counts as gone.
            self.agents[old].proc.stop(Duration::from_secs(5));
        }
        let next = self.next_start(old, t0)?;
        Ok((old, t0, next - t0))
    }

    /// When `observer` logged that `node` is down, after `t0`.
    fn down_seen(&self, observer: usize, node: &str, t0: Instant) -> Option<Duration> {
        let needle = format!("member {node} is Down");
        let lines = self.agents[observer].proc.lines();
        let lines = lines.lock().expect("lines");
        lines
            .iter()
            .find(|(t, l)| *t >= t0 && l.contains(&needle))
            .map(|(t, _)| *t - t0)
    }

    fn partition(&self, minority: &[usize]) -> Result<Vec<(usize, u64)>> {
        let mut refs = Vec::new();
        for (i, a) in self.agents.iter().enumerate() {
            let inside = minority.contains(&i);
            let others: Vec<String> = self
                .agents
                .iter()
                .enumerate()
                .filter(|(j, _)| minority.contains(j) != inside)
                .map(|(_, b)| b.name.clone())
                .collect();
            let v: serde_json::Value = a
                .api
                .post(
                    "/v1/partitions",
                    &Inject {
                        nodes: others,
                        ttl_ms: None,
                    },
                )
                .context("cannot inject a partition")?;
            refs.push((i, v["ref"].as_u64().context("no partition ref")?));
        }
        Ok(refs)
    }

    fn heal(&self, refs: Vec<(usize, u64)>) -> Result<()> {
        for (i, r) in refs {
            self.agents[i]
                .api
                .delete::<IgnoredAny>(&format!("/v1/partitions/{r}"))
                .context("cannot resolve a partition")?;
        }
        Ok(())
    }

    /// Pairs of leaderships (on different agents) that overlapped in time, and leaderships.
    fn overlaps(&self) -> (usize, usize) {
        let mut spans: Vec<(usize, Instant, Option<Instant>)> = Vec::new();
        for (t, i, start) in self.leaderships() {
            if start {
                spans.push((i, t, None));
            } else if let Some(s) = spans.iter_mut().rev().find(|s| s.0 == i && s.2.is_none()) {
                s.2 = Some(t);
            }
        }
        let mut overlaps = 0;
        for (k, a) in spans.iter().enumerate() {
            for b in &spans[k + 1..] {
                let end = |s: &(usize, Instant, Option<Instant>)| s.2.unwrap_or(Instant::now());
                if a.0 != b.0 && a.1 < end(b) && b.1 < end(a) {
                    overlaps += 1;
                }
            }
        }
        (overlaps, spans.len())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run_one(n: usize, cycles: usize, dir: &Path) -> Result<SingletonReport> {
    if n < 3 {
        bail!("--nodes: each size must be at least 3 (three leaders are taken down in turn)");
    }
    let mut c = Cluster::start(n, &mkdir(dir.join(format!("n{n}")))?, false)?;
    let (_, _, kill) = c.fault(Signal::SIGKILL)?;
    c.wait("the agents settle", Duration::from_secs(30), || c.settled())?;
    let (stopped, t0, stop) = c.fault(Signal::SIGSTOP)?;
    let successor = c.leader().context("a leader after SIGSTOP")?;
    let detect = c
        .down_seen(successor, &c.agents[stopped].name, t0)
        .unwrap_or(stop);
    c.agents[stopped].proc.signal(Signal::SIGCONT)?;
    c.wait("the agents settle", Duration::from_secs(30), || c.settled())?;
    let (_, _, term) = c.fault(Signal::SIGTERM)?;
    drop(c);
    let (mut overlaps, mut leaderships) = (0, 0);
    if cycles > 0 {
        let c = Cluster::start(n, &mkdir(dir.join(format!("majority-n{n}")))?, true)?;
        let mut rng = rand::thread_rng();
        for cycle in 0..cycles {
            let size = rng.gen_range(1..=(n - 1) / 2);
            let mut minority: Vec<usize> = Vec::new();
            // Half the cycles cut the leader off.
            if cycle % 2 == 0 {
                minority.extend(c.leader());
            }
            while minority.len() < size {
                let i = rng.gen_range(0..n);
                if !minority.contains(&i) {
                    minority.push(i);
                }
            }
            eprintln!("  cycle {}/{cycles}: cutting off {minority:?}", cycle + 1);
            let refs = c.partition(&minority)?;
            std::thread::sleep(Duration::from_secs(4));
            c.heal(refs)?;
            c.wait("the agents settle", Duration::from_secs(30), || c.settled())?;
        }
        (overlaps, leaderships) = c.overlaps();
    }
    Ok(SingletonReport {
        nodes: n,
        takeover_after_sigkill_ms: ms(kill),
        takeover_after_sigstop_ms: ms(stop),
        sigstop_detected_ms: ms(detect),
        handover_after_sigterm_ms: ms(term),
        majority_cycles: cycles,
        majority_leaderships: leaderships,
        majority_overlaps: overlaps,
    })
}

/// `dir`, created if missing.
fn mkdir(dir: PathBuf) -> Result<PathBuf> {
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

pub fn run(a: SingletonBench) -> Result<()> {
    let dir = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ensemble-bench-singleton-{}", std::process::id()))
    });
    let mut reports = Vec::new();
    for n in &a.nodes {
        eprintln!("{n} agents ...");
        reports.push(run_one(*n, a.cycles, &dir)?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    println!(
        "Singleton failover, agents on 127.0.0.1 (logs in {})\n",
        dir.display()
    );
    println!(
        "  {:<6} {:>14} {:>14} {:>14} {:>14} {:>22}",
        "agents", "SIGKILL", "SIGSTOP", "(detected)", "SIGTERM", "majority: overlaps"
    );
    for r in &reports {
        println!(
            "  {:<6} {:>11.0} ms {:>11.0} ms {:>11.0} ms {:>11.0} ms {:>10} in {} cycles ({} leaderships)",
            r.nodes,
            r.takeover_after_sigkill_ms,
            r.takeover_after_sigstop_ms,
            r.sigstop_detected_ms,
            r.handover_after_sigterm_ms,
            r.majority_overlaps,
            r.majority_cycles,
            r.majority_leaderships
        );
    }
    println!("\n  time from the signal to the next leader's start; (detected): the successor's failure detection of the SIGSTOPped agent");
    Ok(())
}
