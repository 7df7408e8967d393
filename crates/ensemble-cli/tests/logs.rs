//! End-to-end: the agent's logs: `--log-format json` lines with their fields, routine events
//! kept out of INFO, and the log level read again from the config file on SIGHUP.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::*;

const LONG: Duration = Duration::from_secs(60);

#[test]
fn json_logs_are_one_object_per_line_with_the_events_fields() {
    let dir = tempdir();
    let d = dir.path();
    let a0 = Agent::start_with(d, "a0", None, SECRET, &["--log-format", "json"]);
    let a1 = Agent::start_with(d, "a1", Some(&a0.bind), SECRET, &[]);
    let joined = |l: &Value| l["node"] == "a1" && l["status"] == "alive";
    wait_for(LONG, "a0 logs a1's join as JSON", || {
        a0.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| joined(&l))
    });
    drop(a1);
    let text = a0.log_text();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?} in\n{text}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} missing in {line}");
        }
    }
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| joined(l))
        .unwrap();
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["incarnation"].is_u64(), "{line}");
    assert!(line["event"].is_string(), "{line}");
    assert!(line["target"].as_str().unwrap().starts_with("ensemble"));
    assert!(line["message"].as_str().unwrap().contains("member a1"));
}

#[test]
fn a_normal_join_logs_no_closed_connection_at_info() {
    let dir = tempdir();
    let agents = cluster(dir.path(), 3);
    // Give the tie-break of simultaneous dials time to close the duplicates.
    std::thread::sleep(Duration::from_secs(2));
    for a in &agents {
        let log = a.log_text();
        let noisy: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("INFO") && l.contains("closed connection"))
            .collect();
        assert!(noisy.is_empty(), "{}: {noisy:?}", a.name);
        assert!(!log.contains("succeeded again"), "{}: {log}", a.name);
    }
}

#[test]
fn sighup_reads_the_log_level_from_the_config_file_again() {
    let dir = tempdir();
    let d = dir.path();
    let config = d.join("agent.toml");
    std::fs::write(&config, "log_level = \"info\"\n").unwrap();
    let config_arg = config.display().to_string();
    let a0 = Agent::start_with(d, "a0", None, SECRET, &["--config", &config_arg]);
    a0.wait_answers(LONG);
    let unchanged = "the log level is unchanged";
    // At info, the unchanged level (a debug line) is not logged.
    a0.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));

    std::fs::write(&config, "log_level = \"debug\"\n").unwrap();
    a0.signal(Signal::SIGHUP);
    wait_for(LONG, "a0 logs the change", || {
        a0.log_text().contains("SIGHUP: log level info -> debug")
    });
    assert!(!a0.log_text().contains(unchanged), "{}", a0.log_text());
    a0.signal(Signal::SIGHUP);
    wait_for(LONG, "a0 logs at debug", || {
        a0.log_text().contains(&format!("{unchanged} (debug)"))
    });

    std::fs::write(&config, "log_level = \"warn\"\n").unwrap();
    a0.signal(Signal::SIGHUP);
    wait_for(LONG, "a0 logs the change", || {
        a0.log_text().contains("SIGHUP: log level debug -> warn")
    });
    // At warn, a join (an info line) is not logged.
    let a1 = Agent::start(d, "a1", Some(&a0.bind), SECRET);
    wait_for(LONG, "a0 sees a1", || {
        a0.status_of("a1").is_some_and(|(s, _)| s == "alive")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!a0.log_text().contains("member a1"), "{}", a0.log_text());
    drop(a1);
}

#[test]
fn a_bad_log_setting_is_refused_at_start_and_by_validate() {
    let dir = tempdir();
    let d = dir.path();
    fails_saying(
        &["agent", "--log-level", "info,[", "--name", "x"],
        &["--log-level"],
    );
    fails_saying(
        &["agent", "--log-format", "xml", "--name", "x"],
        &["--log-format \"xml\"", "text or json"],
    );
    let config = d.join("bad.toml");
    std::fs::write(&config, "log_format = \"yaml\"\n").unwrap();
    fails_saying(
        &["validate", config.to_str().unwrap()],
        &["log_format", "text or json"],
    );
    std::fs::write(&config, "log_level = \"loud\"\n").unwrap();
    fails_saying(&["validate", config.to_str().unwrap()], &["log_level"]);
}
