//! The campaign's report: one verdict per guarantee, faults by kind, operations by kind and
//! outcome, the schedule; as text or as one JSON object.

use std::collections::BTreeMap;

use serde::Serialize;

use super::history::Verdict;
use super::record::Applied;
use super::schedule::FaultEvent;

#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub duration_s: u64,
    /// When the checks ended, in ms since the campaign's clock started.
    pub ended_ms: u64,
    /// Violations of every guarantee, in all.
    pub violations: usize,
    pub guarantees: Vec<Verdict>,
    /// Faults applied, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Operations by kind and outcome.
    pub operations: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// The planned schedule (ms since the faults began).
    pub schedule: Vec<FaultEvent>,
    /// Each fault as applied (ms since the campaign's clock started).
    pub applied: Vec<Applied>,
    /// What was measured without being judged (the singleton without the majority rule).
    pub observations: Vec<String>,
    /// The agents' directories and logs.
    pub dir: String,
    /// Whether `dir` is kept.
    pub kept: bool,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations == 0
    }

    /// The text form: a line per guarantee, faults, operations; on failure the seed, the
    /// schedule and every violation.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "nemesis: {} agents, {} s, seed {}",
            self.nodes, self.duration_s, self.seed
        ));
        for v in &self.guarantees {
            let counts: Vec<String> = v.counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
            line(format!(
                "{} {}  {}",
                if v.passed { "PASS" } else { "FAIL" },
                v.guarantee,
                counts.join(" ")
            ));
        }
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        line(format!("faults: {}", faults.join(" ")));
        for (kind, by) in &self.operations {
            let by: Vec<String> = by.iter().map(|(k, n)| format!("{k}={n}")).collect();
            line(format!("operations {kind}: {}", by.join(" ")));
        }
        for o in &self.observations {
            line(o.clone());
        }
        if !self.passed() {
            line(format!(
                "FAILED with {} violations; seed {}",
                self.violations, self.seed
            ));
            line("schedule (ms since the faults began):".into());
            for f in &self.schedule {
                let kind = serde_json::to_string(&f.kind).unwrap_or_default();
                line(format!("  {:>7} {:>7} {kind}", f.start_ms, f.end_ms));
            }
            for v in self.guarantees.iter().filter(|v| !v.passed) {
                for e in &v.violations {
                    line(format!("violation {}: {e}", v.guarantee));
                }
            }
        }
        if self.kept {
            line(format!("agents' logs kept in {}", self.dir));
        }
        out
    }
}
