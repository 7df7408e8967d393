//! `ensemble tags set|delete` against real agents: the cluster sees the change, and with
//! `--tags-file` the tags survive a restart.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(30);

fn tags_seen(by: &Agent, of: &str) -> Option<Value> {
    let m = by.members()?.into_iter().find(|m| m["name"] == of)?;
    Some(m["tags"].clone())
}

#[test]
fn tags_change_across_the_cluster_and_survive_a_restart() {
    let dir = tempdir();
    let file = dir.path().join("tags.json");
    let file_arg = file.to_str().unwrap().to_owned();
    let mut a0 = Agent::start_with(
        dir.path(),
        "a0",
        None,
        SECRET,
        &["--tag", "zone=a", "--tags-file", &file_arg],
    );
    let a1 = Agent::start(dir.path(), "a1", Some(&a0.bind), SECRET);
    wait_for(LONG, "a1 sees a0", || tags_seen(&a1, "a0").is_some());

    let answer = json_of(&[
        "tags", "--http", &a0.http, "--json", "set", "role=web", "env=prod",
    ]);
    assert_eq!(answer["tags"]["role"], "web", "{answer}");
    assert_eq!(answer["tags"]["zone"], "a", "{answer}");
    wait_for(LONG, "a1 sees role=web on a0", || {
        tags_seen(&a1, "a0").is_some_and(|t| t["role"] == "web" && t["env"] == "prod")
    });
    let answer = json_of(&["tags", "--http", &a0.http, "--json", "delete", "env"]);
    assert!(answer["tags"].get("env").is_none(), "{answer}");
    wait_for(LONG, "a1 sees env gone from a0", || {
        tags_seen(&a1, "a0").is_some_and(|t| t.get("env").is_none() && t["role"] == "web")
    });
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved, serde_json::json!({"role": "web", "zone": "a"}));

    // Refused: Ensemble's own tags, and values over the limit; nothing changes.
    fails_saying(
        &["tags", "--http", &a0.http, "set", "ensemble.role=server"],
        &["Ensemble's own"],
    );
    let long = format!("big={}", "x".repeat(300));
    fails_saying(&["tags", "--http", &a0.http, "set", &long], &["256"]);

    // Restarted with the same tags file (and the same flags): the tags are back.
    a0.signal(Signal::SIGTERM);
    a0.wait_exit(LONG).expect("a0 exits on SIGTERM");
    a0.spawn(None, SECRET);
    a0.wait_answers(LONG);
    let me = ureq_get(&a0.http, "/v1/self").unwrap();
    assert_eq!(me["tags"]["role"], "web", "{me}");
    assert!(me["tags"].get("env").is_none(), "{me}");
    assert!(me["tags"].get("big").is_none(), "{me}");
}

#[test]
fn sighup_reads_the_tags_file_again_and_never_stops_the_agent() {
    let dir = tempdir();
    let file = dir.path().join("tags.json");
    std::fs::write(&file, r#"{"zone": "a", "old": "1"}"#).unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let a0 = Agent::start_with(dir.path(), "a0", None, SECRET, &["--tags-file", &file_arg]);
    // An agent with no keyring or tags file shrugs SIGHUP off instead of dying of it.
    let a1 = Agent::start(dir.path(), "a1", Some(&a0.bind), SECRET);
    wait_for(LONG, "a1 sees a0 with its file's tags", || {
        tags_seen(&a1, "a0").is_some_and(|t| t["zone"] == "a" && t["old"] == "1")
    });

    std::fs::write(&file, r#"{"zone": "b", "new": "2"}"#).unwrap();
    a0.signal(Signal::SIGHUP);
    a1.signal(Signal::SIGHUP);
    wait_for(LONG, "a1 sees a0's new tags", || {
        tags_seen(&a1, "a0")
            .is_some_and(|t| t["zone"] == "b" && t["new"] == "2" && t.get("old").is_none())
    });
    wait_for(LONG, "a0 logs what changed", || {
        a0.log_text().contains("+new=2 ~zone=b -old")
    });
    wait_for(LONG, "a1 logs that it had nothing to read", || {
        a1.log_text().contains("SIGHUP: nothing to read again")
    });
    a1.wait_answers(LONG);

    // A broken file changes nothing, and says why.
    std::fs::write(&file, "[not an object]").unwrap();
    a0.signal(Signal::SIGHUP);
    wait_for(LONG, "a0 logs the refusal", || {
        a0.log_text().contains("SIGHUP: kept the tags as they were")
    });
    let me = ureq_get(&a0.http, "/v1/self").unwrap();
    assert_eq!(me["tags"]["zone"], "b", "{me}");
}
