//! End-to-end: the node tracker of 3 `ensemble agent` processes, through `ensemble tracker`
//! and `/v1/tracker`, with one agent SIGKILLed and restarted.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::*;

fn rows(a: &Agent) -> Vec<(String, String)> {
    ureq_get(&a.http, "/v1/tracker")
        .and_then(|v| v["nodes"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("node"), s("status"))
        })
        .collect()
}

fn all(statuses: &[(&str, &str)]) -> Vec<(String, String)> {
    statuses
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect()
}

#[test]
fn the_tracker_keeps_every_node_ever_seen() {
    let dir = tempdir();
    let mut agents = cluster(dir.path(), 3);
    let up = all(&[("a0", "online"), ("a1", "online"), ("a2", "online")]);
    wait_for(Duration::from_secs(15), "3 online rows", || {
        agents.iter().all(|a| rows(a) == up)
    });
    let v: Value = json_of(&["tracker", "--json", "--http", &agents[0].http]);
    assert_eq!(v["mode"], "clustered");
    assert!(v["nodes"][0]["last_change"].as_u64().unwrap() > 0);
    assert_eq!(v["nodes"][0]["module"], "ensemble.tracker");

    agents[2].signal(Signal::SIGKILL);
    let down = all(&[("a0", "online"), ("a1", "online"), ("a2", "offline")]);
    wait_for(Duration::from_secs(15), "a2 offline, row kept", || {
        agents[..2].iter().all(|a| rows(a) == down)
    });
    let seed = agents[0].bind.clone();
    agents[2].spawn(Some(&seed), SECRET);
    wait_for(Duration::from_secs(30), "a2 online again", || {
        agents.iter().all(|a| rows(a) == up)
    });
    let out = cli()
        .args(["tracker", "--http", &agents[1].http])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("mode: clustered"), "{text}");
    assert!(text.contains("a2") && text.contains("online"), "{text}");
}
