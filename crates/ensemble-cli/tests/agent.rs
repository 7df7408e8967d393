//! End-to-end: `ensemble agent` processes on 127.0.0.1, queried over HTTP, killed and stopped.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::*;

// SIGKILL and SIGSTOP of one of 8 agents: tests/failure_detection.rs.

#[test]
fn sigterm_leaves_gracefully_and_members_prints_a_table() {
    let dir = tempdir();
    let mut agents = cluster(dir.path(), 3);
    // A normal start logs no routine noise at INFO: discovery's first success is not news.
    for a in &agents {
        let log = a.log_text();
        assert!(!log.contains("succeeded again"), "{log}");
    }
    let out = cli()
        .args(["members", "--http", &agents[0].http])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    for a in &agents {
        assert!(
            table.contains(&a.name) && table.contains(&a.bind),
            "{table}"
        );
    }
    agents[2].signal(Signal::SIGTERM);
    let status = agents[2]
        .wait_exit(Duration::from_secs(10))
        .expect("agent exits on SIGTERM");
    assert!(status.success());
    wait_for(Duration::from_secs(10), "the others mark a2 left", || {
        everyone_sees(&agents, &[2], "a2", "left")
    });
    let json = agents[0].members().unwrap();
    let a2 = json.iter().find(|m| m["name"] == "a2").unwrap();
    for key in ["name", "addr", "status", "incarnation", "tags"] {
        assert!(a2.get(key).is_some(), "members --json lacks {key}: {a2}");
    }
}

#[test]
fn a_wrong_secret_is_refused_and_logged_on_both_sides() {
    let dir = tempdir();
    let good = Agent::start(dir.path(), "good", None, SECRET);
    let bad = Agent::start(
        dir.path(),
        "bad",
        Some(&good.bind),
        "not-the-cluster-secret-at-all",
    );
    wait_for(
        Duration::from_secs(15),
        "both sides log the refusal",
        || {
            let said = |log: String| log.contains("key exchange") && log.contains("same secret");
            said(good.log_text()) && said(bad.log_text())
        },
    );
    let members = good.members().unwrap();
    assert_eq!(
        members.len(),
        1,
        "the agent with the wrong secret is not a member"
    );
}

/// An agent alone whose every dial is refused for its key says so once, plainly, with the fix
/// (after `secret_mismatch_warning_ms`, 30 s by default, 1 s here).
#[test]
fn an_agent_alone_with_the_wrong_secret_says_so_once_with_the_fix() {
    let dir = tempdir();
    let config = dir.path().join("warn.toml");
    std::fs::write(&config, "secret_mismatch_warning_ms = 1000\n").unwrap();
    let config = config.to_str().unwrap();
    let good = Agent::start_with(dir.path(), "good", None, SECRET, &["--config", config]);
    let bad = Agent::start_with(
        dir.path(),
        "bad",
        Some(&good.bind),
        "not-the-cluster-secret-at-all",
        &["--config", config],
    );
    let warning = "no peer accepted this node's cluster secret";
    wait_for(Duration::from_secs(30), "the agent says it", || {
        bad.log_text().contains(warning)
    });
    // Several more delays, with dials still refused: said once only.
    std::thread::sleep(Duration::from_secs(4));
    let log = bad.log_text();
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    let line = log.lines().find(|l| l.contains(warning)).unwrap();
    for needle in [
        "WARN",
        &format!("every dial to {}", good.bind),
        "secret mismatch",
        "ENSEMBLE_SECRET or --secret-file",
        "ensemble keygen",
    ] {
        assert!(line.contains(needle), "{needle:?} not in {line}");
    }
    assert!(
        !good.log_text().contains(warning),
        "the agent alone by itself, which dials nobody, says nothing"
    );
}

/// Runs `ensemble ARGS`, expects it to fail, and expects every needle on its stderr.

#[test]
fn a_weak_secret_is_refused_at_start_and_keygen_prints_a_strong_one() {
    let dir = tempdir();
    let weak = dir.path().join("weak");
    std::fs::write(&weak, "passwordpassword\n").unwrap();
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let args = ["agent", "--name", "w", "--bind", &bind, "--secret-file"];
    let args = [&args[..], &[weak.to_str().unwrap()]].concat();
    fails_saying(&args, &["too weak", "ensemble keygen"]);
    let out = cli().arg("keygen").output().unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    let key = key.trim();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let again = cli().arg("keygen").output().unwrap();
    assert_ne!(String::from_utf8(again.stdout).unwrap().trim(), key);
    // An agent starts with it; from a file others can read, with a warning.
    let file = dir.path().join("open.key");
    std::fs::write(&file, key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let extra = ["--secret-file", file.to_str().unwrap()];
    let a = Agent::start_with(
        dir.path(),
        "k",
        None,
        "unused-because-of-the-file-0123",
        &extra,
    );
    wait_for(Duration::from_secs(15), "the agent answers", || {
        a.members().is_some()
    });
    #[cfg(unix)]
    assert!(
        a.log_text().contains("can be read by other users"),
        "no warning about the open key file"
    );
}

#[test]
fn bad_config_exits_naming_the_key() {
    let dir = tempdir();
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "name = \"x\"\nheartbeat = 5\n").unwrap();
    let config = file.to_str().unwrap();
    fails_saying(&["agent", "--config", config], &["heartbeat", "agent.toml"]);
    std::fs::write(&file, "name = \"x\"\nbusy_wait_us = 50000\n").unwrap();
    fails_saying(&["agent", "--config", config], &["busy_wait_us", "10000"]);
    let missing = [
        "agent",
        "--name",
        "x",
        "--secret-file",
        "/nonexistent/secret",
    ];
    fails_saying(&missing, &["--secret-file", "/nonexistent/secret"]);
    fails_saying(
        &["members", "--http", "127.0.0.1:1"],
        &["cannot reach the agent"],
    );
    fails_saying(&["sim", "membership", "--loss", "1.5"], &["--loss"]);
}

#[test]
fn config_file_and_default_secret_file_work() {
    let dir = tempdir();
    let (bind, http) = (free_port(), free_port());
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"cfg\"\nbind = \"127.0.0.1:{bind}\"\nhttp = \"127.0.0.1:{http}\"\n\
             busy_wait_us = 0\n[tags]\nrole = \"web\"\n[membership]\nheartbeat_interval_ms = 200\n"
        ),
    )
    .unwrap();
    let home = dir.path().join("home");
    // No secret anywhere: the agent refuses to start rather than make a secret no other node
    // has, and says both fixes.
    let refused_log = dir.path().join("refused.log");
    let mut refused = cli()
        .args(["agent", "--config", file.to_str().unwrap()])
        .env_remove("ENSEMBLE_SECRET")
        .env_remove("ENSEMBLE_BOOTSTRAP")
        .env("ENSEMBLE_HOME", &home)
        .stderr(std::fs::File::create(&refused_log).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break Some(status);
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = refused.kill();
            let _ = refused.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&refused_log).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "started without a secret: {err}"
    );
    for needle in [
        "no cluster secret",
        "ENSEMBLE_SECRET",
        "--secret-file",
        "--bootstrap",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(!home.join("secret").exists(), "no secret was created");
    let log = std::fs::File::create(dir.path().join("cfg.log")).unwrap();
    let mut child = cli()
        .args([
            "agent",
            "--config",
            file.to_str().unwrap(),
            "--tag",
            "zone=a",
            "--bootstrap",
        ])
        .env_remove("ENSEMBLE_SECRET")
        .env("ENSEMBLE_HOME", &home)
        .stderr(log)
        .spawn()
        .unwrap();
    let http = format!("127.0.0.1:{http}");
    let mut me = None;
    let t0 = Instant::now();
    // The agent made its HTTP token beside the secret; a client of that home finds it.
    let token = || std::fs::read_to_string(home.join("http-token")).unwrap_or_default();
    while me.is_none() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
        me = ureq::get(&format!("http://{http}/v1/self"))
            .set("Authorization", &format!("Bearer {}", token().trim()))
            .call()
            .ok()
            .and_then(|r| r.into_json::<serde_json::Value>().ok());
    }
    let members = cli()
        .args(["members", "--http", &http])
        .env("ENSEMBLE_HOME", &home)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let me = me.expect("agent answers /v1/self");
    assert_eq!(me["name"], "cfg");
    assert_eq!(me["tags"]["role"], "web");
    assert_eq!(me["tags"]["zone"], "a");
    assert!(
        home.join("secret").exists(),
        "--bootstrap created a per-user secret"
    );
    assert!(members.status.success(), "{members:?}");
    assert_eq!(token().trim().len(), 64, "32 random bytes in hex");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(home.join("http-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let log = std::fs::read_to_string(dir.path().join("cfg.log")).unwrap();
    assert!(
        log.contains(home.join("secret").to_str().unwrap()) && log.contains("--secret-file"),
        "the log says where and how to share it: {log}"
    );
}

#[test]
fn bench_membership_runs_and_reports_every_figure() {
    let args = [
        "bench",
        "membership",
        "--nodes",
        "3",
        "--idle-s",
        "1",
        "--soak-s",
        "2",
        "--cpu-hog",
        "1",
        "--no-serf",
        "--json",
    ];
    let reports: Vec<Value> = serde_json::from_value(json_of(&args)).unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r["system"], "ensemble");
    for key in [
        "convergence_ms",
        "kill_detect_max_ms",
        "stop_detect_max_ms",
        "stop_recover_ms",
    ] {
        assert!(r[key].as_u64().is_some(), "{key} missing in {r}");
    }
    assert!(r["rss_mb"].as_f64().unwrap() > 0.0);
    assert_eq!(r["false_positives"], 0);
    // The hog really spun during the soak (a loaded machine gives it less than a core).
    assert_eq!(r["cpu_hog"], 1);
    let hog = r["cpu_hog_pct"].as_f64().unwrap();
    assert!(hog > 10.0, "the hog got {hog}% of a core");
}

#[test]
fn sim_membership_prints_the_promised_json_and_is_deterministic() {
    let run = |seed: &str| {
        let mut v = json_of(&[
            "sim",
            "membership",
            "--nodes",
            "20",
            "--scenario",
            "crash",
            "--duration-s",
            "5",
            "--latency-ms",
            "5",
            "--jitter-ms",
            "2",
            "--loss",
            "0.01",
            "--seed",
            seed,
            "--json",
        ]);
        v.as_object_mut().unwrap().remove("wall_ms");
        v
    };
    let r = run("11");
    for key in [
        "nodes",
        "seed",
        "start",
        "detect_p50_ms",
        "detect_p99_ms",
        "detect_max_ms",
        "false_positives",
        "msgs_per_node_per_s",
        "bytes_per_node_per_s",
    ] {
        assert!(!r[key].is_null(), "{key} missing in {r}");
    }
    assert_eq!(r["nodes"], 20);
    assert_eq!(r["start"], "formed", "a crash starts from a formed cluster");
    assert!(
        r["convergence_ms"].is_null(),
        "a formed start measures no convergence"
    );
    assert_eq!(r["false_positives"], 0);
    assert_eq!(r, run("11"), "same seed, same report");
}

#[test]
fn sim_client_server_delivers_every_relayed_message() {
    let r = json_of(&[
        "sim",
        "client-server",
        "--servers",
        "4",
        "--clients",
        "120",
        "--messages-per-client",
        "2",
        "--json",
    ]);
    assert!(r["convergence_ms"].is_u64(), "{r}");
    assert_eq!(r["client_to_client_connections"], 0, "{r}");
    assert_eq!(r["messages"], 240, "{r}");
    assert_eq!(
        (&r["delivered"], &r["acked"]),
        (&r["messages"], &r["messages"]),
        "{r}"
    );
    fails_saying(&["sim", "client-server", "--servers", "0"], &["--servers"]);
}
