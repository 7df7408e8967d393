//! End-to-end: `ensemble monitor` and `GET /v1/monitor` on a real agent: a monitor at debug
//! sees a join's lines though the agent writes info to stderr, a monitor's level filters, and
//! at most 8 monitors are connected at once.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

const LONG: Duration = Duration::from_secs(60);

/// An `ensemble monitor` process following `agent`.
fn monitor(dir: &Path, agent: &Agent, name: &str, flags: &[&str]) -> Follower {
    let mut args = vec!["monitor", "--http", &agent.http];
    args.extend(flags);
    Follower::start(&args, dir.join(format!("{name}.monitor")))
}

#[test]
fn a_monitor_streams_the_agents_lines_at_its_own_level() {
    let dir = tempdir();
    let d = dir.path();
    let a0 = Agent::start(d, "a0", None, SECRET);
    a0.wait_answers(LONG);
    let debug = monitor(d, &a0, "debug", &["--log-level", "debug", "--json"]);
    let warn = monitor(d, &a0, "warn", &["--log-level", "warn", "--json"]);
    let text = monitor(d, &a0, "text", &[]);
    // Connected once a heartbeat (every 5 s) came through.
    wait_for(LONG, "the monitors are connected", || {
        [&debug, &warn].iter().all(|m| m.has_heartbeat())
    });
    let a1 = Agent::start(d, "a1", Some(&a0.bind), SECRET);
    let join_line = |r: &Value| r["node"] == "a1" && r["status"] == "alive";
    wait_for(LONG, "the debug monitor sees the join", || {
        let records = debug.records();
        records.iter().any(join_line) && records.iter().any(|r| r["level"] == "DEBUG")
    });
    wait_for(LONG, "the text monitor sees the join", || {
        text.text().contains("INFO member a1 is")
    });
    for r in debug.records() {
        if r["type"] != "heartbeat" {
            for key in ["timestamp", "level", "target", "message"] {
                assert!(r[key].is_string(), "{key} missing in {r}");
            }
        }
    }
    assert!(!text.text().contains("DEBUG"), "{}", text.text());
    let too_verbose: Vec<Value> = (warn.records().into_iter())
        .filter(|r| r["level"] == "INFO" || r["level"] == "DEBUG")
        .collect();
    assert!(too_verbose.is_empty(), "{too_verbose:?}");
    // The agent's own stderr stays at info.
    assert!(!a0.log_text().contains("DEBUG"), "{}", a0.log_text());
    drop(a1);
}

/// `GET /v1/monitor` held open: the status, and the response (kept to keep the stream open).
fn open(http: &str, query: &str) -> (u16, Option<ureq::Response>) {
    let r = ureq::get(&format!("http://{http}/v1/monitor{query}"))
        .set("Authorization", &bearer())
        .call();
    match r {
        Ok(resp) => (resp.status(), Some(resp)),
        Err(ureq::Error::Status(code, _)) => (code, None),
        Err(e) => panic!("GET /v1/monitor: {e}"),
    }
}

#[test]
fn at_most_eight_monitors_at_once() {
    let dir = tempdir();
    let a0 = Agent::start(dir.path(), "a0", None, SECRET);
    a0.wait_answers(LONG);
    let h = a0.http.as_str();
    let (status, body) = call_json(h, "GET", "/v1/monitor?level=loud", None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_argument");
    let (status, body) = call_json(h, "GET", "/v1/monitor?since=1", None);
    assert_eq!(status, 400, "{body}");

    let mut held: Vec<ureq::Response> = (0..8)
        .map(|i| {
            let (status, resp) = open(h, "?level=debug");
            assert_eq!(status, 200, "monitor {i}");
            resp.unwrap()
        })
        .collect();
    let (status, body) = call_json(h, "GET", "/v1/monitor", None);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_monitors");
    fails_saying(
        &["monitor", "--http", h],
        &["8 monitors are connected already"],
    );

    // A monitor that goes away frees its place (seen at the latest by the next heartbeat).
    drop(held.pop());
    wait_for(LONG, "a place is free again", || {
        let (status, resp) = open(h, "");
        if let Some(r) = resp {
            held.push(r);
        }
        status == 200
    });
}
