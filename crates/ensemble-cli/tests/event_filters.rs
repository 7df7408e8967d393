//! End-to-end: `GET /v1/events?types=...&snapshot=true` (`ensemble events --types --snapshot`)
//! with Serf's event types, heartbeats, and `--event-handler 'FILTER=CMD'` on real agents.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::*;

const LONG: Duration = Duration::from_secs(60);

/// An `ensemble events --json` process following `agent`.
fn follow(dir: &Path, agent: &Agent, name: &str, flags: &[&str]) -> Follower {
    let mut args = vec!["events", "--json", "--http", &agent.http];
    args.extend(flags);
    Follower::start(&args, dir.join(format!("{name}.events")))
}

fn broadcast(agent: &Agent, name: &str, payload: &str) {
    let out = cli()
        .args(["broadcast", "--http", &agent.http, name, payload])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out);
}

#[test]
fn events_filtered_by_serf_types_with_a_snapshot_and_heartbeats() {
    let dir = tempdir();
    let d = dir.path();
    let agents = cluster(d, 2);
    let a0 = &agents[0];
    let deploys = follow(d, a0, "deploys", &["--types", "user:deploy"]);
    let gone = follow(
        d,
        a0,
        "gone",
        &["--types", "member-leave,member-failed", "--snapshot"],
    );
    let joins = follow(d, a0, "joins", &["--types", "member-join"]);
    wait_for(
        LONG,
        "every follower is connected (a heartbeat came)",
        || [&deploys, &gone, &joins].iter().all(|f| f.has_heartbeat()),
    );
    // The snapshot came first: one line per member.
    let snapshot = gone.records();
    let mut names: Vec<&str> = snapshot
        .iter()
        .map(|l| {
            assert_eq!(l["type"], "snapshot", "{l}");
            assert_eq!(l["member"]["status"], "alive", "{l}");
            l["member"]["name"].as_str().unwrap()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["a0", "a1"]);

    broadcast(&agents[1], "other", "x");
    broadcast(&agents[1], "deploy", "v1");
    let a2 = Agent::start(d, "a2", Some(&a0.bind), SECRET);
    wait_for(LONG, "the join follower sees a2 join", || {
        joins.records().iter().any(|e| e["member"]["name"] == "a2")
    });
    agents[1].signal(Signal::SIGTERM);
    wait_for(LONG, "the leave follower sees a1 leave", || {
        gone.records()
            .iter()
            .any(|e| e["kind"] == "left" && e["member"]["name"] == "a1")
    });
    wait_for(LONG, "the deploy follower sees the deploy", || {
        !deploys.records().is_empty()
    });
    // A last event through the same agent, so that anything wrongly let through is in too.
    broadcast(a0, "deploy", "v2");
    wait_for(LONG, "the deploy follower sees the second deploy", || {
        deploys.records().len() >= 2
    });

    let deploy_events = deploys.records();
    assert!(
        deploy_events
            .iter()
            .all(|e| e["type"] == "user" && e["name"] == "deploy"),
        "{deploy_events:?}"
    );
    assert_eq!(deploy_events.len(), 2, "{deploy_events:?}");
    let after_snapshot = &gone.records()[2..];
    assert!(
        after_snapshot
            .iter()
            .all(|e| e["type"] == "member" && (e["kind"] == "left" || e["kind"] == "down")),
        "{after_snapshot:?}"
    );
    let join_events = joins.records();
    assert!(
        join_events
            .iter()
            .all(|e| e["type"] == "member" && e["kind"] == "up"),
        "{join_events:?}"
    );
    drop(a2);

    // A bad type is refused with the JSON error shape, by the route and by the command.
    let (status, body) = call_json(&a0.http, "GET", "/v1/events?types=member-jion", None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_filter");
    assert!(body["error"].as_str().unwrap().contains("member-jion"));
    let (status, body) = call_json(&a0.http, "GET", "/v1/events?since=3", None);
    assert_eq!(
        (status, &body["code"]),
        (400, &Value::from("invalid_filter"))
    );
    fails_saying(
        &["events", "--http", &a0.http, "--types", "user,bogus"],
        &["unknown event type \"bogus\""],
    );
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn event_handlers_filtered_as_serfs_and_read_again_on_sighup() {
    let dir = tempdir();
    let d = dir.path();
    let (deploy_log, all_log) = (d.join("deploy.log"), d.join("all.log"));
    let deploy = format!(
        "user:deploy=echo \"$ENSEMBLE_EVENT $ENSEMBLE_USER_EVENT\" >> {}",
        deploy_log.display()
    );
    let all = format!(
        "echo \"$ENSEMBLE_EVENT $ENSEMBLE_USER_EVENT\" >> {}",
        all_log.display()
    );
    let a0 = Agent::start_with(
        d,
        "a0",
        None,
        SECRET,
        &["--event-handler", &deploy, "--event-handler", &all],
    );
    // Its handlers run from before its API answers: none of a1's events is missed.
    a0.wait_answers(LONG);
    // a1's handlers come from its config file, and change on SIGHUP.
    let config = d.join("a1.toml");
    let (a1_log, a1_all) = (d.join("a1-handler.out"), d.join("a1-all.out"));
    let handlers = |name: &str| {
        format!(
            "event_handlers = ['user:{name}=echo \"$ENSEMBLE_USER_EVENT\" >> {}', \
             'echo \"$ENSEMBLE_EVENT $ENSEMBLE_USER_EVENT\" >> {}']\n",
            a1_log.display(),
            a1_all.display()
        )
    };
    std::fs::write(&config, handlers("first")).unwrap();
    let config_arg = config.display().to_string();
    let a1 = Agent::start_with(d, "a1", Some(&a0.bind), SECRET, &["--config", &config_arg]);
    wait_for(LONG, "a0 sees a1", || {
        a0.status_of("a1").is_some_and(|(s, _)| s == "alive")
    });
    broadcast(&a0, "other", "x");
    broadcast(&a0, "deploy", "v1");
    broadcast(&a0, "first", "x");
    broadcast(&a0, "last", "x");
    // Handlers run in order, event by event: once the unfiltered one has the last event,
    // the filtered one is done with every event before it.
    wait_for(LONG, "a0's unfiltered handler ran for every event", || {
        lines_of(&all_log).contains(&"user last".to_owned())
    });
    let all_lines = lines_of(&all_log);
    assert!(
        all_lines.contains(&"member-up ".to_owned()),
        "{all_lines:?}"
    );
    assert!(
        all_lines.contains(&"user other".to_owned()),
        "{all_lines:?}"
    );
    assert_eq!(lines_of(&deploy_log), ["user deploy"]);
    wait_for(LONG, "a1's unfiltered handler ran for every event", || {
        lines_of(&a1_all).contains(&"user last".to_owned())
    });
    assert_eq!(lines_of(&a1_log), ["first"]);

    std::fs::write(&config, handlers("second")).unwrap();
    a1.signal(Signal::SIGHUP);
    wait_for(LONG, "a1 logs the new handlers", || {
        a1.log_text()
            .contains("SIGHUP: event handlers 2 [user:first *] -> 2 [user:second *]")
    });
    broadcast(&a0, "first", "y");
    broadcast(&a0, "second", "y");
    broadcast(&a0, "last", "y");
    wait_for(LONG, "a1's handlers ran for the new events", || {
        lines_of(&a1_all)
            .iter()
            .filter(|l| *l == "user last")
            .count()
            == 2
    });
    assert_eq!(lines_of(&a1_log), ["first", "second"]);

    // A bad filter is refused at start and by validate; a bad one on SIGHUP changes nothing.
    fails_saying(
        &[
            "agent",
            "--name",
            "x",
            "--event-handler",
            "member-jion=true",
        ],
        &["event handler 1 (--event-handler)", "member-jion"],
    );
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "event_handlers = ['user:=true']\n").unwrap();
    fails_saying(
        &["validate", bad.to_str().unwrap()],
        &["config key event_handlers", "user:"],
    );
    std::fs::write(&config, "event_handlers = ['users=true']\n").unwrap();
    a1.signal(Signal::SIGHUP);
    wait_for(LONG, "a1 keeps its handlers", || {
        a1.log_text()
            .contains("SIGHUP: kept the event handlers as they were")
    });
}
