//! End-to-end: user events through 5 `ensemble agent` processes on 127.0.0.1, followed with
//! `ensemble events`, sent with `ensemble broadcast`, handled by `--event-handler`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

/// An `ensemble events --json` process following `agent`.
fn follow(dir: &Path, agent: &Agent) -> Follower {
    let out = dir.join(format!("{}.events", agent.name));
    Follower::start(&["events", "--json", "--http", &agent.http], out)
}

/// The `deploy` events a follower printed, as `origin:payload`.
fn user_payloads(f: &Follower) -> Vec<String> {
    f.json_lines()
        .iter()
        .filter(|e| e["type"] == "user" && e["name"] == "deploy")
        .map(|e| {
            format!(
                "{}:{}",
                e["origin"].as_str().unwrap(),
                e["payload"].as_str().unwrap()
            )
        })
        .collect()
}

fn send(agent: &Agent, name: &str, payload: &str) {
    let out = cli()
        .args(["broadcast", "--http", &agent.http, name, payload])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ensemble broadcast failed: {err}");
}

#[test]
fn a_broadcast_reaches_every_agents_events_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let handler = format!(
        "cat >> {0}/handler.json; echo \"$ENSEMBLE_EVENT $ENSEMBLE_USER_EVENT $ENSEMBLE_ORIGIN\" >> {0}/handler.env",
        d.display()
    );
    let first = Agent::start(d, "a0", None, SECRET);
    let seed = first.bind.clone();
    let mut agents = vec![first];
    for i in 1..5 {
        let extra: Vec<&str> = if i == 4 {
            vec!["--event-handler", &handler]
        } else {
            vec![]
        };
        agents.push(Agent::start_with(
            d,
            &format!("a{i}"),
            Some(&seed),
            SECRET,
            &extra,
        ));
    }
    wait_for(Duration::from_secs(30), "agents converge", || {
        agents.iter().all(|a| {
            a.members()
                .is_some_and(|m| m.len() == 5 && m.iter().all(|m| m["status"] == "alive"))
        })
    });
    let followers: Vec<Follower> = agents.iter().map(|a| follow(d, a)).collect();
    // Let every follower connect its stream before anything is sent.
    std::thread::sleep(Duration::from_millis(1500));

    let mut expected = Vec::new();
    for i in 0..6 {
        let from = &agents[i % 3];
        send(from, "deploy", &format!("v{i}"));
        expected.push(format!("{}:v{i}", from.name));
    }
    expected.sort();
    wait_for(
        Duration::from_secs(20),
        "every follower has every event",
        || {
            followers
                .iter()
                .all(|f| user_payloads(f).len() >= expected.len())
        },
    );
    // Nothing more arrives late: exactly once.
    std::thread::sleep(Duration::from_millis(1500));
    for (a, f) in agents.iter().zip(&followers) {
        let mut got = user_payloads(f);
        // In order per origin, before sorting.
        for origin in ["a0", "a1", "a2"] {
            let seq: Vec<&String> = got.iter().filter(|p| p.starts_with(origin)).collect();
            let mut sorted = seq.clone();
            sorted.sort();
            assert_eq!(seq, sorted, "order from {origin} at {}", a.name);
        }
        got.sort();
        assert_eq!(got, expected, "events at {}", a.name);
    }

    // The handler ran once per user event, with the event on stdin and in the environment.
    wait_for(
        Duration::from_secs(10),
        "the handler ran for every event",
        || {
            std::fs::read_to_string(d.join("handler.env"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("user deploy"))
                .count()
                == 6
        },
    );
    let json = std::fs::read_to_string(d.join("handler.json")).unwrap();
    let handled: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(handled.iter().filter(|e| e["type"] == "user").count(), 6);
    assert!(handled
        .iter()
        .all(|e| e["type"] == "user" || e["type"] == "member"));

    // The figures are scraped in the Prometheus text format (the broadcast machine's are
    // read on the node's timer ticks: a scrape may lag by a fraction of a second).
    let scrape = || {
        ureq::get(&format!("http://{}/metrics", agents[1].http))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape();
        if value(&text, "ensemble_broadcast_delivered_total") >= 6.0
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(value(&text, "ensemble_broadcast_delivered_total") >= 6.0);
    assert_eq!(value(&text, "ensemble_members{status=\"alive\"}"), 5.0);
    assert_eq!(value(&text, "ensemble_broadcast_neighbours"), 4.0);
    value(&text, "ensemble_dropped_frames_total{reason=\"lazy_shed\"}");

    // Membership events stream too: a leaving agent shows as `left` everywhere.
    agents[3].signal(nix::sys::signal::Signal::SIGTERM);
    wait_for(Duration::from_secs(15), "followers see a3 leave", || {
        followers[..3].iter().all(|f| {
            f.json_lines().iter().any(|e| {
                e["type"] == "member" && e["kind"] == "left" && e["member"]["name"] == "a3"
            })
        })
    });
    // The event handler runs apart from the event stream: it may write a moment later.
    wait_for(
        Duration::from_secs(10),
        "the handler ran for a3's leave",
        || {
            std::fs::read_to_string(d.join("handler.env"))
                .unwrap_or_default()
                .contains("member-left")
        },
    );

    // Bad input is refused with the reason, and the agent keeps serving.
    let big = "x".repeat(70 * 1024);
    fails_saying(
        &["broadcast", "--http", &agents[0].http, "deploy", &big],
        &["exceeds the limit", "max_payload"],
    );
    fails_saying(
        &["broadcast", "--http", &agents[0].http, "", "x"],
        &["event name"],
    );
    send(&agents[0], "deploy", "after-errors");
    wait_for(Duration::from_secs(10), "the agent still serves", || {
        user_payloads(&followers[1]).contains(&"a0:after-errors".to_string())
    });
}

#[test]
fn sim_broadcast_prints_the_promised_json() {
    let args = [
        "sim",
        "broadcast",
        "--nodes",
        "10",
        "--latency-ms",
        "20",
        "--rate",
        "20",
        "--duration-s",
        "5",
        "--json",
    ];
    let v = json_of(&args);
    for key in [
        "msgs_per_op",
        "membership_msgs_per_s",
        "latency_p50_ms",
        "latency_max_ms",
        "delivered_fraction",
        "rmr",
        "ldh",
    ] {
        assert!(v[key].is_number(), "{key} missing in {v}");
    }
    assert_eq!(v["delivered_fraction"], 1.0);
    assert_eq!(v["broadcasts"], 100);
    fails_saying(&["sim", "broadcast", "--rate", "0"], &["--rate"]);
    fails_saying(
        &["sim", "broadcast", "--crash-fraction", "1.5"],
        &["--crash-fraction"],
    );
}

#[test]
fn a_hung_agent_does_not_stall_events_and_catches_up_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = Agent::start(d, "a0", None, SECRET);
    let seed = first.bind.clone();
    let mut agents = vec![first];
    for i in 1..4 {
        agents.push(Agent::start(d, &format!("a{i}"), Some(&seed), SECRET));
    }
    wait_for(Duration::from_secs(30), "agents converge", || {
        agents
            .iter()
            .all(|a| a.members().is_some_and(|m| m.len() == 4))
    });
    let followers: Vec<Follower> = agents.iter().map(|a| follow(d, a)).collect();
    std::thread::sleep(Duration::from_millis(1500));
    agents[2].signal(nix::sys::signal::Signal::SIGSTOP);
    let url = format!("http://{}/v1/events", agents[0].http);
    for i in 0..300 {
        let body = serde_json::json!({ "name": "deploy", "payload": format!("v{i}") });
        ureq::post(&url)
            .set("Authorization", &bearer())
            .send_json(body)
            .expect("the agent takes the event");
    }
    // The others get all 300 at once, hung peer or not.
    wait_for(Duration::from_secs(10), "a1 and a3 have all 300", || {
        [1, 3]
            .iter()
            .all(|i| user_payloads(&followers[*i]).len() == 300)
    });
    // Long enough for the others to declare it down and drop its connections: what it missed
    // comes back by anti-entropy, not from a socket buffer.
    wait_for(Duration::from_secs(15), "a2 is declared down", || {
        agents[0].status_of("a2").is_some_and(|(s, _)| s == "down")
    });
    agents[2].signal(nix::sys::signal::Signal::SIGCONT);
    wait_for(
        Duration::from_secs(30),
        "a2 catches up after SIGCONT",
        || user_payloads(&followers[2]).len() == 300,
    );
    let mut got = user_payloads(&followers[2]);
    let expected: Vec<String> = (0..300).map(|i| format!("a0:v{i}")).collect();
    assert_eq!(got, expected, "in order, once each");
    got.dedup();
    assert_eq!(got.len(), 300);
}
