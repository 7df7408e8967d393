//! `ensemble nemesis`: a Jepsen-style campaign over real agents on 127.0.0.1. It starts N
//! agents (cluster.rs) running a majority-rule singleton and one without the rule, both
//! writing to fenced logs the nemesis serves (fence.rs, leader.rs), and an event handler that
//! records every `member-failed`; runs the registered workloads (workload.rs) while the
//! executor (faults.rs) applies a seeded schedule (schedule.rs) of partitions, pauses, kills
//! and floods (flood.rs), recording what it did (record.rs); heals everything, waits for the
//! recovery window, and judges every guarantee (check_*.rs, and each workload's own checks)
//! into a report (report.rs). docs/RELIABILITY.md has the whole story.

mod broadcast;
mod calls;
mod check_agents;
mod check_membership;
mod check_singleton;
mod check_util;
mod cluster;
mod faults;
mod fence;
mod flood;
pub mod history;
pub mod leader;
mod members;
mod messaging;
mod query;
mod record;
mod report;
mod schedule;
mod tables;
mod watch;
pub mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use cluster::{AgentArgsFn, Cluster};
use fence::FenceLog;
use history::{Clock, History, Verdict};
use workload::{Ctx, End, Workload};

/// The singleton with the majority rule, and the one without it.
pub const LEADER_SINGLETON: &str = "leader";
pub const FREE_SINGLETON: &str = "free";
/// The bound on every agent's resident memory.
const MAX_RSS: u64 = 256 << 20;
/// How long the agents get to see each other at the start.
const START_LIMIT: Duration = Duration::from_secs(90);

#[derive(Args, Debug)]
pub struct NemesisArgs {
    /// Agents to start (3 to 9).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=9))]
    nodes: u16,
    /// Seconds of faults and workloads (5 to 86400).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    duration_s: u64,
    /// The schedule's seed (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds after the last fault healed within which every agent must see every agent
    /// alive (1 to 3600).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    recovery_s: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Directory for the agents' logs and files (default: a fresh temporary one, removed
    /// after a run that passed unless --keep).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the directory after a run that passed.
    #[arg(long)]
    keep: bool,
}

/// The workloads every campaign runs, each with its own checks.
pub fn workloads() -> Vec<Box<dyn Workload>> {
    vec![
        Box::new(members::Members),
        Box::new(tables::workload::Tables::default()),
        Box::new(broadcast::Broadcast::default()),
        Box::new(messaging::Messaging::default()),
        Box::new(query::Query::default()),
    ]
}

pub fn run(args: NemesisArgs) -> Result<()> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let n = usize::from(args.nodes);
    eprintln!("nemesis: seed {seed}");
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "ensemble-nemesis-{seed}-{}-{}",
            std::process::id(),
            wall_ms()
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let clock = Clock::start();
    let fences = [FenceLog::start(clock)?, FenceLog::start(clock)?];
    let workloads: Arc<Vec<Box<dyn Workload>>> = Arc::new(workloads());
    let agent_args = agent_args(n, &fences, workloads.clone())?;
    let cluster = Cluster::start(n, &dir, clock, agent_args, START_LIMIT)?;
    let names = cluster.names();
    let (token, endpoints, dirs) = (cluster.token(), cluster.endpoints(), cluster.dirs());
    let cluster = Arc::new(Mutex::new(cluster));
    let plan = schedule::schedule(seed, &names, args.duration_s * 1000);
    let t0 = clock.now_ms();
    let until_ms = t0 + args.duration_s * 1000;
    let watch = watch::Watch::start(cluster.clone(), clock);
    let history = History::default();
    let clients: Vec<_> = workloads
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let ctx = Ctx {
                endpoints: endpoints.clone(),
                token: token.clone(),
                clock,
                history: history.clone(),
                seed: seed ^ name_hash(w.name()),
                until_ms,
            };
            let w = workloads.clone();
            std::thread::spawn(move || w[i].run(ctx))
        })
        .collect();
    let mut executor = faults::Executor::new(cluster.clone(), clock, seed);
    executor.run(&plan, t0);
    std::thread::sleep(clock.at(until_ms).saturating_duration_since(Instant::now()));
    for c in clients {
        let _ = c.join();
    }
    let record = executor.record().lock().expect("record").clone();
    let lives = cluster.lock().expect("cluster").lives();
    let end = End {
        endpoints,
        token,
        clock,
        dirs,
        lives,
        faults: record.clone(),
    };
    let mut guarantees = vec![recover(&end, &names, Duration::from_secs(args.recovery_s))];
    let watched = watch.finish();
    let crashes = {
        let mut c = cluster.lock().expect("cluster");
        c.reap();
        c.crashes()
    };
    guarantees.push(check_membership::no_false_down(&watched.downs, &record, n));
    guarantees.push(check_singleton::no_overlap(&fences[0].appends()));
    let (free, observations) = check_singleton::free(&fences[1].appends(), &record);
    guarantees.push(free);
    let logs: BTreeMap<String, String> = names
        .iter()
        .map(|n| (n.clone(), read_file(&end, n, "agent.log")))
        .collect();
    let restarts = end
        .lives
        .values()
        .map(|l| l.len().saturating_sub(1) as u64)
        .sum();
    guarantees.push(check_agents::no_crash(&crashes, &logs, &record, restarts));
    guarantees.push(check_agents::memory_bounded(
        &watched.max_rss,
        watched.samples,
        MAX_RSS,
    ));
    let ops = history.ops();
    for w in workloads.iter() {
        guarantees.extend(w.check(&ops, &end));
    }
    let ended_ms = end.clock.now_ms();
    cluster.lock().expect("cluster").kill_all();

    // A verdict lists at most 20 violations and counts them all under `violations`.
    let violations: usize = guarantees
        .iter()
        .map(|v| {
            let counted = v.counts.get("violations").copied().unwrap_or(0) as usize;
            counted.max(v.violations.len())
        })
        .sum();
    let failed = guarantees.iter().any(|v| !v.passed);
    let kept = failed || args.keep || args.dir.is_some();
    let report = report::Report {
        seed,
        nodes: n,
        ended_ms,
        duration_s: args.duration_s,
        violations,
        guarantees,
        faults: record.by_kind(),
        operations: history::counts(&ops),
        schedule: plan,
        applied: record.applied,
        observations,
        dir: dir.display().to_string(),
        kept,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    if !kept {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if failed {
        anyhow::bail!(
            "{violations} violations (seed {seed}; the agents' logs are in {})",
            dir.display()
        );
    }
    Ok(())
}

/// The flags every agent gets: the two singletons writing to their fenced logs, the
/// `member-failed` recorder, and each workload's own.
fn agent_args(
    n: usize,
    fences: &[FenceLog; 2],
    workloads: Arc<Vec<Box<dyn Workload>>>,
) -> Result<AgentArgsFn> {
    let exe = std::env::current_exe()?.display().to_string();
    if exe.contains('\'') {
        anyhow::bail!("the ensemble binary's path holds a quote: {exe}");
    }
    let leader = |fence: &FenceLog| format!("exec '{exe}' nemesis-leader --fence {}", fence.addr());
    let (majority, free) = (leader(&fences[0]), leader(&fences[1]));
    Ok(Arc::new(move |name: &str, dir: &Path| {
        let mut a = vec![
            "--singleton".to_string(),
            format!("{LEADER_SINGLETON}={majority}"),
            "--singleton-majority".into(),
            format!("{LEADER_SINGLETON}={n}"),
            "--singleton".into(),
            format!("{FREE_SINGLETON}={free}"),
            "--event-handler".into(),
            check_membership::down_recorder(&dir.join(watch::DOWNS_FILE)),
        ];
        for w in workloads.iter() {
            a.extend(w.agent_args(name, dir));
        }
        a
    }))
}

/// Polls every agent's members until each sees every agent alive, for at most `limit`:
/// `membership.converged` on what each saw last.
fn recover(end: &End, names: &[String], limit: Duration) -> Verdict {
    let start = Instant::now();
    loop {
        let seen: BTreeMap<String, Option<Vec<(String, String)>>> = end
            .endpoints
            .all()
            .iter()
            .map(|e| {
                let view = end.client(e).ok().and_then(|c| {
                    let all: Vec<crate::views::MemberView> = c.get("/v1/members").ok()?;
                    Some(all.into_iter().map(|m| (m.name, m.status)).collect())
                });
                (e.name.clone(), view)
            })
            .collect();
        let waited = start.elapsed().as_millis() as u64;
        let v = check_membership::converged(&seen, names, waited);
        if v.passed || start.elapsed() > limit {
            return v;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The text of file `file` in agent `name`'s directory (empty if there is none).
fn read_file(end: &End, name: &str, file: &str) -> String {
    end.dirs
        .get(name)
        .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
        .unwrap_or_default()
}

/// FNV-1a of a workload's name: its seed is the campaign's xor this.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The wall clock, in ms since the Unix epoch.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
