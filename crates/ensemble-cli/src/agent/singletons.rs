//! Singletons from the agent: `ensemble agent --singleton NAME=COMMAND` runs COMMAND on the
//! one agent that leads NAME (with its fencing epoch in ENSEMBLE_EPOCH) and stops it when that
//! agent steps down.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use ensemble::{Node, Singleton, SingletonEvent, SingletonHandle, SingletonOptions};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tracing::{info, warn};

use super::settings::SECRET_VARS;
use crate::history::History;

/// How long a stopped command gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs a shell command while this agent leads the singleton.
struct CommandSingleton {
    name: String,
    node: String,
    command: String,
    /// Told of each new leader, for the agent's history.
    history: History,
}

/// A running command: its process group is killed if it is dropped unstopped.
struct Running {
    child: Option<Child>,
    /// The epoch of the leadership it runs for.
    epoch: u64,
}

impl Running {
    fn pgid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let (Some(pgid), Some(mut child)) = (self.pgid(), self.child.take()) {
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Reapers of stopped commands, joined before the agent exits.
static REAPERS: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

impl Singleton for CommandSingleton {
    type State = Option<Running>;

    fn init(&mut self) -> Option<Running> {
        None
    }

    fn event(&mut self, running: Option<Running>, event: SingletonEvent) -> Option<Running> {
        if let SingletonEvent::NowLeader { .. } | SingletonEvent::NowFollower { .. } = event {
            self.history.poke_singletons();
        }
        match event {
            SingletonEvent::NowLeader { epoch } => {
                stop(&self.name, running);
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(&self.command)
                    .env("ENSEMBLE_SINGLETON", &self.name)
                    .env("ENSEMBLE_EPOCH", epoch.to_string())
                    .env("ENSEMBLE_NODE", &self.node)
                    // Gone from the agent's environment already; never passed on.
                    .env_remove(SECRET_VARS[0])
                    .env_remove(SECRET_VARS[1])
                    .env_remove(SECRET_VARS[2])
                    .stdin(Stdio::null())
                    // Its own process group, so that stopping it stops what it started too.
                    .process_group(0);
                // If the agent dies (SIGKILL), its command gets SIGTERM: a leader's work must
                // not outlive its leadership.
                // SAFETY: the closure only makes the prctl system call, which is
                // async-signal-safe, between fork and exec.
                unsafe {
                    cmd.pre_exec(|| {
                        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
                            .map_err(std::io::Error::from)
                    });
                }
                match cmd.spawn() {
                    Ok(c) => {
                        info!(singleton = %self.name, pid = c.id(), epoch, "started the command of singleton {}", self.name);
                        Some(Running {
                            child: Some(c),
                            epoch,
                        })
                    }
                    Err(e) => {
                        warn!(singleton = %self.name, "cannot run the command of singleton {} (--singleton {}=...): {e}", self.name, self.name);
                        None
                    }
                }
            }
            SingletonEvent::Shutdown { reason } => {
                if running.is_some() {
                    info!(singleton = %self.name, "stopping the command of singleton {} ({})", self.name, reason.as_str());
                }
                stop(&self.name, running);
                None
            }
            _ => running,
        }
    }

    /// The command's process id and the epoch it runs for, while it runs.
    fn mod_state(&self, running: &Option<Running>) -> Option<serde_json::Value> {
        let r = running.as_ref()?;
        let pid = r.child.as_ref()?.id();
        Some(serde_json::json!({ "pid": pid, "epoch": r.epoch }))
    }
}

/// SIGTERM to the command's process group, then SIGKILL after the grace time; reaped on a
/// thread so the handler never waits ([`wait_for_commands`] joins it).
fn stop(name: &str, running: Option<Running>) {
    let Some(mut running) = running else { return };
    let (Some(pgid), Some(mut child)) = (running.pgid(), running.child.take()) else {
        return;
    };
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = killpg(pgid, Signal::SIGTERM);
    let name = name.to_string();
    let reaper = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        warn!(singleton = %name, "the command of singleton {name} ignored SIGTERM; killing it");
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait();
    });
    REAPERS.lock().expect("reapers").push(reaper);
}

/// Waits (at most the grace time, plus a little) until every stopped command has exited or
/// been killed: the agent calls it before it exits.
pub fn wait_for_commands() {
    let reapers: Vec<_> = std::mem::take(&mut *REAPERS.lock().expect("reapers"));
    for r in reapers {
        let _ = r.join();
    }
}

/// `NAME=N` for `--singleton-majority`.
pub fn parse_majority(s: &str) -> Result<(String, usize), String> {
    let (n, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=N, got {s:?}"))?;
    let v: usize = v
        .parse()
        .map_err(|_| format!("expected NAME=N with N a number of agents, got {s:?}"))?;
    if n.is_empty() || v == 0 {
        return Err(format!("expected NAME=N with N at least 1, got {s:?}"));
    }
    Ok((n.to_string(), v))
}

/// Starts an activator per `(name, command)`; `majority` gives the majority rule's size.
pub async fn spawn(
    node: &Node,
    singletons: Vec<(String, String)>,
    majority: &[(String, usize)],
    history: &History,
) -> Result<Vec<SingletonHandle>> {
    let mut handles = Vec::new();
    for (name, command) in singletons {
        let mut options = SingletonOptions::new();
        if let Some((_, n)) = majority.iter().find(|(m, _)| *m == name) {
            options = options.majority_of(*n);
        }
        let handler = CommandSingleton {
            name: name.clone(),
            node: node.name().to_string(),
            command,
            history: history.clone(),
        };
        let h = node
            .singleton(&name, handler, options)
            .await
            .with_context(|| format!("cannot start singleton {name:?} (--singleton)"))?;
        handles.push(h);
    }
    Ok(handles)
}
