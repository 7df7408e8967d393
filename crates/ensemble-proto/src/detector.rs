//! The phi accrual failure detector (Hayashibara et al.), one per connection.
//!
//! It keeps a window of heartbeat inter-arrival times and answers, at any moment, how unlikely
//! the current silence is: `phi = -log10(P(a heartbeat arrives later than now))`, under a normal
//! distribution of the window's mean and standard deviation. A phi of 8 means the silence would
//! be seen once in 10^8 heartbeats of a healthy peer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Settings of the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Phi above which the peer is suspected.
    pub threshold: f64,
    /// Most inter-arrival samples kept.
    pub window: usize,
    /// Lower bound of the standard deviation, so a very regular link is not too touchy.
    pub min_std_dev: Duration,
    /// Silence tolerated on top of the mean before phi grows (GC pauses, busy machines).
    pub acceptable_pause: Duration,
    /// Heartbeat interval the peer is expected to use; seeds the window.
    pub expected_interval: Duration,
}

/// The detector of one peer.
#[derive(Debug, Clone)]
pub struct PhiDetector {
    config: DetectorConfig,
    intervals: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    last: Instant,
}

impl PhiDetector {
    /// A detector that counts `now` as the first heartbeat.
    pub fn new(config: DetectorConfig, now: Instant) -> Self {
        let mut d = PhiDetector {
            config,
            intervals: VecDeque::with_capacity(config.window),
            sum: 0.0,
            sum_sq: 0.0,
            last: now,
        };
        // Seed with the expected interval +- a quarter, as if two heartbeats had been seen.
        let mean = config.expected_interval.as_secs_f64() * 1000.0;
        d.push(mean - mean / 4.0);
        d.push(mean + mean / 4.0);
        d
    }

    fn push(&mut self, ms: f64) {
        if self.intervals.len() == self.config.window.max(1) {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.intervals.push_back(ms);
        self.sum += ms;
        self.sum_sq += ms * ms;
    }

    /// Records a heartbeat that arrived at `now`.
    pub fn heartbeat(&mut self, now: Instant) {
        let ms = now.saturating_duration_since(self.last).as_secs_f64() * 1000.0;
        self.push(ms);
        self.last = now;
    }

    /// Counts `now` as evidence of life (for example a confirmed indirect probe) without adding
    /// a sample, so phi starts again from zero.
    pub fn refresh(&mut self, now: Instant) {
        self.last = now;
    }

    /// When the last heartbeat (or refresh) arrived.
    pub fn last_heard(&self) -> Instant {
        self.last
    }

    /// The suspicion level at `now`.
    pub fn phi(&self, now: Instant) -> f64 {
        let n = self.intervals.len() as f64;
        let mean = self.sum / n;
        let variance = (self.sum_sq / n - mean * mean).max(0.0);
        let min_std = self.config.min_std_dev.as_secs_f64() * 1000.0;
        let std_dev = variance.sqrt().max(min_std);
        let mean = mean + self.config.acceptable_pause.as_secs_f64() * 1000.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64() * 1000.0;
        phi(elapsed, mean, std_dev)
    }

    /// True if phi at `now` is above the threshold.
    pub fn is_suspect(&self, now: Instant) -> bool {
        self.phi(now) > self.config.threshold
    }
}

/// Phi of a silence of `elapsed` ms, using the logistic approximation of the normal tail.
fn phi(elapsed: f64, mean: f64, std_dev: f64) -> f64 {
    let y = (elapsed - mean) / std_dev;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if elapsed > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DetectorConfig {
        DetectorConfig {
            threshold: 8.0,
            window: 100,
            min_std_dev: Duration::from_millis(100),
            acceptable_pause: Duration::from_millis(500),
            expected_interval: Duration::from_millis(500),
        }
    }

    #[test]
    fn regular_heartbeats_keep_phi_low() {
        let t0 = Instant::now();
        let mut d = PhiDetector::new(config(), t0);
        for i in 1..=50 {
            d.heartbeat(t0 + Duration::from_millis(500 * i));
        }
        let last = t0 + Duration::from_millis(500 * 50);
        assert!(d.phi(last + Duration::from_millis(500)) < 1.0);
        assert!(!d.is_suspect(last + Duration::from_millis(900)));
    }

    #[test]
    fn silence_raises_phi_monotonically_until_suspect() {
        let t0 = Instant::now();
        let mut d = PhiDetector::new(config(), t0);
        for i in 1..=20 {
            d.heartbeat(t0 + Duration::from_millis(500 * i));
        }
        let last = t0 + Duration::from_millis(500 * 20);
        let mut prev = 0.0;
        for ms in (0..3000).step_by(100) {
            let p = d.phi(last + Duration::from_millis(ms));
            assert!(p >= prev, "phi fell from {prev} to {p} at {ms} ms");
            prev = p;
        }
        assert!(d.is_suspect(last + Duration::from_millis(2000)));
    }

    #[test]
    fn refresh_resets_the_silence() {
        let t0 = Instant::now();
        let mut d = PhiDetector::new(config(), t0);
        let later = t0 + Duration::from_secs(10);
        assert!(d.is_suspect(later));
        d.refresh(later);
        assert!(!d.is_suspect(later));
    }

    #[test]
    fn jittery_links_are_given_more_slack() {
        let t0 = Instant::now();
        let mut steady = PhiDetector::new(config(), t0);
        let mut jittery = PhiDetector::new(config(), t0);
        let mut t_s = t0;
        let mut t_j = t0;
        for i in 0..60 {
            t_s += Duration::from_millis(500);
            steady.heartbeat(t_s);
            t_j += Duration::from_millis(if i % 2 == 0 { 100 } else { 900 });
            jittery.heartbeat(t_j);
        }
        let gap = Duration::from_millis(1500);
        assert!(jittery.phi(t_j + gap) < steady.phi(t_s + gap));
    }
}
