//! What the checkers share: a verdict with a bounded list of violations, and which process of
//! an agent ran when (from `End::lives`).

use std::collections::BTreeMap;

use super::history::Verdict;
use super::workload::Lives;

/// The most violations a verdict lists (their count is in its `counts`).
pub const MAX_LISTED: usize = 20;

/// A verdict listing at most [`MAX_LISTED`] of `violations`, their count in `counts`.
pub fn verdict(
    guarantee: &str,
    mut counts: BTreeMap<String, u64>,
    mut violations: Vec<String>,
) -> Verdict {
    counts.insert("violations".into(), violations.len() as u64);
    violations.truncate(MAX_LISTED);
    Verdict::new(guarantee, counts, violations)
}

/// Whether agent `name`'s process ended (killed, or exited) after `ms`: what it alone held
/// then may be gone.
pub fn ended_after(lives: &Lives, name: &str, ms: u64) -> bool {
    lives
        .get(name)
        .is_some_and(|l| l.iter().any(|(_, end)| end.is_some_and(|end| end > ms)))
}

/// Whether one process of agent `name` ran from `ms` to the end (true for an agent `lives`
/// does not know).
pub fn alive_through(lives: &Lives, name: &str, ms: u64) -> bool {
    lives
        .get(name)
        .is_none_or(|l| l.iter().any(|(start, end)| *start <= ms && end.is_none()))
}

/// Which of agent `name`'s processes was running at `ms` (its index in `lives`; `usize::MAX`
/// when none was, or `lives` does not know the agent).
pub fn life_of(lives: &Lives, name: &str, ms: u64) -> usize {
    lives
        .get(name)
        .and_then(|l| {
            l.iter()
                .rposition(|(start, end)| *start <= ms && end.is_none_or(|e| ms <= e))
        })
        .unwrap_or(usize::MAX)
}
