//! `ensemble demo`: a local cluster of agent processes, a crash, a restart, and the timeline.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nix::sys::signal::Signal;
use rand::RngCore;

use crate::client::ApiClient;
use crate::commands::members;
use crate::procs::{free_port, Proc};
use crate::token::{Token, TOKEN_ENV};
use crate::views::MemberView;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of agents to start (at least 3).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
}

struct Agent {
    name: String,
    bind: String,
    http: String,
    /// Its HTTP API.
    api: ApiClient,
    log: PathBuf,
    /// The running process; dropping it kills it.
    proc: Option<Proc>,
}

/// The demo's agents.
struct Cluster {
    agents: Vec<Agent>,
    secret: String,
    /// The agents' HTTP token (given them in ENSEMBLE_HTTP_TOKEN).
    token: Token,
    t0: Instant,
}

impl Cluster {
    fn say(&self, what: impl AsRef<str>) {
        println!(
            "[{:>6} ms] {}",
            self.t0.elapsed().as_millis(),
            what.as_ref()
        );
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let exe = std::env::current_exe().context("cannot find the ensemble binary")?;
        let a = &self.agents[i];
        let mut cmd = Command::new(exe);
        cmd.args([
            "agent", "--name", &a.name, "--bind", &a.bind, "--http", &a.http,
        ]);
        if i != 0 {
            cmd.args(["--join", &self.agents[0].bind]);
        }
        cmd.env("ENSEMBLE_SECRET", &self.secret)
            .env(TOKEN_ENV, self.token.as_str());
        let proc = Proc::spawn(cmd, &a.log)?;
        self.agents[i].proc = Some(proc);
        Ok(())
    }

    fn view(&self, i: usize) -> Option<Vec<MemberView>> {
        self.agents[i].api.get("/v1/members").ok()
    }

    fn status_of(&self, observer: usize, name: &str) -> Option<MemberView> {
        self.view(observer)?.into_iter().find(|m| m.name == name)
    }

    fn wait(&self, limit: Duration, what: &str, done: impl FnMut() -> bool) -> Result<()> {
        crate::procs::wait_until(limit, what, done)
    }
}

pub fn run(args: DemoArgs) -> Result<()> {
    if args.nodes < 3 {
        bail!("--nodes must be at least 3 (one to crash, two to notice)");
    }
    let dir = std::env::temp_dir().join(format!("ensemble-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let token = Token::generate();
    let mut agents = Vec::new();
    for i in 1..=args.nodes {
        let http = format!("127.0.0.1:{}", free_port()?);
        agents.push(Agent {
            name: format!("node{i}"),
            bind: format!("127.0.0.1:{}", free_port()?),
            api: ApiClient::new(&http)?.token(token.clone()),
            http,
            log: dir.join(format!("node{i}.log")),
            proc: None,
        });
    }
    let mut c = Cluster {
        agents,
        secret: hex::encode(raw),
        token,
        t0: Instant::now(),
    };
    println!(
        "Ensemble demo: {} agents on 127.0.0.1, default settings (agent logs in {})\n",
        args.nodes,
        dir.display()
    );
    let result = script(&mut c);
    if result.is_err() {
        eprintln!(
            "the demo stopped early; the agent logs are in {}",
            dir.display()
        );
    }
    result
}

fn script(c: &mut Cluster) -> Result<()> {
    let n = c.agents.len();
    for i in 0..n {
        c.spawn(i)?;
    }
    c.say(format!(
        "started {n} agents; node2..node{n} join through node1"
    ));
    let all: Vec<String> = c.agents.iter().map(|a| a.name.clone()).collect();
    let converged = |c: &Cluster, names: &[String]| {
        (0..n).all(|i| {
            c.view(i).is_some_and(|v| {
                names
                    .iter()
                    .all(|name| v.iter().any(|m| &m.name == name && m.status == "alive"))
            })
        })
    };
    c.wait(Duration::from_secs(20), "the cluster converges", || {
        converged(c, &all)
    })?;
    c.say(format!("converged: every agent sees all {n} members alive"));

    let victim = n / 2;
    let vname = c.agents[victim].name.clone();
    let old_inc = c.status_of(0, &vname).map(|m| m.incarnation).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let mut proc = c.agents[victim]
        .proc
        .take()
        .context("the agent is not running")?;
    let pid = proc.pid().unwrap_or(0);
    proc.signal(Signal::SIGKILL)?;
    let killed = Instant::now();
    c.say(format!(
        "SIGKILL {vname} (pid {pid}): no goodbye, its sockets close"
    ));
    proc.stop(Duration::from_secs(1));
    let survivors: Vec<usize> = (0..n).filter(|i| *i != victim).collect();
    let mut detected: Vec<Option<Duration>> = vec![None; n];
    c.wait(
        Duration::from_secs(30),
        "every survivor detects the crash",
        || {
            for &i in &survivors {
                if detected[i].is_none()
                    && c.status_of(i, &vname).is_some_and(|m| m.status == "down")
                {
                    detected[i] = Some(killed.elapsed());
                    c.say(format!(
                        "{} marks {vname} down (+{} ms)",
                        c.agents[i].name,
                        killed.elapsed().as_millis()
                    ));
                }
            }
            survivors.iter().all(|i| detected[*i].is_some())
        },
    )?;
    let slowest = detected.iter().flatten().max().copied().unwrap_or_default();
    c.say(format!(
        "all {} survivors detected the crash within {} ms",
        survivors.len(),
        slowest.as_millis()
    ));

    std::thread::sleep(Duration::from_secs(1));
    c.spawn(victim)?;
    let restarted = Instant::now();
    c.say(format!("restarting {vname} on the same address"));
    c.wait(
        Duration::from_secs(30),
        "the restarted node rejoins",
        || {
            survivors.iter().all(|&i| {
                c.status_of(i, &vname)
                    .is_some_and(|m| m.status == "alive" && m.incarnation > old_inc)
            })
        },
    )?;
    let rejoin = restarted.elapsed();
    let new_inc = c.status_of(0, &vname).map(|m| m.incarnation).unwrap_or(0);
    c.say(format!(
        "{vname} rejoined as incarnation {new_inc} (was {old_inc}); every survivor sees it alive (+{} ms)",
        rejoin.as_millis()
    ));
    c.wait(Duration::from_secs(20), "the cluster converges", || {
        converged(c, &all)
    })?;
    println!("\nMembers as node1 sees them:\n");
    if let Some(v) = c.view(0) {
        print!("{}", members::table(&v));
    }
    println!(
        "\nSummary: converged, crash detected by all survivors in {} ms, rejoined in {} ms.",
        slowest.as_millis(),
        rejoin.as_millis()
    );
    // Stop gracefully: SIGTERM makes each agent leave.
    for a in &c.agents {
        if let Some(p) = &a.proc {
            let _ = p.signal(Signal::SIGTERM);
        }
    }
    for a in &mut c.agents {
        if let Some(mut p) = a.proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }
    c.say("all agents left the cluster and stopped");
    Ok(())
}
