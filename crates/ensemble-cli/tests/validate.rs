//! `ensemble validate CONFIG`: a config file is checked without starting anything and without
//! creating any file (no secret, token or keyring file appears).

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// `ensemble validate CONFIG` with `home` as ENSEMBLE_HOME and no secret in the environment.
fn validate(home: &Path, config: &Path) -> Output {
    cli()
        .args(["validate", config.to_str().unwrap()])
        .env("ENSEMBLE_HOME", home)
        .env_remove("ENSEMBLE_SECRET")
        .env_remove("ENSEMBLE_HTTP_TOKEN")
        .output()
        .unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_valid_config_passes_and_creates_no_file() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let config = dir.path().join("agent.toml");
    let keyring = dir.path().join("keyring.json");
    std::fs::write(
        &config,
        format!(
            "name = \"web-1\"\nbind = \"127.0.0.1:7946\"\nkeyring_file = \"{}\"\n\
             tables = [\"sessions\"]\n[tags]\nrole = \"web\"\n\
             [query_handlers]\nuptime = \"uptime\"\n\
             [membership]\nheartbeat_interval_ms = 500\nsuspicion_min_ms = 300\n\
             monitor_neighbours = 3\n",
            keyring.display()
        ),
    )
    .unwrap();
    let out = validate(&home, &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration is valid"
    );
    assert!(
        files_in(&home).is_empty(),
        "validate created {:?}",
        files_in(&home)
    );
    assert_eq!(files_in(dir.path()), ["agent.toml", "home"]);
}

#[test]
fn an_invalid_config_fails_with_the_reason() {
    let dir = tempdir();
    let home = dir.path().to_path_buf();
    let cases: [(&str, &str); 8] = [
        ("colour = \"red\"\n", "unknown field `colour`"),
        (
            "[membership]\nheartbeat_interval_ms = 0\n",
            "heartbeat_interval_ms must be above 0",
        ),
        (
            "[membership]\nsuspicion_min_ms = 1500\n",
            "suspicion_min_ms must not exceed suspicion_timeout_ms",
        ),
        (
            "[membership]\nmonitor_neighbours = 100\n",
            "monitor_neighbours must be at most 32",
        ),
        ("bind = \"nowhere\"\n", "expected HOST:PORT"),
        ("tables = [\"ensemble.mine\"]\n", "ensemble.mine"),
        ("[tags]\n\"ensemble.role\" = \"server\"\n", "reserved"),
        ("[query_handlers]\n\"\" = \"uptime\"\n", "query_handlers"),
    ];
    for (i, (text, reason)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&config, format!("name = \"n\"\n{text}")).unwrap();
        let out = validate(&home, &config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} passed");
        assert!(
            stderr.contains(reason),
            "{text:?}: {reason:?} not in {stderr}"
        );
    }
    let missing = dir.path().join("missing.toml");
    let out = validate(&home, &missing);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    let names = files_in(dir.path());
    assert!(
        names.iter().all(|n| n.starts_with("bad")),
        "validate created files: {names:?}"
    );
}
