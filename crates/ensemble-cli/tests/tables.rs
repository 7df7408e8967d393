//! End-to-end: replicated tables across 3 `ensemble agent` processes on 127.0.0.1, through
//! `ensemble table ...` and `/v1/tables`, with a SIGKILLed replica and bad input.

use std::time::Duration;

use nix::sys::signal::Signal;

mod common;
use common::*;

fn ensemble(args: &[&str]) -> String {
    let out = cli().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ensemble {args:?} failed: {err}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn table_info(a: &Agent) -> serde_json::Value {
    json_of(&["table", "info", "sessions", "--json", "--http", &a.http])
}

#[test]
fn agents_replicate_tables_and_survive_a_killed_replica() {
    let dir = tempdir();
    let mut agents = start_agents(dir.path(), 3, &["--table", "sessions"]);
    wait_for(Duration::from_secs(30), "the replicas join", || {
        agents.iter().all(|a| {
            ureq_get(&a.http, "/v1/tables/sessions")
                .is_some_and(|i| i["members"].as_array().map(Vec::len) == Some(3))
        })
    });
    ensemble(&[
        "table",
        "put",
        "sessions",
        "alice",
        "room-1",
        "--http",
        &agents[0].http,
    ]);
    // Synchronous: the other replicas have it when put returns.
    for a in &agents[1..] {
        assert_eq!(
            ensemble(&["table", "get", "sessions", "alice", "--http", &a.http]),
            "room-1"
        );
    }
    let info = table_info(&agents[2]);
    assert_eq!(info["size"], 1);
    assert_eq!(info["leader"], "a0");
    // Three replicas of empty segments became one: two joins, counted where they were run.
    let infos: Vec<serde_json::Value> = agents.iter().map(table_info).collect();
    let joins: u64 = infos.iter().map(|i| i["joins"].as_u64().unwrap()).sum();
    assert!(joins >= 2, "{infos:?}");
    let last = infos.iter().find(|i| !i["last_join"].is_null()).unwrap();
    assert!(last["last_join"]["took_ms"].is_u64(), "{last}");
    assert!(
        infos.iter().all(|i| i["conflicts_resolved"] == 0),
        "{infos:?}"
    );
    let text = ensemble(&["table", "info", "sessions", "--http", &agents[0].http]);
    assert!(text.contains("conflicts resolved"), "{text}");
    assert_eq!(
        ensemble(&["table", "list", "--http", &agents[1].http]),
        "sessions"
    );

    // A killed replica: the next write returns once it is marked down, and survivors agree.
    agents[2].signal(Signal::SIGKILL);
    ensemble(&[
        "table",
        "put",
        "sessions",
        "bob",
        "room-2",
        "--http",
        &agents[1].http,
    ]);
    ensemble(&[
        "table",
        "delete",
        "sessions",
        "alice",
        "--http",
        &agents[0].http,
    ]);
    let dump = json_of(&[
        "table",
        "dump",
        "sessions",
        "--json",
        "--http",
        &agents[0].http,
    ]);
    assert_eq!(
        dump,
        serde_json::json!([{ "key": "bob", "value": "room-2" }])
    );
    let info = table_info(&agents[0]);
    assert_eq!(info["members"], serde_json::json!(["a0", "a1"]));
    assert_eq!(info["down_history"], serde_json::json!(["a2"]));

    // The killed agent comes back: it re-merges by itself and catches up.
    let seed = agents[0].bind.clone();
    agents[2].spawn(Some(&seed), SECRET);
    wait_for(
        Duration::from_secs(30),
        "the restarted replica re-merges",
        || {
            ureq_get(&agents[2].http, "/v1/tables/sessions/records/bob")
                .is_some_and(|r| r["value"] == "room-2")
        },
    );

    // Bad input: clear errors, and the agents keep serving.
    fails_saying(
        &["table", "get", "nope", "k", "--http", &agents[0].http],
        &["hosts no table \"nope\""],
    );
    fails_saying(
        &["table", "get", "sessions", "zzz", "--http", &agents[0].http],
        &["no key \"zzz\""],
    );
    let big = "x".repeat(300 * 1024);
    let resp = ureq::put(&format!(
        "http://{}/v1/tables/sessions/records/big",
        agents[0].http
    ))
    .set("Authorization", &bearer())
    .send_json(serde_json::json!({ "value": big }));
    match resp {
        Err(ureq::Error::Status(413, r)) => {
            let v: serde_json::Value = r.into_json().unwrap();
            assert!(
                v["error"].as_str().unwrap().contains("exceeds the limit"),
                "{v}"
            );
        }
        other => panic!("expected 413, got {other:?}"),
    }
    let resp = ureq::put(&format!(
        "http://{}/v1/tables/sessions/records/k",
        agents[0].http
    ))
    .set("Authorization", &bearer())
    .set("content-type", "application/json")
    .send_string("{not json");
    assert!(matches!(resp, Err(ureq::Error::Status(400, _))), "{resp:?}");
    assert_eq!(
        ensemble(&["table", "get", "sessions", "bob", "--http", &agents[0].http]),
        "room-2"
    );
}

/// `PUT` with `if_absent` (granted once, the loser told the value held) and `serial`, both
/// refused together, and the replicas' `digest` in the info: equal when they hold the same
/// records.
#[test]
fn puts_if_absent_and_serial_and_replicas_compare_by_digest() {
    let dir = tempdir();
    let agents = start_agents(dir.path(), 2, &["--table", "locks"]);
    let info = |a: &Agent| ureq_get(&a.http, "/v1/tables/locks").unwrap();
    wait_for(Duration::from_secs(30), "the replicas join", || {
        agents.iter().all(|a| {
            ureq_get(&a.http, "/v1/tables/locks")
                .is_some_and(|i| i["members"].as_array().map(Vec::len) == Some(2))
        })
    });
    let path = "/v1/tables/locks/records/job";
    let put = |a: &Agent, body: serde_json::Value| call_json(&a.http, "PUT", path, Some(body));
    let (status, first) = put(
        &agents[0],
        serde_json::json!({"value": "a0", "if_absent": true}),
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first,
        serde_json::json!({"ok": true, "inserted": true, "value": "a0"})
    );
    let (_, second) = put(
        &agents[1],
        serde_json::json!({"value": "a1", "if_absent": true}),
    );
    assert_eq!(
        second,
        serde_json::json!({"ok": true, "inserted": false, "value": "a0"})
    );
    let (status, both) = put(
        &agents[1],
        serde_json::json!({"value": "x", "if_absent": true, "serial": true}),
    );
    assert_eq!(status, 400, "{both}");
    assert_eq!(both["code"], "invalid_argument", "{both}");
    let (status, serial) = put(
        &agents[1],
        serde_json::json!({"value": "s1", "serial": true}),
    );
    assert_eq!((status, serial), (200, serde_json::json!({"ok": true})));
    // Synchronous through the leader: both replicas have it, and their digests agree.
    for a in &agents {
        assert_eq!(ureq_get(&a.http, path).unwrap()["value"], "s1");
    }
    let d0 = info(&agents[0])["digest"].as_str().unwrap().to_string();
    assert_eq!(d0.len(), 16, "{d0}");
    assert_eq!(info(&agents[1])["digest"], d0.as_str());
    assert_ne!(d0, format!("{:016x}", 0));
    // The CLI: --if-absent prints who holds the key; both flags are refused.
    assert_eq!(
        ensemble(&[
            "table",
            "put",
            "locks",
            "job",
            "z",
            "--if-absent",
            "--http",
            &agents[0].http
        ]),
        "exists: s1"
    );
    assert_eq!(
        ensemble(&[
            "table",
            "put",
            "locks",
            "new",
            "z",
            "--if-absent",
            "--http",
            &agents[0].http
        ]),
        "inserted"
    );
    fails_saying(
        &[
            "table",
            "put",
            "locks",
            "k",
            "v",
            "--if-absent",
            "--serial",
            "--http",
            &agents[0].http,
        ],
        &["cannot be used with"],
    );
    let text = ensemble(&["table", "info", "locks", "--http", &agents[1].http]);
    assert!(text.contains("digest:"), "{text}");
}

/// `ensemble bench tables` (small sizes): every figure is reported, every replica is checked
/// to hold exactly the records written, and the temporary log directory goes away.
#[test]
fn bench_tables_reports_every_figure_checks_every_record_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "tables",
        "--sync",
        "30",
        "--callers",
        "3",
        "--concurrent",
        "30",
        "--batch",
        "50",
        "--batches",
        "4",
        "--join-records",
        "500",
        "--json",
    ];
    let out = cli().args(args).env("TMPDIR", tmp.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ensemble {args:?} failed: {err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "sync_inserts_per_s",
        "concurrent_inserts_per_s",
        "insert_many_records_per_s",
        "join_ms",
    ] {
        assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {r}");
    }
    assert_eq!(r["replicas"], 3);
    assert_eq!(r["records_verified"], 30 + 30 + 4 * 50, "{r}");
    assert_eq!(r["join_records"], 500);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
