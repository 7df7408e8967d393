//! End-to-end key rotation with 5 agents and keyring files: `ensemble keys install`, `use`,
//! `remove` while acknowledged messages and table writes stream through the HTTP API; nothing
//! fails, nobody is marked down, the keyring files follow, and afterwards an agent holding only
//! the old key is refused while one holding only the new key joins.

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::*;

const OLD: &str = "the-old-cluster-key-0123456789abc";

/// `ensemble keys OP` through `agent`, the key on standard input; the JSON answer.
fn keys(agent: &Agent, op: &str, key: Option<&str>) -> Value {
    let mut child = cli()
        .args(["keys", op, "--json", "--http", &agent.http])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(k) = key {
        child.stdin.take().unwrap().write_all(k.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ensemble keys {op}: {err}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn call(http: &str, method: &str, path: &str, body: Value) -> Result<Value, String> {
    let req = ureq::request(method, &format!("http://{http}{path}"))
        .timeout(Duration::from_secs(10))
        .set("Authorization", &bearer());
    match req.send_json(body) {
        Ok(r) => Ok(r.into_json().unwrap_or(Value::Null)),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn five_agents_rotate_their_key_while_traffic_streams() {
    let dir = tempdir();
    let ring = |name: &str| dir.path().join(format!("{name}.keyring"));
    let start = |name: &str, join: Option<&str>, secret: &str| {
        let file = ring(name);
        let extra = [
            "--keyring-file",
            file.to_str().unwrap(),
            "--table",
            "t",
            "--handler",
            "jobs=cat > /dev/null",
        ];
        Agent::start_with(dir.path(), name, join, secret, &extra)
    };
    let first = start("k0", None, OLD);
    let seed = first.bind.clone();
    let mut agents = vec![first];
    for i in 1..5 {
        agents.push(start(&format!("k{i}"), Some(&seed), OLD));
    }
    wait_for(Duration::from_secs(30), "five agents converge", || {
        agents.iter().all(|a| {
            a.members()
                .is_some_and(|m| m.len() == 5 && m.iter().all(|m| m["status"] == "alive"))
        })
    });
    // The keyring files were created from the secret.
    let file: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(ring("k3")).unwrap()).unwrap();
    assert_eq!(file, vec![OLD.to_string()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ring("k3")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Traffic: acknowledged messages k1 -> k2, table writes on k3.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, written) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (h1, h3) = (agents[1].http.clone(), agents[3].http.clone());
        let (stop, sent, written) = (stop.clone(), sent.clone(), written.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let i = sent.fetch_add(1, Ordering::SeqCst);
                let body = json!({"node": "k2", "name": "jobs", "payload": format!("job {i}"), "ack": true});
                call(&h1, "POST", "/v1/send", body).unwrap_or_else(|e| panic!("message {i}: {e}"));
                let i = written.fetch_add(1, Ordering::SeqCst);
                let path = format!("/v1/tables/t/records/k{}", i % 50);
                call(&h3, "PUT", &path, json!({"value": format!("{i}")}))
                    .unwrap_or_else(|e| panic!("write {i}: {e}"));
            }
        })
    };
    let new = {
        let out = cli().arg("keygen").output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let answer = keys(&agents[4], "install", Some(&new));
    assert_eq!(answer["succeeded"].as_array().unwrap().len(), 5, "{answer}");
    let answer = keys(&agents[0], "use", Some(&new));
    assert!(answer["failed"].as_object().unwrap().is_empty(), "{answer}");
    let answer = keys(&agents[2], "remove", Some(OLD));
    assert!(answer["failed"].as_object().unwrap().is_empty(), "{answer}");
    let listed = keys(&agents[1], "list", None);
    let prints = listed["keys"].as_object().unwrap();
    assert_eq!(prints.len(), 1, "{listed}");
    let only = prints.values().next().unwrap();
    assert_eq!(
        (only["installed"].as_u64(), only["primary"].as_u64()),
        (Some(5), Some(5))
    );
    stop.store(true, Ordering::SeqCst);
    traffic.join().expect("no message or write failed");
    assert!(sent.load(Ordering::SeqCst) > 0 && written.load(Ordering::SeqCst) > 0);
    // Nobody was marked down, and every keyring file holds the new key only.
    for a in &agents {
        assert!(
            !a.log_text().contains(" is Down "),
            "{} marked a member down",
            a.name
        );
        let file: Vec<String> =
            serde_json::from_str(&std::fs::read_to_string(ring(&a.name)).unwrap()).unwrap();
        assert_eq!(file, vec![new.clone()], "{}'s keyring file", a.name);
    }
    // Afterwards: only the new key gets an agent in.
    let old = Agent::start(dir.path(), "old", Some(&seed), OLD);
    wait_for(Duration::from_secs(15), "the old key is refused", || {
        old.log_text().contains("key exchange")
    });
    let joined = Agent::start(dir.path(), "newcomer", Some(&seed), &new);
    wait_for(
        Duration::from_secs(20),
        "the new key gets an agent in",
        || {
            agents[0]
                .status_of("newcomer")
                .is_some_and(|(s, _)| s == "alive")
        },
    );
    assert!(
        agents[0].status_of("old").is_none(),
        "the old key got an agent in"
    );
    drop((old, joined));
}

#[test]
fn sighup_reads_the_keyring_file_again() {
    let dir = tempdir();
    let file = dir.path().join("a.keyring");
    let extra = ["--keyring-file", file.to_str().unwrap()];
    let a = Agent::start_with(dir.path(), "h0", None, OLD, &extra);
    wait_for(Duration::from_secs(15), "the agent answers", || {
        a.members().is_some()
    });
    let listed = keys(&a, "list", None);
    assert_eq!(listed["keys"].as_object().unwrap().len(), 1);
    let second = "a-second-cluster-key-9876543210xyz";
    std::fs::write(&file, serde_json::to_string(&vec![OLD, second]).unwrap()).unwrap();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the agent holds both keys", || {
        keys(&a, "list", None)["keys"].as_object().unwrap().len() == 2
    });
    // A file it cannot use leaves the keyring as it was.
    std::fs::write(&file, "[\"weak\"]").unwrap();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(
        Duration::from_secs(10),
        "the agent logs the refusal",
        || a.log_text().contains("kept the keyring as it was"),
    );
    assert_eq!(keys(&a, "list", None)["keys"].as_object().unwrap().len(), 2);
}
