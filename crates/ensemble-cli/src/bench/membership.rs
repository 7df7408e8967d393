//! `ensemble bench membership`: real agent processes on 127.0.0.1, side by side with HashiCorp
//! Serf when it is installed, measured in the same run.
//!
//! Events are timed from the agents' own logs, stamped as each line arrives (no polling, so the
//! measurement costs the agents nothing): Ensemble logs `member X is Up/Down`, Serf logs
//! `EventMemberJoin/EventMemberFailed: X`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nix::sys::signal::Signal;
use rand::RngCore;
use serde::Serialize;

use super::hog::Hog;
use crate::procs::{free_port, Lines, Proc};
use crate::token::{Token, TOKEN_ENV};

#[derive(Args, Debug)]
pub struct MembershipBench {
    /// Cluster sizes to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    nodes: Vec<usize>,
    /// Print one JSON array of results instead of tables.
    #[arg(long)]
    json: bool,
    /// Seconds of idle time over which CPU use is measured.
    #[arg(long, default_value_t = 10)]
    idle_s: u64,
    /// Skip Serf even if it is installed.
    #[arg(long)]
    no_serf: bool,
    /// Extra idle seconds before the faults, to count false positives over a long quiet run
    /// (the target is 300 s at 32 agents with none).
    #[arg(long, default_value_t = 0)]
    soak_s: u64,
    /// Threads that spin on the CPU during the soak (like `stress-ng --cpu N`), so false
    /// positives are counted on an overloaded machine: `--soak-s 600 --cpu-hog 2`.
    #[arg(long, default_value_t = 0, requires = "soak_s")]
    cpu_hog: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum System {
    Ensemble,
    Serf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Up,
    Down,
}

impl System {
    fn command(
        self,
        name: &str,
        port: u16,
        api: u16,
        seed: Option<u16>,
        secret: &str,
    ) -> Result<Command> {
        Ok(match self {
            System::Ensemble => {
                let mut c = Command::new(std::env::current_exe()?);
                c.args(["agent", "--name", name]);
                c.args([
                    "--bind",
                    &format!("127.0.0.1:{port}"),
                    "--http",
                    &format!("127.0.0.1:{api}"),
                ]);
                if let Some(s) = seed {
                    c.args(["--join", &format!("127.0.0.1:{s}")]);
                }
                // A token of its own: the bench reads no API, and leaves no token file behind.
                c.env("ENSEMBLE_SECRET", secret)
                    .env(TOKEN_ENV, Token::generate().as_str())
                    .env("RUST_LOG", "info");
                c
            }
            System::Serf => {
                let mut c = Command::new("serf");
                c.args([
                    "agent",
                    &format!("-node={name}"),
                    &format!("-bind=127.0.0.1:{port}"),
                ]);
                c.arg(format!("-rpc-addr=127.0.0.1:{api}"));
                if let Some(s) = seed {
                    c.arg(format!("-join=127.0.0.1:{s}"));
                }
                c
            }
        })
    }

    /// A log line that says the agent is ready to be joined.
    fn ready_marker(self) -> &'static str {
        match self {
            System::Ensemble => " listening on ",
            System::Serf => "Serf agent running!",
        }
    }

    /// The membership event a log line reports, if any.
    fn parse(self, line: &str) -> Option<(Kind, &str)> {
        let token = |rest: &str| rest.split_whitespace().next().map(|t| t.to_owned());
        match self {
            System::Ensemble => {
                for (kind, tag) in [(Kind::Up, " is Up ("), (Kind::Down, " is Down (")] {
                    if let Some(pos) = line.find(tag) {
                        let before = &line[..pos];
                        let name_at = before.rfind("member ")? + "member ".len();
                        return Some((kind, &line[name_at..pos]));
                    }
                }
                None
            }
            System::Serf => {
                for (kind, tag) in [
                    (Kind::Up, "EventMemberJoin: "),
                    (Kind::Down, "EventMemberFailed: "),
                ] {
                    if let Some(pos) = line.find(tag) {
                        let start = pos + tag.len();
                        let len = token(&line[start..])?.len();
                        return Some((kind, &line[start..start + len]));
                    }
                }
                None
            }
        }
    }
}

/// First time after `since` that `lines` reported `kind` for `member`.
fn first(
    system: System,
    lines: &Lines,
    kind: Kind,
    member: &str,
    since: Instant,
) -> Option<Instant> {
    let lines = lines.lock().expect("lines");
    lines
        .iter()
        .filter(|(t, _)| *t >= since)
        .find(|(_, l)| system.parse(l) == Some((kind, member)))
        .map(|(t, _)| *t)
}

/// When `lines` had reported `kind` for every name in `members` (after `since`).
fn all_reported(
    system: System,
    lines: &Lines,
    kind: Kind,
    members: &BTreeSet<String>,
    since: Instant,
) -> Option<Instant> {
    members
        .iter()
        .map(|m| first(system, lines, kind, m, since))
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .max()
}

#[derive(Debug, Serialize)]
struct Report {
    system: System,
    nodes: usize,
    convergence_ms: Option<u64>,
    kill_detect_p50_ms: Option<u64>,
    kill_detect_max_ms: Option<u64>,
    stop_detect_p50_ms: Option<u64>,
    stop_detect_max_ms: Option<u64>,
    stop_recover_ms: Option<u64>,
    rss_mb: f64,
    cpu_pct: f64,
    /// Members marked failed by any agent while every agent was healthy (before the SIGKILL).
    false_positives: usize,
    /// Seconds of that healthy period.
    healthy_s: u64,
    /// Spinning threads during the soak (`--cpu-hog`).
    cpu_hog: usize,
    /// CPU the spinning threads got during the soak, in percent of one core.
    cpu_hog_pct: f64,
}

struct Run {
    system: System,
    names: Vec<String>,
    procs: Vec<Proc>,
}

impl Run {
    fn wait(&self, limit: Duration, mut done: impl FnMut() -> Option<Instant>) -> Option<Instant> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(t) = done() {
                return Some(t);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal` to agent `target`, then measures how long until every observer reports
    /// `kind` for it.
    fn fault(
        &self,
        target: usize,
        signal: Signal,
        kind: Kind,
        observers: &[usize],
    ) -> Result<Option<Vec<Duration>>> {
        let since = Instant::now();
        self.procs[target].signal(signal)?;
        let delays = self.detection(observers, kind, &self.names[target], since);
        let slowest = delays.as_ref().and_then(|d| d.last());
        eprintln!(
            "  {:?}: {signal} seen by all others: {slowest:?}",
            self.system
        );
        Ok(delays)
    }

    /// Waits until every observer reported `kind` for `member`; returns per-observer delays.
    fn detection(
        &self,
        observers: &[usize],
        kind: Kind,
        member: &str,
        since: Instant,
    ) -> Option<Vec<Duration>> {
        let one: BTreeSet<String> = [member.to_owned()].into();
        let system = self.system;
        self.wait(Duration::from_secs(60), || {
            observers
                .iter()
                .map(|&i| all_reported(system, &self.procs[i].lines(), kind, &one, since))
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .max()
        })?;
        let mut d: Vec<Duration> = observers
            .iter()
            .filter_map(|&i| first(system, &self.procs[i].lines(), kind, member, since))
            .map(|t| t - since)
            .collect();
        d.sort();
        Some(d)
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// How long the agents stay healthy before the faults, and how many threads hog the CPU then.
#[derive(Debug, Clone, Copy)]
struct Soak {
    time: Duration,
    hog: usize,
}

fn run_one(system: System, n: usize, dir: &Path, idle: Duration, soak: Soak) -> Result<Report> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret = hex::encode(raw);
    let names: Vec<String> = (0..n)
        .map(|i| format!("{}{i}", if system == System::Serf { "s" } else { "e" }))
        .collect();
    let mut procs = Vec::new();
    let mut seed = None;
    let mut last_spawn = Instant::now();
    for name in &names {
        let port = free_port()?;
        let cmd = system.command(name, port, free_port()?, seed, &secret)?;
        let proc = Proc::spawn(cmd, &dir.join(format!("{name}.log")))?;
        last_spawn = Instant::now();
        if seed.is_none() {
            // Serf's -join is tried once: the seed must listen before the others start.
            let lines = proc.lines();
            let ready = || {
                lines
                    .lock()
                    .expect("lines")
                    .iter()
                    .any(|(_, l)| l.contains(system.ready_marker()))
            };
            let t = Instant::now();
            while !ready() {
                if t.elapsed() > Duration::from_secs(10) {
                    bail!(
                        "{system:?} seed agent did not start (logs in {})",
                        dir.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seed = Some(port);
        }
        procs.push(proc);
    }
    let run = Run {
        system,
        names: names.clone(),
        procs,
    };
    eprintln!("  {system:?}: {n} agents started");
    let everyone: BTreeSet<String> = names.iter().cloned().collect();
    let converged = run.wait(Duration::from_secs(60), || {
        (0..n)
            .map(|i| {
                let others: BTreeSet<String> = everyone
                    .iter()
                    .filter(|m| **m != run.names[i])
                    .cloned()
                    .collect();
                all_reported(
                    system,
                    &run.procs[i].lines(),
                    Kind::Up,
                    &others,
                    last_spawn - Duration::from_secs(60),
                )
            })
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    });
    let convergence_ms = converged.map(|t| ms(t.saturating_duration_since(last_spawn)));
    if converged.is_none() {
        bail!(
            "{system:?} did not converge at {n} agents within 60 s (logs in {})",
            dir.display()
        );
    }

    // Idle memory and CPU, after a moment to settle.
    std::thread::sleep(Duration::from_secs(3));
    let cpu0: Vec<Duration> = run
        .procs
        .iter()
        .map(|p| p.cpu_time().unwrap_or_default())
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(idle);
    let wall = t0.elapsed();
    let cpu1: Vec<Duration> = run
        .procs
        .iter()
        .map(|p| p.cpu_time().unwrap_or_default())
        .collect();
    let cpu_pct = cpu1
        .iter()
        .zip(&cpu0)
        .map(|(a, b)| (*a - *b).as_secs_f64())
        .sum::<f64>()
        / wall.as_secs_f64()
        / n as f64
        * 100.0;
    let rss_mb = run.procs.iter().filter_map(Proc::rss_bytes).sum::<u64>() as f64 / n as f64 / 1e6;

    let hog = (soak.hog > 0).then(|| Hog::start(soak.hog));
    std::thread::sleep(soak.time);
    let cpu_hog_pct = hog.map(Hog::stop).unwrap_or(0.0);
    let healthy_s = last_spawn.elapsed().as_secs();
    let false_positives = run
        .procs
        .iter()
        .map(|p| {
            let lines = p.lines();
            let lines = lines.lock().expect("lines");
            lines
                .iter()
                .filter(|(_, l)| matches!(system.parse(l), Some((Kind::Down, _))))
                .count()
        })
        .sum();

    // A crash: SIGKILL one agent.
    let killed = n / 2;
    let observers: Vec<usize> = (0..n).filter(|i| *i != killed).collect();
    let kill = run.fault(killed, Signal::SIGKILL, Kind::Down, &observers)?;

    // A hang: SIGSTOP another, then SIGCONT it.
    let stopped = (killed + 1) % n;
    let observers: Vec<usize> = observers.into_iter().filter(|i| *i != stopped).collect();
    std::thread::sleep(Duration::from_secs(2));
    let stop = run.fault(stopped, Signal::SIGSTOP, Kind::Down, &observers)?;
    let recover = run.fault(stopped, Signal::SIGCONT, Kind::Up, &observers)?;

    let p50 =
        |d: &Option<Vec<Duration>>| d.as_ref().and_then(|d| d.get(d.len() / 2)).copied().map(ms);
    let max = |d: &Option<Vec<Duration>>| d.as_ref().and_then(|d| d.last()).copied().map(ms);
    Ok(Report {
        system,
        nodes: n,
        convergence_ms,
        kill_detect_p50_ms: p50(&kill),
        kill_detect_max_ms: max(&kill),
        stop_detect_p50_ms: p50(&stop),
        stop_detect_max_ms: max(&stop),
        stop_recover_ms: max(&recover),
        rss_mb: (rss_mb * 10.0).round() / 10.0,
        cpu_pct: (cpu_pct * 100.0).round() / 100.0,
        false_positives,
        healthy_s,
        cpu_hog: soak.hog,
        cpu_hog_pct: cpu_hog_pct.round(),
    })
}

fn serf_installed() -> bool {
    Command::new("serf")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(args: MembershipBench) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ensemble-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create the log directory")?;
    let serf = !args.no_serf && serf_installed();
    if !serf && !args.no_serf {
        eprintln!("serf is not installed (apt-get install serf, or scripts/bench): Ensemble only");
    }
    eprintln!("agent logs in {}", dir.display());
    let mut reports = Vec::new();
    for &n in &args.nodes {
        if n < 3 {
            bail!("--nodes: each size must be at least 3");
        }
        let idle = Duration::from_secs(args.idle_s);
        let soak = Soak {
            time: Duration::from_secs(args.soak_s),
            hog: args.cpu_hog,
        };
        let edir = dir.join(format!("ensemble-{n}"));
        reports.push(run_one(System::Ensemble, n, &edir, idle, soak)?);
        if serf {
            let sdir = dir.join(format!("serf-{n}"));
            reports.push(run_one(System::Serf, n, &sdir, idle, soak)?);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", table(&reports));
    }
    Ok(())
}

/// Reads one figure of a report.
type Figure = fn(&Report) -> Option<f64>;

fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let fmt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_else(|| "-".into());
    for n in reports.iter().map(|r| r.nodes).collect::<BTreeSet<_>>() {
        let e = reports
            .iter()
            .find(|r| r.nodes == n && r.system == System::Ensemble);
        let s = reports
            .iter()
            .find(|r| r.nodes == n && r.system == System::Serf);
        out.push_str(&format!(
            "\n{n} agents            ensemble       serf   ensemble/serf\n"
        ));
        let rows: [(&str, Figure); 9] = [
            ("convergence ms", |r| r.convergence_ms.map(|v| v as f64)),
            ("SIGKILL p50 ms", |r| r.kill_detect_p50_ms.map(|v| v as f64)),
            ("SIGKILL all ms", |r| r.kill_detect_max_ms.map(|v| v as f64)),
            ("SIGSTOP p50 ms", |r| r.stop_detect_p50_ms.map(|v| v as f64)),
            ("SIGSTOP all ms", |r| r.stop_detect_max_ms.map(|v| v as f64)),
            ("SIGCONT back ms", |r| r.stop_recover_ms.map(|v| v as f64)),
            ("idle RSS MB", |r| Some(r.rss_mb)),
            ("idle CPU %", |r| Some(r.cpu_pct)),
            ("false positives", |r| Some(r.false_positives as f64)),
        ];
        for (label, get) in rows {
            let (ev, sv) = (e.and_then(get), s.and_then(get));
            let ratio = match (ev, sv) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            out.push_str(&format!(
                "  {label:<16} {:>10} {:>10} {:>12}\n",
                fmt(ev),
                fmt(sv),
                ratio
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_systems_logs() {
        let e = "2026-11-22T02:30:00Z  INFO member e3 is Down (down, incarnation 17) member=e3";
        assert_eq!(System::Ensemble.parse(e), Some((Kind::Down, "e3")));
        let e = "INFO member e12 is Up (alive, incarnation 9) member=e12 incarnation=9";
        assert_eq!(System::Ensemble.parse(e), Some((Kind::Up, "e12")));
        assert_eq!(System::Ensemble.parse("INFO agent e1 listening"), None);
        let s = "    2026/11/22 02:31:01 [INFO] serf: EventMemberFailed: s2 127.0.0.1";
        assert_eq!(System::Serf.parse(s), Some((Kind::Down, "s2")));
        let s = "    2026/11/22 02:30:53 [INFO] serf: EventMemberJoin: s1 127.0.0.1";
        assert_eq!(System::Serf.parse(s), Some((Kind::Up, "s1")));
    }
}
