//! Failure detection with real processes: 8 `ensemble agent`s on 127.0.0.1, one SIGKILLed and
//! restarted, another SIGSTOPped and resumed. The test asserts the transitions every survivor
//! goes through, and that nobody else changes state; how fast is the benchmark's business
//! (`ensemble bench membership`, docs/PERFORMANCE.md).

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::*;

const N: usize = 8;
const LIMIT: Duration = Duration::from_secs(30);

/// The membership events an observer streamed, as (member, kind, incarnation).
fn member_events(f: &Follower) -> Vec<(String, String, u64)> {
    f.records()
        .iter()
        .filter(|e| e["type"] == "member")
        .map(|e: &Value| {
            let m = &e["member"];
            (
                m["name"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
                m["incarnation"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The up, down and left events of `name` in `events`, in order, repeated kinds collapsed
/// (`updated`, a new incarnation or tags while up, is left out).
fn kinds_of(events: &[(String, String, u64)], name: &str) -> Vec<String> {
    let mut kinds: Vec<String> = events
        .iter()
        .filter(|(n, k, _)| n == name && k != "updated")
        .map(|(_, k, _)| k.clone())
        .collect();
    kinds.dedup();
    kinds
}

#[test]
fn a_killed_and_a_hung_agent_go_down_everywhere_and_come_back_with_higher_incarnations() {
    let dir = tempdir();
    let mut agents = cluster(dir.path(), N);
    let incarnations: BTreeMap<String, u64> = agents[0]
        .members()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap().to_owned();
            (name, m["incarnation"].as_u64().unwrap())
        })
        .collect();
    // Two observers stream every membership event from here on.
    let observers: Vec<Follower> = [0, 7]
        .iter()
        .map(|i| {
            let out = dir.path().join(format!("events-a{i}.jsonl"));
            let args = [
                "events",
                "--json",
                "--types",
                "member",
                "--http",
                &agents[*i].http,
            ];
            Follower::start(&args, out)
        })
        .collect();
    wait_for(LIMIT, "the observers' streams are connected", || {
        observers.iter().all(Follower::has_heartbeat)
    });

    // SIGKILL: the process is gone; every survivor marks it down (not left).
    agents[2].signal(Signal::SIGKILL);
    agents[2].wait_exit(LIMIT).expect("a2 dies");
    wait_for(LIMIT, "every survivor marks the killed a2 down", || {
        everyone_sees(&agents, &[2], "a2", "down")
    });
    // Restarted under the same name and address: up again, with a higher incarnation.
    let seed = agents[0].bind.clone();
    agents[2].spawn(Some(&seed), SECRET);
    wait_for(LIMIT, "every agent sees the restarted a2 alive", || {
        everyone_sees(&agents, &[], "a2", "alive")
    });

    // SIGSTOP: the process hangs with its sockets open; every other agent marks it down.
    agents[5].signal(Signal::SIGSTOP);
    wait_for(LIMIT, "every other agent marks the hung a5 down", || {
        everyone_sees(&agents, &[5], "a5", "down")
    });
    // SIGCONT: it learns it was declared down, refutes, and is alive everywhere again.
    agents[5].signal(Signal::SIGCONT);
    wait_for(LIMIT, "every agent sees a5 alive again", || {
        everyone_sees(&agents, &[], "a5", "alive")
    });
    wait_for(LIMIT, "the observers saw both come back", || {
        observers.iter().all(|o| {
            let events = member_events(o);
            kinds_of(&events, "a2").ends_with(&["down".into(), "up".into()])
                && kinds_of(&events, "a5").ends_with(&["down".into(), "up".into()])
        })
    });

    for (o, at) in observers.iter().zip([0, 7]) {
        let events = member_events(o);
        // a2 and a5: down once, then up with a higher incarnation than before; never `left`.
        for name in ["a2", "a5"] {
            let kinds = kinds_of(&events, name);
            assert_eq!(kinds, ["down", "up"], "a{at} saw {name}: {events:?}");
            let back = events
                .iter()
                .rfind(|(n, k, _)| n == name && k == "up")
                .unwrap();
            assert!(
                back.2 > incarnations[name],
                "a{at}: {name} came back as {back:?}"
            );
        }
        // Nobody else went down or left: no false positive anywhere in the run.
        let others: Vec<_> = events
            .iter()
            .filter(|(n, k, _)| n != "a2" && n != "a5" && (k == "down" || k == "left"))
            .collect();
        assert!(others.is_empty(), "a{at} saw false positives: {others:?}");
    }
    for a in &agents {
        let members = a.members().unwrap();
        assert_eq!(members.len(), N, "{}: {members:?}", a.name);
        assert!(
            members.iter().all(|m| m["status"] == "alive"),
            "{}: {members:?}",
            a.name
        );
    }
}
