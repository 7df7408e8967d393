//! The agents' own guarantees: none ended unless the nemesis killed it, none logged a panic,
//! each answered its API after a handshake flood (`agents.no_crash`); resident memory stayed
//! under a bound (`agents.memory_bounded`).

use std::collections::BTreeMap;

use super::cluster::Crash;
use super::history::Verdict;
use super::record::FaultRecord;

/// `agents.no_crash` from the crashes noted, each agent's log text, and the faults' notes.
pub fn no_crash(
    crashes: &[Crash],
    logs: &BTreeMap<String, String>,
    faults: &FaultRecord,
    restarts: u64,
) -> Verdict {
    let mut violations: Vec<String> = crashes
        .iter()
        .map(|c| {
            format!(
                "{} exited by itself at {} ms: {}",
                c.name, c.at_ms, c.status
            )
        })
        .collect();
    for (name, text) in logs {
        if let Some(line) = text.lines().find(|l| l.contains("panicked")) {
            violations.push(format!("{name} logged a panic: {line}"));
        }
    }
    let floods = faults.applied.iter().filter(|a| a.kind == "flood");
    let mut flooded = 0;
    for f in floods {
        flooded += 1;
        violations.extend(
            f.notes
                .iter()
                .filter(|n| n.contains("did not answer"))
                .cloned(),
        );
    }
    let counts = BTreeMap::from([
        ("agents".to_string(), logs.len() as u64),
        ("unexpected_exits".to_string(), crashes.len() as u64),
        ("floods".to_string(), flooded),
        ("restarts".to_string(), restarts),
    ]);
    Verdict::new("agents.no_crash", counts, violations)
}

/// `agents.memory_bounded`: no agent's resident memory over `bound` bytes.
pub fn memory_bounded(max_rss: &BTreeMap<String, u64>, samples: u64, bound: u64) -> Verdict {
    let mut counts = BTreeMap::from([
        ("samples".to_string(), samples),
        ("bound_mb".to_string(), bound >> 20),
    ]);
    let mut violations = Vec::new();
    for (name, &rss) in max_rss {
        counts.insert(format!("max_rss_mb.{name}"), rss >> 20);
        if rss > bound {
            violations.push(format!(
                "{name} reached {} MB of resident memory (bound {} MB)",
                rss >> 20,
                bound >> 20
            ));
        }
    }
    Verdict::new("agents.memory_bounded", counts, violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::record::Applied;

    #[test]
    fn an_exit_a_panic_or_a_silent_flooded_agent_fails() {
        let logs = BTreeMap::from([("n1".to_string(), "ok\nall good\n".to_string())]);
        assert!(no_crash(&[], &logs, &FaultRecord::default(), 0).passed);
        let crash = Crash {
            name: "n2".into(),
            at_ms: 5,
            status: "exit status: 101".into(),
        };
        assert!(!no_crash(&[crash], &logs, &FaultRecord::default(), 0).passed);
        let panicked = BTreeMap::from([(
            "n1".to_string(),
            "thread 'main' panicked at src/x.rs:1:1".to_string(),
        )]);
        assert!(!no_crash(&[], &panicked, &FaultRecord::default(), 0).passed);
        let silent = FaultRecord {
            applied: vec![Applied {
                kind: "flood",
                notes: vec!["n1 did not answer its API within 10 s of the flood".into()],
                ..Applied::default()
            }],
        };
        assert!(!no_crash(&[], &logs, &silent, 0).passed);
    }

    #[test]
    fn memory_over_the_bound_fails() {
        let rss = BTreeMap::from([("n1".to_string(), 50 << 20), ("n2".to_string(), 300 << 20)]);
        let v = memory_bounded(&rss, 10, 256 << 20);
        assert!(!v.passed);
        assert_eq!(v.violations.len(), 1);
        assert!(memory_bounded(&rss, 10, 512 << 20).passed);
    }
}
