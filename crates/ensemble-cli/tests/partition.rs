//! End-to-end: `ensemble partition inject|resolve|list` against agents on 127.0.0.1.

use std::time::Duration;

mod common;
use common::*;

fn partition(http: &str, args: &[&str]) -> String {
    let out = cli()
        .args(["partition", "--http", http])
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ensemble partition {args:?}: {err}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn injected_partitions_isolate_a_member_until_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let allow = ["--allow-fault-injection"];
    let a0 = Agent::start_with(d, "a0", None, SECRET, &allow);
    let a1 = Agent::start(d, "a1", Some(&a0.bind), SECRET);
    let a2 = Agent::start_with(d, "a2", Some(&a0.bind), SECRET, &allow);
    let agents = [&a0, &a1, &a2];
    let all_alive = || {
        agents.iter().all(|a| {
            a.members()
                .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["status"] == "alive"))
        })
    };
    wait_for(Duration::from_secs(30), "agents converge", all_alive);

    // Guarded: an agent started without the flag refuses, saying how to allow it.
    fails_saying(
        &["partition", "--http", &a1.http, "inject", "a0"],
        &["--allow-fault-injection"],
    );

    let r0 = partition(&a0.http, &["inject", "a1"]);
    let r2 = partition(&a2.http, &["inject", "a1"]);
    wait_for(Duration::from_secs(15), "a0 and a2 mark a1 down", || {
        [&a0, &a2]
            .iter()
            .all(|a| a.status_of("a1").is_some_and(|(s, _)| s == "down"))
    });
    wait_for(Duration::from_secs(15), "a1 marks both down", || {
        ["a0", "a2"]
            .iter()
            .all(|n| a1.status_of(n).is_some_and(|(s, _)| s == "down"))
    });
    // It shows in the agent's status.
    let listed = partition(&a0.http, &["list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["ref"].to_string(), r0);
    assert_eq!(listed[0]["nodes"][0], "a1");
    let health = ureq_get(&a0.http, "/v1/health").unwrap();
    assert_eq!(health["partitions"][0]["nodes"][0], "a1");

    partition(&a0.http, &["resolve", &r0]);
    partition(&a2.http, &["resolve", &r2]);
    wait_for(
        Duration::from_secs(30),
        "everyone is alive again",
        all_alive,
    );
    fails_saying(
        &["partition", "--http", &a0.http, "resolve", "99"],
        &["no injected partition 99"],
    );
    assert_eq!(partition(&a0.http, &["list"]), "");
}
