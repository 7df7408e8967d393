//! The operator's commands against real agents: join, leave, force-leave, info, and the
//! member filters (like serf join, leave, force-leave, info and members -status/-name/-tag).

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(30);

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn join_answers_per_address_and_refuses_bad_ones() {
    let dir = tempdir();
    let a0 = Agent::start(dir.path(), "a0", None, SECRET);
    let a1 = Agent::start(dir.path(), "a1", None, SECRET);
    a0.wait_answers(LONG);
    a1.wait_answers(LONG);
    let nobody = format!("127.0.0.1:{}", free_port());
    let answer = json_of(&["join", "--http", &a1.http, "--json", &a0.bind, &nobody]);
    assert_eq!(answer["joined"], 1, "{answer}");
    assert_eq!(answer["results"][0]["ok"], true, "{answer}");
    assert_eq!(answer["results"][0]["node"], "a0", "{answer}");
    assert_eq!(answer["results"][1]["ok"], false, "{answer}");
    assert!(answer["results"][1]["error"].is_string(), "{answer}");
    wait_for(LONG, "a0 sees a1 alive", || {
        a0.status_of("a1").is_some_and(|(s, _)| s == "alive")
    });
    // No address joined: the command fails.
    fails_saying(
        &["join", "--http", &a1.http, &nobody],
        &["none of the addresses"],
    );
    fails_saying(
        &["join", "--http", &a1.http, "no-port"],
        &["is not HOST:PORT"],
    );
    let many: Vec<String> = (0..65)
        .map(|i| format!("127.0.0.1:{}", 20000 + i))
        .collect();
    let (status, e) = call_json(
        &a1.http,
        "POST",
        "/v1/join",
        Some(serde_json::json!({ "addrs": many })),
    );
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_argument")),
        "{e}"
    );
    assert!(e["error"].as_str().unwrap().contains("at most 64"), "{e}");
}

#[test]
fn members_filters_info_force_leave_and_leave() {
    let dir = tempdir();
    let a0 = Agent::start_with(
        dir.path(),
        "a0",
        None,
        SECRET,
        &["--tag", "role=web", "--table", "t1"],
    );
    let seed = a0.bind.clone();
    let a1 = Agent::start_with(dir.path(), "a1", Some(&seed), SECRET, &["--tag", "role=db"]);
    let mut a2 = Agent::start(dir.path(), "a2", Some(&seed), SECRET);
    let a3 = Agent::start(dir.path(), "a3", Some(&seed), SECRET);
    let all = [&a0, &a1, &a2, &a3];
    wait_for(LONG, "4 agents converge", || {
        all.iter().all(|a| {
            a.members()
                .is_some_and(|m| m.len() == 4 && m.iter().all(|m| m["status"] == "alive"))
        })
    });

    // Filters: anchored patterns, all must match, a member without the tag does not.
    let members = |extra: &[&str]| {
        let mut args = vec!["members", "--http", &a0.http, "--json"];
        args.extend_from_slice(extra);
        names(&json_of(&args))
    };
    assert_eq!(members(&["--tag", "role=w.*"]), ["a0"]);
    assert_eq!(members(&["--name", "a[12]"]), ["a1", "a2"]);
    assert_eq!(members(&["--status", "alive", "--tag", "role=db"]), ["a1"]);
    assert_eq!(members(&["--name", "a"]), Vec::<String>::new());
    assert_eq!(members(&["--status", "down|left"]), Vec::<String>::new());
    fails_saying(
        &["members", "--http", &a0.http, "--name", "("],
        &["not a valid regular expression"],
    );
    let (status, e) = call_json(&a0.http, "GET", "/v1/members?name=%28", None);
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_filter")),
        "{e}"
    );
    let (status, e) = call_json(&a0.http, "GET", "/v1/members?colour=red", None);
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_filter")),
        "{e}"
    );
    let long = "a".repeat(300);
    let (status, e) = call_json(&a0.http, "GET", &format!("/v1/members?name={long}"), None);
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_filter")),
        "{e}"
    );

    // Info.
    let info = json_of(&["info", "--http", &a0.http, "--json"]);
    assert_eq!(info["name"], "a0", "{info}");
    assert_eq!(info["members"]["alive"], 4, "{info}");
    assert_eq!(info["members"]["down"], 0, "{info}");
    assert_eq!(info["connections"], 3, "{info}");
    assert_eq!(info["tables"], serde_json::json!(["t1"]), "{info}");
    assert!(
        info["protocol"]["version"].as_u64().unwrap() >= info["protocol"]["min"].as_u64().unwrap()
    );
    assert!(
        info["settings"]["heartbeat_interval_ms"].as_u64().unwrap() > 0,
        "{info}"
    );
    assert_eq!(info["settings"]["bind"], a0.bind.as_str(), "{info}");
    assert!(info["discovery"]["phase"].is_string(), "{info}");
    assert!(!info.to_string().contains(SECRET), "{info}");
    let text = cli().args(["info", "--http", &a0.http]).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("uptime") && text.contains("alive 4"),
        "{text}"
    );

    // Force-leave a killed member: the others mark it left, not down.
    let a3_pid = a3.pid();
    nix::sys::signal::kill(a3_pid, Signal::SIGKILL).unwrap();
    let answer = json_of(&["force-leave", "--http", &a0.http, "--json", "a3"]);
    assert_eq!(answer["node"], "a3", "{answer}");
    wait_for(LONG, "a1 sees a3 left", || {
        a1.status_of("a3").is_some_and(|(s, _)| s == "left")
    });
    fails_saying(&["force-leave", "--http", &a0.http, "nobody"], &["nobody"]);
    let (status, e) = call_json(
        &a0.http,
        "POST",
        "/v1/members/nobody/force-leave",
        Some(serde_json::json!({})),
    );
    assert_eq!(
        (status, e["code"].as_str()),
        (404, Some("unknown_member")),
        "{e}"
    );

    // Leave: the agent leaves gracefully (left, not down), then exits 0.
    let out = cli().args(["leave", "--http", &a2.http]).output().unwrap();
    assert_left_gracefully(&out);
    let exit = a2.wait_exit(LONG).expect("a2 exits after ensemble leave");
    assert!(exit.success(), "{exit:?}");
    wait_for(LONG, "a0 sees a2 left", || {
        a0.status_of("a2").is_some_and(|(s, _)| s == "left")
    });
    assert_eq!(a1.status_of("a2").unwrap().0, "left");
}
