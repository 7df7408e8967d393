//! The campaign's agents: N `ensemble agent` processes on 127.0.0.1 named n1..nN, with a
//! shared secret and API token, `--allow-fault-injection`, each in DIR/<name>/ with its log
//! (`agent.log`, appended to across restarts). Killed, restarted (same name; same or new
//! ports), paused and continued here; when each process ran is kept in [`Lives`]. Dropping
//! the cluster kills every process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use rand::RngCore;

use super::history::Clock;
use super::workload::{Endpoint, Endpoints, Lives};
use crate::client::ApiClient;
use crate::procs::{free_port, Proc};
use crate::token::{Token, TOKEN_ENV};
use crate::views::MemberView;

/// The extra `ensemble agent` flags of agent `name` whose directory is `dir`.
pub type AgentArgsFn = Arc<dyn Fn(&str, &Path) -> Vec<String> + Send + Sync>;

struct Agent {
    name: String,
    dir: PathBuf,
    port: u16,
    http: String,
    proc: Option<Proc>,
}

/// An agent that ended without the nemesis killing it.
#[derive(Debug, Clone)]
pub struct Crash {
    pub name: String,
    pub at_ms: u64,
    pub status: String,
}

pub struct Cluster {
    agents: Vec<Agent>,
    secret: String,
    token: Token,
    clock: Clock,
    args: AgentArgsFn,
    endpoints: Endpoints,
    lives: Lives,
    crashes: Vec<Crash>,
}

impl Cluster {
    /// Starts `n` agents under `dir`, n2..nN joining n1, and waits (at most `limit`) until
    /// every agent sees all `n` alive.
    pub fn start(
        n: usize,
        dir: &Path,
        clock: Clock,
        args: AgentArgsFn,
        limit: Duration,
    ) -> Result<Cluster> {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let mut agents = Vec::new();
        for i in 1..=n {
            let name = format!("n{i}");
            let dir = dir.join(&name);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            agents.push(Agent {
                name,
                dir,
                port: free_port()?,
                http: format!("127.0.0.1:{}", free_port()?),
                proc: None,
            });
        }
        let endpoints = Endpoints::new(
            agents
                .iter()
                .map(|a| Endpoint {
                    name: a.name.clone(),
                    http: a.http.clone(),
                })
                .collect(),
        );
        let mut c = Cluster {
            agents,
            secret: hex::encode(raw),
            token: Token::generate(),
            clock,
            args,
            endpoints,
            lives: Lives::new(),
            crashes: Vec::new(),
        };
        for i in 0..n {
            c.spawn(i)?;
        }
        let names = c.names();
        let clients: Vec<ApiClient> = names.iter().map(|n| c.client(n)).collect::<Result<_>>()?;
        crate::procs::wait_until(limit, "every agent sees every agent alive", || {
            std::thread::sleep(Duration::from_millis(200));
            clients.iter().all(|cl| alive_seen(cl) == Some(names.len()))
        })?;
        Ok(c)
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.agents
            .iter()
            .position(|a| a.name == name)
            .with_context(|| format!("no agent named {name}"))
    }

    /// Starts agent `i` on its ports, joining every other agent.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let a = &self.agents[i];
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["agent", "--name", &a.name, "--allow-fault-injection"])
            .args([
                "--bind",
                &format!("127.0.0.1:{}", a.port),
                "--http",
                &a.http,
            ])
            .env("ENSEMBLE_SECRET", &self.secret)
            .env(TOKEN_ENV, self.token.as_str())
            .env("RUST_LOG", "info");
        for (j, other) in self.agents.iter().enumerate() {
            // The first agent starts alone; every later start joins those running.
            if j != i && other.proc.is_some() {
                cmd.args(["--join", &format!("127.0.0.1:{}", other.port)]);
            }
        }
        cmd.args((self.args)(&a.name, &a.dir));
        let proc = Proc::spawn(cmd, &a.dir.join("agent.log"))?;
        let now = self.clock.now_ms();
        self.lives
            .entry(a.name.clone())
            .or_default()
            .push((now, None));
        self.agents[i].proc = Some(proc);
        Ok(())
    }

    /// The agents' names, n1..nN.
    pub fn names(&self) -> Vec<String> {
        self.agents.iter().map(|a| a.name.clone()).collect()
    }

    pub fn token(&self) -> Token {
        self.token.clone()
    }

    pub fn endpoints(&self) -> Endpoints {
        self.endpoints.clone()
    }

    /// Each agent's directory, by name.
    pub fn dirs(&self) -> BTreeMap<String, PathBuf> {
        self.agents
            .iter()
            .map(|a| (a.name.clone(), a.dir.clone()))
            .collect()
    }

    pub fn lives(&self) -> Lives {
        self.lives.clone()
    }

    pub fn crashes(&self) -> Vec<Crash> {
        self.crashes.clone()
    }

    /// A client of agent `name`'s API as it is now.
    pub fn client(&self, name: &str) -> Result<ApiClient> {
        let a = &self.agents[self.index(name)?];
        Ok(ApiClient::connect(&a.http, None, None)?
            .token(self.token.clone())
            .timeout(super::workload::CALL_TIMEOUT))
    }

    /// The cluster address of agent `name`.
    pub fn cluster_addr(&self, name: &str) -> Result<String> {
        Ok(format!("127.0.0.1:{}", self.agents[self.index(name)?].port))
    }

    /// Whether agent `name`'s process is running (perhaps paused).
    pub fn running(&self, name: &str) -> bool {
        self.index(name)
            .is_ok_and(|i| self.agents[i].proc.is_some())
    }

    /// SIGKILLs agent `name` (the end of one of its lives).
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let i = self.index(name)?;
        let Some(mut proc) = self.agents[i].proc.take() else {
            anyhow::bail!("{name} is not running");
        };
        proc.signal(Signal::SIGKILL)?;
        proc.stop(Duration::from_secs(5));
        self.end_life(name);
        Ok(())
    }

    fn end_life(&mut self, name: &str) {
        let now = self.clock.now_ms();
        if let Some(last) = self.lives.get_mut(name).and_then(|l| l.last_mut()) {
            last.1.get_or_insert(now);
        }
    }

    /// Starts agent `name` again under the same name: on new cluster and HTTP ports when
    /// `new_port` (the clients' endpoints are updated).
    pub fn restart(&mut self, name: &str, new_port: bool) -> Result<()> {
        let i = self.index(name)?;
        if new_port {
            self.agents[i].port = free_port()?;
            self.agents[i].http = format!("127.0.0.1:{}", free_port()?);
            self.endpoints.set_http(name, self.agents[i].http.clone());
        }
        self.spawn(i)
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to agent `name`.
    pub fn signal(&self, name: &str, signal: Signal) -> Result<()> {
        let a = &self.agents[self.index(name)?];
        a.proc
            .as_ref()
            .with_context(|| format!("{name} is not running"))?
            .signal(signal)
    }

    /// Resident memory of every running agent, in bytes.
    pub fn rss(&self) -> Vec<(String, u64)> {
        self.agents
            .iter()
            .filter_map(|a| Some((a.name.clone(), a.proc.as_ref()?.rss_bytes()?)))
            .collect()
    }

    /// Notes every agent that ended by itself since the last call (a crash: the nemesis only
    /// kills through [`Cluster::kill`]).
    pub fn reap(&mut self) {
        let now = self.clock.now_ms();
        let mut ended = Vec::new();
        for a in &mut self.agents {
            if let Some(status) = a.proc.as_mut().and_then(Proc::exited) {
                a.proc = None;
                ended.push((a.name.clone(), status));
            }
        }
        for (name, status) in ended {
            self.end_life(&name);
            self.crashes.push(Crash {
                name,
                at_ms: now,
                status: status.to_string(),
            });
        }
    }

    /// Continues every agent (none stays stopped) and sends SIGKILL to all of them.
    pub fn kill_all(&mut self) {
        for a in &mut self.agents {
            if let Some(p) = a.proc.take() {
                drop(p); // SIGCONT, SIGKILL, wait
            }
        }
        for name in self.names() {
            self.end_life(&name);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// How many members `client`'s agent sees alive, if it answers.
pub fn alive_seen(client: &ApiClient) -> Option<usize> {
    let members: Vec<MemberView> = client.get("/v1/members").ok()?;
    Some(members.iter().filter(|m| m.status == "alive").count())
}
