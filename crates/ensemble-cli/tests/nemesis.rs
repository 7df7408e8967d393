//! `ensemble nemesis`: one real campaign of 40 s over 5 agents with a fixed seed passes every
//! guarantee, with faults of several kinds injected.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_forty_second_campaign_passes_every_guarantee() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args([
            "nemesis",
            "--nodes",
            "5",
            "--duration-s",
            "40",
            "--seed",
            "1",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ensemble nemesis starts");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(240) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the campaign did not end within 4 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["violations"], 0, "{stdout}");
    assert_eq!(report["seed"], 1);
    let guarantees: Vec<&str> = report["guarantees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["guarantee"].as_str().unwrap())
        .collect();
    for g in [
        "membership.converged",
        "membership.no_false_down",
        "singleton.no_overlap",
        "agents.no_crash",
        "agents.memory_bounded",
    ] {
        assert!(guarantees.contains(&g), "{g} missing: {guarantees:?}");
    }
    let kinds = report["faults"].as_object().unwrap();
    assert!(kinds.len() >= 4, "faults of few kinds: {kinds:?}");
    let leaderships = &report["guarantees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["guarantee"] == "singleton.no_overlap")
        .unwrap()["counts"]["leaderships"];
    assert!(
        leaderships.as_u64().unwrap() >= 1,
        "no leader wrote: {stdout}"
    );
}
