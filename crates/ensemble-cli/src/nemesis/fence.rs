//! The fenced log the singletons' leaders write to, served by the nemesis on 127.0.0.1: one
//! JSON [`AppendRequest`] a line, answered by one JSON [`AppendAnswer`] line. It refuses an
//! append whose epoch is older than the newest it has seen, so a stale leader's writes show
//! as refusals, and records every append, accepted or refused, on the campaign's clock.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::history::Clock;

/// What a leader says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// It began leading.
    Start,
    /// It is still leading (every 200 ms).
    Tick,
    /// Its command was told to stop.
    Stop,
}

/// One line a leader sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendRequest {
    pub epoch: u64,
    pub node: String,
    pub mark: Mark,
    /// The leader's wall clock, in ms since the Unix epoch (kept for the record only).
    pub time_ms: u64,
}

/// The log's answer to one line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendAnswer {
    pub accepted: bool,
}

/// One append the log received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Append {
    pub epoch: u64,
    pub node: String,
    pub mark: Mark,
    /// When it arrived, in ms since the campaign started.
    pub at_ms: u64,
    pub accepted: bool,
}

/// Longest line read, and most connections served at once: more is refused.
const MAX_LINE: u64 = 1024;
const MAX_CONNECTIONS: usize = 64;
/// Most appends kept (a 200 ms tick for hours fits).
const MAX_APPENDS: usize = 1_000_000;

/// The log and its server (stopped when dropped).
pub struct FenceLog {
    addr: SocketAddr,
    appends: Arc<Mutex<Vec<Append>>>,
    stop: Arc<AtomicBool>,
}

impl FenceLog {
    /// Serves a new, empty log on a free port of 127.0.0.1.
    pub fn start(clock: Clock) -> Result<FenceLog> {
        let port = crate::procs::free_port()?;
        let listener = TcpListener::bind(("127.0.0.1", port)).context("fenced log: bind")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let appends: Arc<Mutex<Vec<Append>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let (log, done) = (appends.clone(), stop.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    continue; // dropped: closed
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (log, open) = (log.clone(), open.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &log, clock);
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Ok(FenceLog {
            addr,
            appends,
            stop,
        })
    }

    /// HOST:PORT to give the leaders.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every append so far, in the order they arrived.
    pub fn appends(&self) -> Vec<Append> {
        self.appends.lock().expect("fenced log").clone()
    }
}

impl Drop for FenceLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Decides and records one append: refused when older than the newest epoch seen.
pub fn decide(log: &mut Vec<Append>, req: AppendRequest, at_ms: u64) -> bool {
    let newest = log.iter().map(|a| a.epoch).max().unwrap_or(0);
    let accepted = req.epoch >= newest;
    if log.len() < MAX_APPENDS {
        log.push(Append {
            epoch: req.epoch,
            node: req.node,
            mark: req.mark,
            at_ms,
            accepted,
        });
    }
    accepted
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Append>>, clock: Clock) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        let n = (&mut reader).take(MAX_LINE).read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(()); // closed, or a line too long: the connection ends
        }
        let Ok(req) = serde_json::from_str::<AppendRequest>(&line) else {
            return Ok(());
        };
        let accepted = decide(&mut log.lock().expect("fenced log"), req, clock.now_ms());
        let mut answer = serde_json::to_string(&AppendAnswer { accepted })?;
        answer.push('\n');
        out.write_all(answer.as_bytes())?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(epoch: u64, node: &str) -> AppendRequest {
        AppendRequest {
            epoch,
            node: node.into(),
            mark: Mark::Tick,
            time_ms: 0,
        }
    }

    #[test]
    fn an_append_older_than_the_newest_epoch_is_refused_and_recorded() {
        let mut log = Vec::new();
        assert!(decide(&mut log, req(5, "n1"), 1));
        assert!(decide(&mut log, req(7, "n2"), 2));
        assert!(!decide(&mut log, req(5, "n1"), 3));
        assert!(decide(&mut log, req(7, "n2"), 4));
        assert_eq!(log.len(), 4);
        assert!(!log[2].accepted && log[2].node == "n1");
    }

    #[test]
    fn the_server_answers_each_line() {
        let log = FenceLog::start(Clock::start()).unwrap();
        let mut s = TcpStream::connect(log.addr()).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        for (epoch, want) in [(3, true), (2, false)] {
            let mut line = serde_json::to_string(&req(epoch, "n1")).unwrap();
            line.push('\n');
            s.write_all(line.as_bytes()).unwrap();
            let mut answer = String::new();
            r.read_line(&mut answer).unwrap();
            let a: AppendAnswer = serde_json::from_str(&answer).unwrap();
            assert_eq!(a.accepted, want);
        }
        assert_eq!(log.appends().len(), 2);
    }
}
