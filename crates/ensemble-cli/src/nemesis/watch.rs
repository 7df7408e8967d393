//! Once a second while the campaign runs: every agent's resident memory (the highest kept per
//! agent) and any agent that ended by itself (noted by [`Cluster::reap`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cluster::Cluster;

/// The highest resident memory seen per agent, in bytes, and how many samples were taken.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub max_rss: BTreeMap<String, u64>,
    pub samples: u64,
}

pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Memory>>,
}

impl Watch {
    pub fn start(cluster: Arc<Mutex<Cluster>>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut m = Memory::default();
            while !done.load(Ordering::Relaxed) {
                let mut c = cluster.lock().expect("cluster");
                c.reap();
                for (name, rss) in c.rss() {
                    let max = m.max_rss.entry(name).or_default();
                    *max = (*max).max(rss);
                }
                m.samples += 1;
                drop(c);
                std::thread::sleep(Duration::from_secs(1));
            }
            m
        });
        Watch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; what was measured.
    pub fn finish(mut self) -> Memory {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}
