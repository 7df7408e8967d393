//! A CPU hog for the membership bench: threads that spin while the agents soak, like
//! `stress-ng --cpu N`, so that false positives are counted on an overloaded machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::procs::cpu_time_of;

/// Spinning threads, stopped by [`Hog::stop`].
pub struct Hog {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
    cpu0: Duration,
}

impl Hog {
    /// Starts `n` threads that spin until stopped.
    pub fn start(n: usize) -> Hog {
        let stop = Arc::new(AtomicBool::new(false));
        let cpu0 = cpu_time_of(std::process::id()).unwrap_or_default();
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) | 1);
                        }
                    }
                })
            })
            .collect();
        Hog {
            stop,
            threads,
            started: Instant::now(),
            cpu0,
        }
    }

    /// Stops the threads; returns the CPU they got, in percent of one core (this process's CPU
    /// time over the period, which the spinning threads dominate).
    pub fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let cpu = cpu_time_of(std::process::id()).unwrap_or_default();
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        cpu.saturating_sub(self.cpu0).as_secs_f64() / wall * 100.0
    }
}
