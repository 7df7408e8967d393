//! Helpers shared by the end-to-end tests of `ensemble` processes.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

pub const SECRET: &str = "e2e-secret-0123456789abcdef";

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_ensemble")
}

/// The tests' `ENSEMBLE_HOME`: where their agents create the HTTP token and their client
/// commands find it (not the user's ~/.ensemble).
pub fn home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ensemble-home")
}

/// `ensemble` with the tests' `ENSEMBLE_HOME`.
pub fn cli() -> Command {
    let mut c = Command::new(exe());
    c.env("ENSEMBLE_HOME", home());
    c
}

/// The HTTP token the tests' agents created (empty until the first agent started).
pub fn token() -> String {
    std::fs::read_to_string(home().join("http-token"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The `Authorization` header value for the tests' agents.
pub fn bearer() -> String {
    format!("Bearer {}", token())
}

/// A free port below the ephemeral range, so no agent's outgoing connection can take it first,
/// and never the same twice in one process (tests running at once pick ports before their
/// agents bind them).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), 20000..32000);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

pub struct Agent {
    pub name: String,
    pub bind: String,
    pub http: String,
    pub log: PathBuf,
    pub child: Option<Child>,
    /// Extra flags given at every start.
    pub extra: Vec<String>,
    /// Extra environment variables given at every start.
    pub env: Vec<(String, String)>,
}

impl Agent {
    pub fn start(dir: &Path, name: &str, join: Option<&str>, secret: &str) -> Agent {
        Self::start_with(dir, name, join, secret, &[])
    }

    pub fn start_with(
        dir: &Path,
        name: &str,
        join: Option<&str>,
        secret: &str,
        extra: &[&str],
    ) -> Agent {
        let mut a = Agent::prepare(dir, name, extra);
        a.spawn(join, secret);
        a
    }

    /// An agent with its ports picked, not started yet (set `env`, then `spawn`).
    pub fn prepare(dir: &Path, name: &str, extra: &[&str]) -> Agent {
        Agent {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            name: name.into(),
            bind: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
            log: dir.join(format!("{name}.log")),
            child: None,
            env: Vec::new(),
        }
    }

    pub fn spawn(&mut self, join: Option<&str>, secret: &str) {
        let mut cmd = cli();
        cmd.args([
            "agent", "--name", &self.name, "--bind", &self.bind, "--http", &self.http,
        ]);
        if let Some(j) = join {
            cmd.args(["--join", j]);
        }
        cmd.args(&self.extra);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = cmd
            .env("ENSEMBLE_SECRET", secret)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    pub fn signal(&self, s: Signal) {
        kill(self.pid(), s).unwrap();
    }

    pub fn members(&self) -> Option<Vec<Value>> {
        let out = cli()
            .args(["members", "--http", &self.http, "--json"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    pub fn status_of(&self, name: &str) -> Option<(String, u64)> {
        let m = self.members()?.into_iter().find(|m| m["name"] == name)?;
        Some((m["status"].as_str()?.to_owned(), m["incarnation"].as_u64()?))
    }

    /// Waits until the agent's HTTP API answers (with the token), at most `limit`.
    pub fn wait_answers(&self, limit: Duration) {
        wait_for(limit, "the agent answers", || {
            ureq_get(&self.http, "/v1/self").is_some()
        });
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ensemble leave` succeeded and reported the graceful leave complete.
pub fn assert_left_gracefully(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Graceful leave complete"), "{stdout}");
}

/// Every agent but those at the indexes in `skip` holds `name` with `status`.
pub fn everyone_sees(agents: &[Agent], skip: &[usize], name: &str, status: &str) -> bool {
    agents
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains(i))
        .all(|(_, a)| a.status_of(name).is_some_and(|(s, _)| s == status))
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    start.elapsed()
}

/// Starts agents a0..a{n-1} with `extra` flags, all joining through a0 (without waiting).
pub fn start_agents(dir: &Path, n: usize, extra: &[&str]) -> Vec<Agent> {
    let first = Agent::start_with(dir, "a0", None, SECRET, extra);
    let seed = first.bind.clone();
    let mut agents = vec![first];
    for i in 1..n {
        let name = format!("a{i}");
        agents.push(Agent::start_with(dir, &name, Some(&seed), SECRET, extra));
    }
    agents
}

pub fn cluster(dir: &Path, n: usize) -> Vec<Agent> {
    let agents = start_agents(dir, n, &[]);
    wait_for(Duration::from_secs(30), "agents converge", || {
        agents.iter().all(|a| {
            a.members()
                .is_some_and(|m| m.len() == n && m.iter().all(|m| m["status"] == "alive"))
        })
    });
    agents
}

pub fn fails_saying(args: &[&str], needles: &[&str]) {
    let out: Output = cli()
        .args(args)
        .env("ENSEMBLE_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success(), "ensemble {args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "ensemble {args:?}: {n:?} not in {err}");
    }
}

/// Runs `ensemble ARGS`, expects success, and parses its standard output as JSON.
pub fn json_of(args: &[&str]) -> Value {
    let out = cli().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ensemble {args:?} failed: {err}");
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn ureq_get(http: &str, path: &str) -> Option<Value> {
    ureq::get(&format!("http://{http}{path}"))
        .set("Authorization", &bearer())
        .call()
        .ok()?
        .into_json()
        .ok()
}

/// `method path` on the agent at `http` with the tests' token and a JSON `body`, if any: the
/// status and the JSON answer (Null if it is not JSON).
pub fn call_json(http: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_json_with(&ureq::agent(), http, method, path, body)
}

/// As [`call_json`], through `agent` (its connections reused).
pub fn call_json_with(
    agent: &ureq::Agent,
    http: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let req = agent
        .request(method, &format!("http://{http}{path}"))
        .set("Authorization", &bearer())
        .timeout(Duration::from_secs(30));
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let resp = match resp {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `ensemble ARGS` in the background, its standard output in a file (`ensemble events`,
/// `ensemble monitor`); killed on drop.
pub struct Follower {
    pub out: PathBuf,
    child: Child,
}

impl Follower {
    pub fn start(args: &[&str], out: PathBuf) -> Follower {
        let file = std::fs::File::create(&out).unwrap();
        let child = cli()
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Follower { out, child }
    }

    /// What it printed so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The lines it printed so far that are JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The JSON lines but heartbeats.
    pub fn records(&self) -> Vec<Value> {
        let mut lines = self.json_lines();
        lines.retain(|l| l["type"] != "heartbeat");
        lines
    }

    /// A heartbeat came through: the stream is connected.
    pub fn has_heartbeat(&self) -> bool {
        self.json_lines().iter().any(|l| l["type"] == "heartbeat")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True if `tool --version` runs; otherwise fails under CI (`CI=true`), else says why the
/// test does nothing. `setup` is the script that installs it.
pub fn have(tool: &str, setup: &str) -> bool {
    let runs = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is missing under CI: {setup} installs it");
        }
        eprintln!("skipped: {tool} is missing ({setup} installs it)");
    }
    runs
}
