//! Per-origin token buckets: how many queries a member may start (at the origin) or have
//! answered (at each receiver) per second.

use std::collections::HashMap;
use std::time::Instant;

/// Origins tracked at once; past this a new origin is refused until idle buckets are swept.
const MAX_ORIGINS: usize = 1024;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by origin.
pub(super) struct Rates {
    per_sec: f64,
    burst: f64,
    buckets: HashMap<String, Bucket>,
}

impl Rates {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Rates {
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token of `origin`'s bucket; false if it is empty.
    pub fn take(&mut self, now: Instant, origin: &str) -> bool {
        if !self.buckets.contains_key(origin) {
            if self.buckets.len() >= MAX_ORIGINS {
                self.sweep(now);
                if self.buckets.len() >= MAX_ORIGINS {
                    return false;
                }
            }
            let b = Bucket {
                tokens: self.burst,
                at: now,
            };
            self.buckets.insert(origin.to_owned(), b);
        }
        let b = self.buckets.get_mut(origin).expect("inserted");
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }

    /// Forgets the buckets that have refilled (they would start full again anyway).
    pub fn sweep(&mut self, now: Instant) {
        let (per_sec, burst) = (self.per_sec, self.burst);
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * per_sec < burst
        });
    }
}
