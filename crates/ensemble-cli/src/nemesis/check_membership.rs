//! Membership's guarantees: at the end of the recovery window every agent sees every agent
//! alive (`membership.converged`); no member was declared down unless, in the 10 s before,
//! it was paused, killed, flooded, or cut off from the observer or from a majority
//! (`membership.no_false_down`).

use std::collections::BTreeMap;

use super::history::Verdict;
use super::record::FaultRecord;

/// How far back a fault excuses a `down`.
pub const EXCUSE_WINDOW_MS: u64 = 10_000;

/// One `down` (Serf's `member-failed`) an agent's event handler recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub observer: String,
    pub member: String,
    /// In ms since the campaign started.
    pub at_ms: u64,
}

/// One line `WALL_MS MEMBER` of `observer`'s recorder, read by the nemesis at `at_ms` on the
/// campaign's clock (the wall clock the line carries is for people: it may jump).
pub fn parse_down(observer: &str, line: &str, at_ms: u64) -> Option<Down> {
    let (_, member) = line.trim().split_once(' ')?;
    Some(Down {
        observer: observer.to_owned(),
        member: member.trim().to_owned(),
        at_ms,
    })
}

/// The `--event-handler` that appends `WALL_MS MEMBER` to `file` for every `member-failed`.
pub fn down_recorder(file: &std::path::Path) -> String {
    format!(
        "member-failed=printf '%s %s\\n' \"$(date +%s%3N)\" \"$ENSEMBLE_MEMBER\" >> '{}'",
        file.display()
    )
}

/// `membership.no_false_down` over every `down` recorded.
pub fn no_false_down(downs: &[Down], faults: &FaultRecord, n: usize) -> Verdict {
    let mut violations = Vec::new();
    let mut excused = 0;
    for d in downs {
        let from = d.at_ms.saturating_sub(EXCUSE_WINDOW_MS);
        match faults.excuse(&d.member, &d.observer, n, from, d.at_ms) {
            Some(_) => excused += 1,
            None => violations.push(format!(
                "{} declared {} down at {} ms, and in the {} s before {} was neither paused, \
                 killed, flooded, nor cut off from {} or from a majority",
                d.observer,
                d.member,
                d.at_ms,
                EXCUSE_WINDOW_MS / 1000,
                d.member,
                d.observer
            )),
        }
    }
    let counts = BTreeMap::from([
        ("downs".to_string(), downs.len() as u64),
        ("excused".to_string(), excused),
        ("false_positives".to_string(), violations.len() as u64),
    ]);
    Verdict::new("membership.no_false_down", counts, violations)
}

/// `membership.converged` from what each agent saw last: `(member, status)` pairs, or `None`
/// for an agent that did not answer.
pub fn converged(
    seen: &BTreeMap<String, Option<Vec<(String, String)>>>,
    names: &[String],
    waited_ms: u64,
) -> Verdict {
    let mut violations = Vec::new();
    for (observer, view) in seen {
        let Some(view) = view else {
            violations.push(format!("{observer} did not answer GET /v1/members"));
            continue;
        };
        let wrong: Vec<String> = names
            .iter()
            .filter_map(|n| match view.iter().find(|(m, _)| m == n) {
                Some((_, s)) if s == "alive" => None,
                Some((_, s)) => Some(format!("{n} {s}")),
                None => Some(format!("{n} unknown")),
            })
            .collect();
        if !wrong.is_empty() {
            violations.push(format!("{observer} sees {}", wrong.join(", ")));
        }
    }
    let counts = BTreeMap::from([
        ("agents".to_string(), seen.len() as u64),
        ("waited_ms".to_string(), waited_ms),
    ]);
    Verdict::new("membership.converged", counts, violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::record::Applied;

    fn down(observer: &str, member: &str, at_ms: u64) -> Down {
        Down {
            observer: observer.into(),
            member: member.into(),
            at_ms,
        }
    }

    #[test]
    fn a_down_during_no_fault_is_a_false_positive_and_one_after_a_pause_is_not() {
        let faults = FaultRecord {
            applied: vec![Applied {
                kind: "pause",
                targets: vec!["n3".into()],
                start_ms: 20_000,
                end_ms: Some(25_000),
                ..Applied::default()
            }],
        };
        let v = no_false_down(&[down("n1", "n3", 23_000)], &faults, 5);
        assert!(v.passed, "{v:?}");
        let v = no_false_down(
            &[
                down("n1", "n3", 23_000),
                down("n1", "n2", 23_000),
                down("n2", "n3", 40_000),
            ],
            &faults,
            5,
        );
        assert!(!v.passed);
        assert_eq!(v.violations.len(), 2, "{v:?}");
        assert!(v.violations[0].contains("n1 declared n2 down at 23000 ms"));
    }

    #[test]
    fn the_recorders_lines_parse_on_the_campaigns_clock() {
        assert_eq!(
            parse_down("n1", "1000500 n2\n", 7),
            Some(down("n1", "n2", 7))
        );
        assert_eq!(parse_down("n1", "garbage", 7), None);
    }

    #[test]
    fn an_agent_that_misses_a_member_or_does_not_answer_has_not_converged() {
        let names: Vec<String> = vec!["n1".into(), "n2".into()];
        let all = |s: &str| Some(vec![("n1".into(), "alive".into()), ("n2".into(), s.into())]);
        let good = BTreeMap::from([
            ("n1".to_string(), all("alive")),
            ("n2".to_string(), all("alive")),
        ]);
        assert!(converged(&good, &names, 0).passed);
        let bad = BTreeMap::from([("n1".to_string(), all("down")), ("n2".to_string(), None)]);
        let v = converged(&bad, &names, 0);
        assert_eq!(
            v.violations,
            vec!["n1 sees n2 down", "n2 did not answer GET /v1/members"]
        );
    }
}
