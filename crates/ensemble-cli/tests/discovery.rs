//! End to end: agents that find each other through the `file` discovery backend, the
//! `ensemble discovery` command, `GET /v1/discovery` and `GET /v1/ready`.

mod common;

use std::time::Duration;

use common::{fails_saying, json_of, tempdir, wait_for, Agent, SECRET};

const LIMIT: Duration = Duration::from_secs(15);

/// The HTTP status of `GET path`, or 0 if the agent does not answer.
fn status_of(http: &str, path: &str) -> u16 {
    match ureq::get(&format!("http://{http}{path}"))
        .set("Authorization", &common::bearer())
        .timeout(Duration::from_secs(2))
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    }
}

#[test]
fn agents_discover_each_other_through_a_file_and_report_ready() {
    let dir = tempdir();
    let nodes = dir.path().join("nodes");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[discovery]\ninitial_ms = 200\nafter_error_ms = 100\nprobe_timeout_ms = 500\n",
    )
    .unwrap();
    // a and b read `nodes`; c reads a file of its own, so only a line in `nodes` brings it in.
    let own = dir.path().join("nodes-c");
    let agents: Vec<Agent> = [("a", &nodes), ("b", &nodes), ("c", &own)]
        .iter()
        .map(|(n, file)| {
            let flags = [
                "--discovery",
                "file",
                "--discovery-file",
                file.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ];
            Agent::start_with(dir.path(), n, None, SECRET, &flags)
        })
        .collect();
    let (a, b, c) = (&agents[0], &agents[1], &agents[2]);
    // No node file yet: get_nodes fails, the agent runs on and is not ready.
    wait_for(LIMIT, "a failed get_nodes", || {
        status_of(&a.http, "/v1/discovery") == 200
            && json_of(&["discovery", "--http", &a.http, "--json"])["last_get_nodes_result"]
                .as_str()
                .is_some_and(|r| r.contains("cannot read the discovery file"))
    });
    assert_eq!(status_of(&a.http, "/v1/ready"), 503);
    let info = json_of(&["discovery", "--http", &a.http, "--json"]);
    assert_eq!(info["last_get_nodes_retry_kind"], "after_error");
    assert_eq!(info["backend"], "file");

    std::fs::write(&own, &c.bind).unwrap();
    std::fs::write(&nodes, format!("{}\n{}\n", a.bind, b.bind)).unwrap();
    wait_for(LIMIT, "a ready", || status_of(&a.http, "/v1/ready") == 200);
    let info = json_of(&["discovery", "--http", &a.http, "--json"]);
    assert_eq!(info["connected_nodes"], serde_json::json!(["b"]));
    assert_eq!(info["phase"], "initial");
    assert!(a.status_of("c").is_none());

    // A line added to the file: c joins at the next poll.
    std::fs::write(&nodes, format!("{}\n{}\n{}\n", a.bind, b.bind, c.bind)).unwrap();
    wait_for(LIMIT, "a sees c", || {
        a.status_of("c").is_some_and(|(s, _)| s == "alive")
    });
    wait_for(LIMIT, "c ready", || status_of(&c.http, "/v1/ready") == 200);

    // The table for people.
    let out = common::cli()
        .args(["discovery", "--http", &a.http])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("backend           file"), "{text}");
    assert!(text.contains("ready             true"), "{text}");
}

#[test]
fn bad_discovery_settings_exit_naming_the_setting() {
    fails_saying(
        &["agent", "--name", "x", "--discovery", "file"],
        &["--discovery-file"],
    );
    fails_saying(
        &["agent", "--name", "x", "--discovery", "dns"],
        &["--dns-name"],
    );
    fails_saying(
        &["agent", "--name", "x", "--discovery", "postgres"],
        &["--postgres-url"],
    );
    fails_saying(
        &[
            "agent",
            "--name",
            "x",
            "--discovery",
            "dns",
            "--dns-name",
            "n",
            "--dns-server",
            "nope",
        ],
        &["--dns-server"],
    );
    fails_saying(
        &["agent", "--name", "x", "--discovery", "consul"],
        &["--discovery", "static"],
    );
    let dir = tempdir();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "name = \"x\"\n[discovery]\nbackend = \"file\"\nfiel = \"/x\"\n",
    )
    .unwrap();
    fails_saying(&["agent", "--config", file.to_str().unwrap()], &["fiel"]);
}

#[test]
fn discovery_joins_the_agents_tables_with_each_node() {
    let dir = tempdir();
    let tables = ["--table", "sessions", "--table", "locks"];
    let mut a = common::Agent::prepare(dir.path(), "a", &tables);
    let mut b = common::Agent::prepare(dir.path(), "b", &tables);
    // Each one's static list names the other.
    let (a_bind, b_bind) = (a.bind.clone(), b.bind.clone());
    a.spawn(Some(&b_bind), SECRET);
    b.spawn(Some(&a_bind), SECRET);
    let joined = |agent: &common::Agent, peer: &str| {
        common::ureq_get(&agent.http, "/v1/discovery").is_some_and(|i| {
            ["sessions", "locks"]
                .iter()
                .all(|t| i["join_results"][peer][t] == "ok")
        })
    };
    wait_for(
        Duration::from_secs(30),
        "a and b joined both tables",
        || joined(&a, "b") && joined(&b, "a"),
    );
    assert_eq!(status_of(&a.http, "/v1/ready"), 200);
    // `info`: both replicas are in each table's segment, and the join results again.
    let info = common::ureq_get(&a.http, "/v1/discovery").unwrap();
    let tables = info["info"].as_array().expect("info is a list");
    assert_eq!(tables.len(), 2, "{info}");
    for t in tables {
        assert_eq!(t["nodes"], serde_json::json!(["a", "b"]), "{t}");
        assert_eq!(t["join_results"]["b"], "ok", "{t}");
        assert_eq!(t["size"], 0, "{t}");
    }
    assert_eq!(info["should_retry_join"], false);
}

#[test]
fn discovery_get_nodes_calls_the_backend_at_once() {
    let dir = tempdir();
    let nodes = dir.path().join("nodes");
    let config = dir.path().join("agent.toml");
    // Ten minutes between calls: only the request brings the second one.
    std::fs::write(&config, "[discovery]\ninitial_ms = 600000\n").unwrap();
    std::fs::write(&nodes, "").unwrap();
    let flags = [
        "--discovery",
        "file",
        "--discovery-file",
        nodes.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    let a = common::Agent::start_with(dir.path(), "a", None, SECRET, &flags);
    let count =
        || common::ureq_get(&a.http, "/v1/discovery").and_then(|i| i["get_nodes_count"].as_u64());
    wait_for(LIMIT, "the first get_nodes", || count() == Some(1));
    let info = json_of(&["discovery", "--get-nodes", "--json", "--http", &a.http]);
    assert_eq!(info["backend"], "file", "{info}");
    wait_for(LIMIT, "a second get_nodes", || count() == Some(2));
}
