//! End-to-end: an agent configured from `ENSEMBLE_*` variables alone, a member name that
//! defaults to the host name, and client commands that find the agent through
//! `ENSEMBLE_HTTP_ADDR`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::*;

/// Starts `cmd` with the test cluster's secret, its log in `log`.
fn spawn(mut cmd: Command, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    cmd.env("ENSEMBLE_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn every_flag_can_come_from_the_environment_and_the_name_defaults_to_the_host_name() {
    let dir = tempdir();
    let mut first = Agent::prepare(dir.path(), "from-env", &[]);
    let mut a = cli();
    a.arg("agent")
        .env("ENSEMBLE_NAME", "from-env")
        .env("ENSEMBLE_BIND", &first.bind)
        .env("ENSEMBLE_HTTP_ADDR", &first.http)
        .env("ENSEMBLE_TAG", "zone=eu")
        .env("ENSEMBLE_TABLE", "carts,orders")
        .env("ENSEMBLE_ALLOW_CREATE_TABLES", "true");
    // Dropping an `Agent` kills its process, whatever the test's outcome.
    first.child = Some(spawn(a, &dir.path().join("env.log")));
    // The second agent has no name at all, and its seed comes from the environment.
    let mut second = Agent::prepare(dir.path(), "unnamed", &[]);
    let mut b = cli();
    b.args(["agent", "--bind", &second.bind, "--http", &second.http])
        .env("ENSEMBLE_JOIN", &first.bind);
    second.child = Some(spawn(b, &dir.path().join("unnamed.log")));
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    // `ensemble members` without --http: ENSEMBLE_HTTP_ADDR names the agent.
    let members = || {
        let out = cli()
            .args(["members", "--json"])
            .env("ENSEMBLE_HTTP_ADDR", &first.http)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    };
    wait_for(Duration::from_secs(30), "both agents are members", || {
        members().is_some_and(|m| {
            let m = m.as_array().unwrap();
            m.len() == 2 && m.iter().all(|m| m["status"] == "alive")
        })
    });
    let m = members().unwrap();
    let me = m
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "from-env")
        .expect("ENSEMBLE_NAME named the first agent")
        .clone();
    assert_eq!(me["tags"]["zone"], "eu", "ENSEMBLE_TAG: {me}");
    assert!(
        m.as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == host.as_str()),
        "the unnamed agent is named after the host ({host}): {m}"
    );
    let tables = ureq_get(&first.http, "/v1/tables").expect("tables listed");
    let text = tables.to_string();
    assert!(
        text.contains("carts") && text.contains("orders"),
        "ENSEMBLE_TABLE declared both: {text}"
    );
}
