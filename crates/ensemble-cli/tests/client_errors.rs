//! End-to-end: a command whose agent answers an error prints the agent's message (the JSON
//! `error`) and fails; a command with no agent at its address says so.

use std::time::Duration;

mod common;
use common::*;

/// Runs `ensemble ARGS`; expects failure, every needle on stderr and none of `absent`.
fn fails_with(args: &[&str], needles: &[&str], absent: &[&str]) {
    let out = cli().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ensemble {args:?} succeeded");
    for n in needles {
        assert!(err.contains(n), "ensemble {args:?}: {n:?} not in {err}");
    }
    for a in absent {
        assert!(!err.contains(a), "ensemble {args:?}: {a:?} in {err}");
    }
}

#[test]
fn commands_print_a_real_agents_refusals() {
    let dir = tempdir();
    let a = Agent::start_with(dir.path(), "a0", None, SECRET, &["--table", "t"]);
    a.wait_answers(Duration::from_secs(15));
    let h = a.http.as_str();
    fails_with(
        &["table", "get", "t", "zzz", "--http", h],
        &["no key \"zzz\" in table \"t\""],
        &["the agent refused"],
    );
    fails_with(
        &["table", "info", "nope", "--http", h],
        &["this agent hosts no table \"nope\""],
        &[],
    );
    fails_with(
        &["partition", "inject", "a1", "--http", h],
        &[
            "fault injection is off on this agent",
            "--allow-fault-injection",
        ],
        &[],
    );
    fails_with(
        &["send", "--http", h, "--channel", "video", "a0", "x", "y"],
        &["no channel \"video\" is declared"],
        &[],
    );
    fails_with(
        &["broadcast", "--http", h, "", "x"],
        &["the agent refused the event: invalid configuration: event name"],
        &[],
    );
    // Nobody there.
    fails_with(
        &["tracker", "--http", "127.0.0.1:1"],
        &["cannot reach the agent at 127.0.0.1:1", "set --http"],
        &[],
    );
}
