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

/// When the process of agent `name` that was running at `ms` ended (None: it ran to the end,
/// or none was running then).
pub fn ended_at(lives: &Lives, name: &str, ms: u64) -> Option<u64> {
    lives
        .get(name)?
        .iter()
        .find(|(start, end)| *start <= ms && end.is_none_or(|e| ms <= e))?
        .1
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

/// What each agent's handler wrote to its file, by agent (`None`: no file to read).
pub type Files = BTreeMap<String, Option<Vec<String>>>;

/// Each agent's file `file` (in its directory), read by `read` again every 500 ms until
/// `done` says so, no file grew for 5 s, or 20 s passed: the last deliveries of a campaign
/// take a moment.
pub fn settled_files(
    end: &super::workload::End,
    file: &str,
    read: fn(&std::path::Path) -> Option<Vec<String>>,
    done: impl Fn(&Files) -> bool,
) -> Files {
    use std::time::{Duration, Instant};
    let files = || -> Files {
        end.dirs
            .iter()
            .map(|(n, d)| (n.clone(), read(&d.join(file))))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut got, mut since) = (files(), Instant::now());
    while !done(&got) && Instant::now() < deadline && since.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(500));
        let now = files();
        if now != got {
            (got, since) = (now, Instant::now());
        }
    }
    got
}

/// The non-empty lines of the file at `path` (`None` when it cannot be read).
pub fn read_lines(path: &std::path::Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Files holding these lines, by agent (for tests).
#[cfg(test)]
pub fn files_of(by: &[(&str, &[&str])]) -> Files {
    by.iter()
        .map(|(a, ps)| {
            (
                a.to_string(),
                Some(ps.iter().map(|p| p.to_string()).collect()),
            )
        })
        .collect()
}
