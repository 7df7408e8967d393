//! Agent processes started by `ensemble demo` and `ensemble bench`: spawned, logged, signalled,
//! measured, and always killed when dropped; free ports, polling with a deadline, and the async
//! runtime the agent and the benches run on.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The async runtime the binary's commands run on: two worker threads.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Polls `done` every 5 ms until it holds, or fails after `limit` naming `what`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            anyhow::bail!("timed out after {limit:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1, below Linux's ephemeral range (32768 and up) so that no
/// outgoing connection of another agent can take it between now and the agent's bind, and
/// never the same port twice in one process (an agent just started may not have bound yet).
pub fn free_port() -> Result<u16> {
    use rand::Rng;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().expect("port list");
    for _ in 0..1000 {
        let port = rand::thread_rng().gen_range(20000..32000);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no free port found between 20000 and 32000 on 127.0.0.1")
}

/// Log lines of one process, with the time each arrived.
pub type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// A running child whose output is copied to a log file and kept, timestamped, in memory.
pub struct Proc {
    child: Option<Child>,
    lines: Lines,
}

impl Proc {
    /// Starts `cmd`, sending its stdout and stderr to `log` and to [`Proc::lines`].
    pub fn spawn(mut cmd: Command, log: &Path) -> Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        let lines: Lines = Arc::default();
        let file = Arc::new(Mutex::new(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(log)?,
        ));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped"));
        for stream in [out, err] {
            let (lines, file) = (lines.clone(), file.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let now = Instant::now();
                    let _ = writeln!(file.lock().expect("log file"), "{line}");
                    lines.lock().expect("lines").push((now, line));
                }
            });
        }
        Ok(Proc {
            child: Some(child),
            lines,
        })
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal.
    pub fn signal(&self, s: Signal) -> Result<()> {
        let pid = self.pid().context("the process is not running")?;
        kill(Pid::from_raw(pid as i32), s).context("cannot signal the process")
    }

    /// Waits for the process to end, for at most `limit`; kills it after that.
    pub fn stop(&mut self, limit: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// How the process ended, once it has (None while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The lines seen so far.
    pub fn lines(&self) -> Lines {
        self.lines.clone()
    }

    /// Resident memory in bytes, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// CPU time used so far (user + system), from /proc.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time_of(self.pid()?)
    }
}

/// CPU time process `pid` used so far (user + system), from /proc.
pub fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()??
        .max(1) as u64;
    Some(Duration::from_millis(ticks * 1000 / hz))
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process must be continued to die promptly.
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
