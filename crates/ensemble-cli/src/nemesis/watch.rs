//! While the campaign runs: every 250 ms, the new lines of each agent's `failed.log` (its
//! `member-failed` recorder), stamped on the campaign's clock as they are read; once a second,
//! every agent's resident memory (the highest kept per agent) and any agent that ended by
//! itself (noted by [`Cluster::reap`]).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::check_membership::{parse_down, Down};
use super::cluster::Cluster;
use super::history::Clock;

/// The file each agent's recorder appends to, in its directory.
pub const DOWNS_FILE: &str = "failed.log";

/// What was watched.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// The highest resident memory seen per agent, in bytes.
    pub max_rss: BTreeMap<String, u64>,
    /// Memory samples taken.
    pub samples: u64,
    /// Every `down` recorded, when it was read.
    pub downs: Vec<Down>,
}

pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Watched>>,
}

/// Where each agent's recorder file was read up to.
struct Tail {
    files: BTreeMap<String, (PathBuf, u64)>,
}

impl Tail {
    /// The complete lines appended since the last read, by agent.
    fn read(&mut self, clock: Clock, out: &mut Vec<Down>) {
        for (name, (path, at)) in &mut self.files {
            let Ok(mut f) = std::fs::File::open(&*path) else {
                continue;
            };
            let mut text = String::new();
            if f.seek(SeekFrom::Start(*at)).is_err() || f.read_to_string(&mut text).is_err() {
                continue;
            }
            let Some(end) = text.rfind('\n') else {
                continue;
            };
            *at += end as u64 + 1;
            let now = clock.now_ms();
            out.extend(text[..end].lines().filter_map(|l| parse_down(name, l, now)));
        }
    }
}

impl Watch {
    pub fn start(cluster: Arc<Mutex<Cluster>>, clock: Clock) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let files = cluster.lock().expect("cluster").dirs();
        let mut tail = Tail {
            files: files
                .into_iter()
                .map(|(n, d)| (n, (d.join(DOWNS_FILE), 0)))
                .collect(),
        };
        let thread = std::thread::spawn(move || {
            let mut w = Watched::default();
            for round in 0u64.. {
                let last = done.load(Ordering::Relaxed);
                tail.read(clock, &mut w.downs);
                if round % 4 == 0 || last {
                    let mut c = cluster.lock().expect("cluster");
                    c.reap();
                    for (name, rss) in c.rss() {
                        let max = w.max_rss.entry(name).or_default();
                        *max = (*max).max(rss);
                    }
                    w.samples += 1;
                }
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            w
        });
        Watch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching (after one last look); what was seen.
    pub fn finish(mut self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}
