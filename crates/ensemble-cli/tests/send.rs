//! End-to-end: `ensemble send` to an agent's `--handler NAME=COMMAND` on 127.0.0.1.

use std::time::Duration;

mod common;
use common::*;

/// Runs `ensemble ARGS` and expects it to succeed.
fn send_ok(args: &[&str]) {
    let out = cli().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ensemble {args:?}: {err}");
}

/// A `--handler` spec for `name` that appends each payload and its sender to a log file in
/// `dir`; returns the spec and the log's path.
fn logging_handler(dir: &std::path::Path, name: &str) -> (String, std::path::PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let spec = format!(
        "{name}=cat >> {0}; echo \" from $ENSEMBLE_FROM to $ENSEMBLE_HANDLER\" >> {0}",
        log.display()
    );
    (spec, log)
}

#[test]
fn send_reaches_a_handler_command_and_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (handler, log) = logging_handler(d, "jobs");
    let a0 = Agent::start(d, "a0", None, SECRET);
    let a1 = Agent::start_with(d, "a1", Some(&a0.bind), SECRET, &["--handler", &handler]);
    wait_for(Duration::from_secs(30), "agents converge", || {
        [&a0, &a1]
            .iter()
            .all(|a| a.members().is_some_and(|m| m.len() == 2))
    });
    send_ok(&["send", "--http", &a0.http, "--ack", "a1", "jobs", "hello"]);
    wait_for(Duration::from_secs(10), "the handler ran", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("hello from a0 to jobs"))
    });
    // Fire-and-forget too.
    send_ok(&["send", "--http", &a0.http, "a1", "jobs", "again"]);
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
    for relay in [false, true] {
        let mut args = vec![
            "bench",
            "messaging",
            "--round-trips",
            "200",
            "--messages",
            "5000",
            "--json",
        ];
        if relay {
            args.push("--relay");
        }
        let v = json_of(&args);
        assert_eq!(v["relayed"], relay);
        assert_eq!(v["delivered"], 5000);
        assert!(v["rtt_p50_us"].as_f64().unwrap() > 0.0);
        assert!(v["msgs_per_s"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn client_server_agents_relay_sends_between_clients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (handler, log) = logging_handler(d, "inbox");
    let role = |r: &'static str| {
        [
            "--topology",
            "client-server",
            "--role",
            r,
            "--channel",
            "bulk",
        ]
    };
    let s1 = Agent::start_with(d, "s1", None, SECRET, &role("server"));
    let c1 = Agent::start_with(d, "c1", Some(&s1.bind), SECRET, &role("client"));
    // c2 is given a client as its seed: c1 refers it to the server.
    let mut flags = role("client").to_vec();
    flags.extend(["--handler", &handler]);
    let c2 = Agent::start_with(d, "c2", Some(&c1.bind), SECRET, &flags);
    wait_for(Duration::from_secs(30), "agents converge", || {
        [&s1, &c1, &c2]
            .iter()
            .all(|a| a.members().is_some_and(|m| m.len() == 3))
    });
    let members = c2.members().unwrap();
    let role_of = |name: &str| {
        let m = members.iter().find(|m| m["name"] == name).unwrap();
        m["tags"]["ensemble.role"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        (role_of("s1"), role_of("c1")),
        ("server".into(), "client".into())
    );
    send_ok(&[
        "send",
        "--http",
        &c1.http,
        "--ack",
        "--channel",
        "bulk",
        "c2",
        "inbox",
        "relayed",
    ]);
    wait_for(Duration::from_secs(10), "the handler ran", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("relayed from c1"))
    });
    fails_saying(
        &[
            "send",
            "--http",
            &c1.http,
            "--channel",
            "video",
            "c2",
            "inbox",
            "x",
        ],
        &["no channel \"video\" is declared"],
    );
    fails_saying(
        &["agent", "--name", "x", "--topology", "client-server"],
        &["--topology client-server needs --role"],
    );
    fails_saying(
        &["agent", "--name", "x", "--role", "client"],
        &["--role needs --topology"],
    );
    fails_saying(
        &["agent", "--name", "x", "--topology", "star"],
        &["--topology \"star\": use full-mesh or client-server"],
    );
}
