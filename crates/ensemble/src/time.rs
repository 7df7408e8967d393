//! Deadlines from caller-given timeouts.

use std::time::{Duration, Instant};

/// How far "for ever" is: a timeout too large to add to the clock waits this long instead.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + timeout`, or a century from now when the sum does not fit in an `Instant`
/// (`Duration::MAX` means "no deadline" to a caller; it must not panic the driver).
pub(crate) fn deadline(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

/// [`deadline`] on tokio's clock.
pub(crate) fn tokio_deadline(timeout: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(deadline(Instant::now(), timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_give_a_far_deadline_not_a_panic() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(deadline(now, Duration::MAX) >= now + Duration::from_secs(3600 * 24 * 365));
    }
}
