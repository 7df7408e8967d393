//! End-to-end: what an agent's API refuses before it costs anything. Ensemble's own tables
//! and bad names; tables nobody declared; more tables than `max_tables` (10,000 attempts
//! cost no memory); and messages, events and table writes too large for one frame (413, and
//! no connection between the agents closes).

use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::*;

fn put(agent: &ureq::Agent, http: &str, table: &str, key: &str, value: &str) -> (u16, Value) {
    let path = format!("/v1/tables/{table}/records/{key}");
    call_json_with(agent, http, "PUT", &path, Some(json!({ "value": value })))
}

/// Resident memory of a process, in bytes (VmRSS in /proc/PID/status).
fn rss(pid: nix::unistd::Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn reserved_bad_and_undeclared_tables_are_refused_and_the_tracker_keeps_working() {
    let dir = tempdir();
    let a = Agent::start_with(dir.path(), "a0", None, SECRET, &["--table", "t"]);
    a.wait_answers(Duration::from_secs(20));
    let (h, u) = (a.http.as_str(), ureq::Agent::new());
    let tracker = |u: &ureq::Agent| call_json_with(u, h, "GET", "/v1/tracker", None);
    wait_for(Duration::from_secs(20), "the tracker has a0", || {
        tracker(&u).1["nodes"][0]["node"] == "a0"
    });

    // Ensemble's own table, through every table route.
    let (status, v) = put(&u, h, "ensemble.tracker", "a0", "forged");
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("reserved_table")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("reserved"), "{v}");
    for (method, path) in [
        ("GET", "/v1/tables/ensemble.tracker"),
        ("GET", "/v1/tables/ensemble.tracker/records"),
        ("GET", "/v1/tables/ensemble.tracker/records/a0"),
        ("DELETE", "/v1/tables/ensemble.tracker/records/a0"),
        ("PUT", "/v1/tables/ensemble.other/records/k"),
    ] {
        let body = (method == "PUT").then(|| json!({"value": "v"}));
        let (status, v) = call_json_with(&u, h, method, path, body);
        assert_eq!(
            (status, v["code"].as_str()),
            (403, Some("reserved_table")),
            "{path}"
        );
    }
    fails_saying(
        &["table", "put", "ensemble.tracker", "a0", "x", "--http", h],
        &["is reserved"],
    );
    // Names no table may have.
    for name in ["a%01b", "tab%09le", &"x".repeat(129)] {
        let (status, v) = put(&u, h, name, "k", "v");
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("invalid_table_name")),
            "{name}"
        );
    }
    // A table nobody declared: not created.
    let (status, v) = put(&u, h, "sessions", "k", "v");
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("table_creation_off")),
        "{v}"
    );
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("--allow-create-tables"));
    let (_, tables) = call_json_with(&u, h, "GET", "/v1/tables", None);
    assert_eq!(tables, json!(["t"]));
    assert_eq!(put(&u, h, "t", "k", "v").0, 200);

    // The tracker still answers, with its row intact.
    let (status, v) = tracker(&u);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["nodes"][0]["node"], "a0");
    assert_eq!(v["nodes"][0]["status"], "online", "{v}");
}

#[test]
fn table_creation_is_bounded_and_ten_thousand_attempts_cost_no_memory() {
    let dir = tempdir();
    let a = Agent::start_with(
        dir.path(),
        "a0",
        None,
        SECRET,
        &["--allow-create-tables", "--max-tables", "4"],
    );
    a.wait_answers(Duration::from_secs(20));
    // One keep-alive connection for all the requests, as in the attack.
    let (h, u) = (a.http.as_str(), ureq::Agent::new());
    for i in 0..4 {
        assert_eq!(put(&u, h, &format!("c{i}"), "k", "v").0, 200);
    }
    let (status, v) = put(&u, h, "c4", "k", "v");
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("too_many_tables")),
        "{v}"
    );
    // Warm up the refusal path, then measure.
    for i in 0..200 {
        assert_eq!(put(&u, h, &format!("warm{i}"), "k", "v").0, 403);
    }
    let before = rss(a.pid());
    for i in 0..10_000 {
        let (status, _) = put(&u, h, &format!("attack-{i}"), "k", "v");
        assert_eq!(status, 403, "attempt {i}");
    }
    let after = rss(a.pid());
    println!(
        "RSS before {} KiB, after 10,000 create attempts {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + 8 * 1024 * 1024,
        "RSS grew from {before} to {after} bytes"
    );
    let (_, tables) = call_json_with(&u, h, "GET", "/v1/tables", None);
    assert_eq!(tables, json!(["c0", "c1", "c2", "c3"]));
    assert_eq!(call_json_with(&u, h, "GET", "/v1/tracker", None).0, 200);
}

/// The agent's `ensemble_connections_closed_total`, every reason added up.
fn closed(http: &str) -> u64 {
    let text = ureq::get(&format!("http://{http}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("ensemble_connections_closed_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        !values.is_empty(),
        "no ensemble_connections_closed_total in\n{text}"
    );
    values.iter().sum()
}

#[test]
fn oversized_sends_events_and_writes_get_413_and_close_no_connection() {
    let dir = tempdir();
    let agents = start_agents(dir.path(), 2, &["--table", "t", "--handler", "jobs=cat"]);
    let u = ureq::Agent::new();
    wait_for(
        Duration::from_secs(30),
        "both agents host t together",
        || {
            agents.iter().all(|a| {
                ureq_get(&a.http, "/v1/tables/t")
                    .is_some_and(|i| i["members"].as_array().map(Vec::len) == Some(2))
            })
        },
    );
    let (h0, h1) = (agents[0].http.as_str(), agents[1].http.as_str());
    let before = (closed(h0), closed(h1));

    // A named message of 1.9 MB, cast, and of 1.1 MB, acknowledged: refused at once.
    for (size, ack) in [(1_900_000, false), (1_100_000, true)] {
        let body = json!({"node": "a1", "name": "jobs", "payload": "x".repeat(size), "ack": ack});
        let started = std::time::Instant::now();
        let (status, v) = call_json_with(&u, h0, "POST", "/v1/send", Some(body));
        assert_eq!(
            (status, v["code"].as_str()),
            (413, Some("payload_too_large")),
            "{v}"
        );
        assert!(v["error"].as_str().unwrap().contains("frame"), "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{size}: no wait for an ack"
        );
    }
    // A user event over the broadcast limit.
    let body = json!({"name": "deploy", "payload": "x".repeat(100 * 1024)});
    let (status, v) = call_json_with(&u, h0, "POST", "/v1/events", Some(body));
    assert_eq!(
        (status, v["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    // A table record over the record limit.
    let (status, v) = put(&u, h0, "t", "big", &"x".repeat(300 * 1024));
    assert_eq!(
        (status, v["code"].as_str()),
        (413, Some("record_too_large")),
        "{v}"
    );

    // The link is as it was: nothing closed, and messages, events and writes still flow.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!((closed(h0), closed(h1)), before, "a connection closed");
    let body = json!({"node": "a1", "name": "jobs", "payload": "small", "ack": true});
    assert_eq!(
        call_json_with(&u, h0, "POST", "/v1/send", Some(body)).0,
        200
    );
    assert_eq!(put(&u, h0, "t", "k", &"y".repeat(200 * 1024)).0, 200);
    let (status, v) = call_json_with(&u, h1, "GET", "/v1/tables/t/records/k", None);
    assert_eq!(
        (status, v["value"].as_str().map(str::len)),
        (200, Some(200 * 1024))
    );
    assert_eq!((closed(h0), closed(h1)), before, "a connection closed");
}
