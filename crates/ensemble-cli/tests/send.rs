//! End-to-end: `ensemble send` to an agent's `--handler NAME=COMMAND` on 127.0.0.1.

use std::process::Command;
use std::time::Duration;

mod common;
use common::*;

#[test]
fn send_reaches_a_handler_command_and_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("jobs.log");
    let handler = format!(
        "jobs=cat >> {0}; echo \" from $ENSEMBLE_FROM to $ENSEMBLE_HANDLER\" >> {0}",
        log.display()
    );
    let a0 = Agent::start(d, "a0", None, SECRET);
    let a1 = Agent::start_with(d, "a1", Some(&a0.bind), SECRET, &["--handler", &handler]);
    wait_for(Duration::from_secs(30), "agents converge", || {
        [&a0, &a1]
            .iter()
            .all(|a| a.members().is_some_and(|m| m.len() == 2))
    });
    let out = Command::new(exe())
        .args(["send", "--http", &a0.http, "--ack", "a1", "jobs", "hello"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(Duration::from_secs(10), "the handler ran", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("hello from a0 to jobs"))
    });
    // Fire-and-forget too.
    let out = Command::new(exe())
        .args(["send", "--http", &a0.http, "a1", "jobs", "again"])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_for(Duration::from_secs(10), "the cast arrived", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("again from a0"))
    });
    fails_saying(
        &["send", "--http", &a0.http, "--ack", "a1", "nobody", "x"],
        &["no handler is registered as \"nobody\" on a1"],
    );
    fails_saying(
        &["send", "--http", &a0.http, "a9", "jobs", "x"],
        &["a9 is not a live member"],
    );
    fails_saying(
        &["agent", "--name", "x", "--handler", "nocommand"],
        &["expected NAME=COMMAND"],
    );
}

#[test]
fn bench_messaging_reports_round_trips_and_throughput() {
    let v = json_of(&[
        "bench",
        "messaging",
        "--round-trips",
        "200",
        "--messages",
        "5000",
        "--json",
    ]);
    assert_eq!(v["delivered"], 5000);
    assert!(v["rtt_p50_us"].as_f64().unwrap() > 0.0);
    assert!(v["msgs_per_s"].as_f64().unwrap() > 0.0);
}
