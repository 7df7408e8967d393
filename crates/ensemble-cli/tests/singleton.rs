//! End-to-end: a singleton command run by one of 3 `ensemble agent` processes, taken over
//! when its agent is SIGKILLed, handed over when its agent is stopped.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::*;

/// Appends "start NODE EPOCH" to `log`, and "stop NODE" on SIGTERM.
fn command(log: &Path) -> String {
    let log = log.display();
    let dir = Path::new(&log.to_string())
        .parent()
        .unwrap()
        .display()
        .to_string();
    format!(
        "cron=echo start $ENSEMBLE_NODE $ENSEMBLE_EPOCH >> {log}; \
         sleep 1000 & echo $! > {dir}/grandchild-$ENSEMBLE_NODE; \
         trap 'echo stop $ENSEMBLE_NODE >> {log}; exit 0' TERM; \
         while true; do sleep 0.05; done"
    )
}

fn leader_seen_by(a: &Agent) -> Option<(String, u64)> {
    let v = ureq_get(&a.http, "/v1/singletons")?;
    let s = v.as_array()?.iter().find(|s| s["name"] == "cron")?.clone();
    Some((s["leader"].as_str()?.to_string(), s["epoch"].as_u64()?))
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn one_agent_runs_the_command_and_another_takes_over() {
    let dir = tempdir();
    let log = dir.path().join("cron.log");
    let flag = command(&log);
    let extra = ["--singleton", flag.as_str()];
    let agents = start_agents(dir.path(), 3, &extra);
    wait_for(Duration::from_secs(20), "all follow one leader", || {
        let seen: Vec<_> = agents.iter().map(leader_seen_by).collect();
        seen.iter().all(|s| s.is_some() && *s == seen[0])
    });
    let (leader, epoch) = leader_seen_by(&agents[1]).unwrap();
    assert_eq!(leader, "a0");
    let once = vec![format!("start a0 {epoch}")];
    let started = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        lines(&log) == once
    });
    assert!(
        started,
        "the command started once: {:?}, leader seen {:?}",
        lines(&log),
        agents.iter().map(leader_seen_by).collect::<Vec<_>>()
    );
    let v: Value = json_of(&["singleton", "list", "--json", "--http", &agents[0].http]);
    assert_eq!(v[0]["role"], "leader");
    assert_eq!(v[0]["epoch"], epoch);
    // The dump: the command's pid and epoch, when the activator started, since when it leads.
    assert_eq!(v[0]["mod_state"]["epoch"], epoch);
    assert!(
        v[0]["mod_state"]["pid"].as_u64().is_some_and(|p| p > 1),
        "{v}"
    );
    let (created, active) = (&v[0]["created_at_ms"], &v[0]["active_from_ms"]);
    assert!(created.as_u64().unwrap() <= active.as_u64().unwrap(), "{v}");
    let follower: Value = json_of(&["singleton", "list", "--json", "--http", &agents[1].http]);
    assert_eq!(follower[0]["active_from_ms"], Value::Null, "{follower}");
    assert_eq!(follower[0]["mod_state"], Value::Null, "{follower}");

    // SIGKILL: the command dies with its agent, a1 takes over at a higher epoch.
    agents[0].signal(Signal::SIGKILL);
    let killed = std::time::Instant::now();
    wait_for(Duration::from_secs(15), "a1 runs the command", || {
        lines(&log).iter().any(|l| l.starts_with("start a1 "))
    });
    eprintln!("{:?} after SIGKILL: {:?}", killed.elapsed(), lines(&log));
    let (next, next_epoch) = leader_seen_by(&agents[2]).unwrap();
    assert_eq!(next, "a1");
    assert!(next_epoch > epoch, "{next_epoch} > {epoch}");
    wait_for(Duration::from_secs(5), "a0's command died with it", || {
        lines(&log).contains(&"stop a0".to_string())
    });
    // A refused redial told a1 that a0's process is gone: membership marked it down without
    // suspecting it first, and a1 took over in the same step.
    let a1 = agents[1].log_text();
    assert!(a1.contains("leading singleton cron"), "{a1}");
    assert!(a1.contains("member a0 is Down"), "{a1}");
    assert!(!a1.contains("member a0 is Updated (suspect"), "{a1}");

    // SIGTERM: a1 stops its command and hands over to a2 before it leaves.
    agents[1].signal(Signal::SIGTERM);
    wait_for(Duration::from_secs(10), "a2 runs the command", || {
        lines(&log).iter().any(|l| l.starts_with("start a2 "))
    });
    // The command got SIGTERM when its agent stepped down (the next leader does not wait for
    // it to exit: that is what the epoch is for).
    wait_for(Duration::from_secs(5), "a1 stopped its command", || {
        lines(&log).contains(&"stop a1".to_string())
    });
    // What the command started in the background is stopped with it (its process group).
    let pid: i32 = std::fs::read_to_string(dir.path().join("grandchild-a1"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "a1's background process is gone",
        || {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        },
    );
    let (last, last_epoch) = leader_seen_by(&agents[2]).unwrap();
    assert_eq!(last, "a2");
    assert!(last_epoch > next_epoch);
    let text = String::from_utf8(
        cli()
            .args(["singleton", "list", "--http", &agents[2].http])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("cron") && text.contains("a2") && text.contains("leader"),
        "{text}"
    );
}

#[test]
fn a_bad_majority_flag_is_refused_with_the_fix() {
    fails_saying(
        &["agent", "--name", "x", "--singleton-majority", "cron=0"],
        &["--singleton-majority", "at least 1"],
    );
    fails_saying(
        &["agent", "--name", "x", "--singleton", "cron"],
        &["--singleton", "NAME=COMMAND"],
    );
}
