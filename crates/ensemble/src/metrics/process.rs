//! Process metrics on Linux, read from `/proc/self` when asked (on each scrape): CPU seconds,
//! resident memory, open file descriptors, start time and threads. Elsewhere they stay zero.

use metrics::{counter, gauge};

use super::names::*;

/// Reads the process's figures from `/proc/self` and records them (a no-op where there is no
/// `/proc`). Call it before rendering a scrape; [`crate::Node::start`] calls it once.
pub fn record_process() {
    let Some(p) = read() else { return };
    counter!(CPU).absolute(p.cpu_seconds as u64);
    gauge!(RSS).set(p.rss_bytes);
    gauge!(FDS).set(p.open_fds);
    gauge!(START_TIME).set(p.start_time);
    gauge!(THREADS).set(p.threads);
}

struct Process {
    cpu_seconds: f64,
    rss_bytes: f64,
    open_fds: f64,
    start_time: f64,
    threads: f64,
}

/// Clock ticks per second of `/proc`'s times (USER_HZ: 100 on every Linux architecture).
const TICKS: f64 = 100.0;
/// Page size assumed for `statm` (4 KiB on the common architectures).
const PAGE: f64 = 4096.0;

fn read() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    // stat(5) numbers fields from 1 with the state as field 3: here index = field - 3.
    let (utime, stime, threads, start) = (num(11)?, num(12)?, num(17)?, num(19)?);
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let rss_pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64;
    Some(Process {
        cpu_seconds: (utime + stime) / TICKS,
        rss_bytes: rss_pages * PAGE,
        open_fds,
        start_time: boot + start / TICKS,
        threads,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process_on_linux() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let p = super::read().expect("/proc/self is readable");
        assert!(p.rss_bytes > 0.0 && p.threads >= 1.0 && p.open_fds >= 1.0);
        assert!(p.start_time > 1.5e9, "since the epoch: {}", p.start_time);
    }
}
