//! End-to-end: `POST /v1/query` on agents on 127.0.0.1.

use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::*;

/// POSTs `body` to `/v1/query`: the status and the NDJSON lines.
fn post_query(http: &str, body: Value) -> (u16, Vec<Value>) {
    let req = ureq::post(&format!("http://{http}/v1/query"))
        .set("Authorization", &bearer())
        .timeout(Duration::from_secs(60));
    let resp = match req.send_json(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST /v1/query: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    (status, lines)
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

#[test]
fn the_query_route_streams_acks_then_the_counts_and_refuses_oversized_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let agents = cluster(dir.path(), 3);
    let http = &agents[0].http;
    let (status, lines) = post_query(
        http,
        json!({ "name": "uptime", "payload": "x", "timeout_ms": 3000 }),
    );
    assert_eq!(status, 200, "{lines:?}");
    let mut from: Vec<_> = of_type(&lines, "ack")
        .iter()
        .map(|l| l["from"].as_str().unwrap().to_owned())
        .collect();
    from.sort();
    assert_eq!(from, ["a0", "a1", "a2"], "{lines:?}");
    // No agent has a handler for it: no response.
    assert_eq!(
        lines.last(),
        Some(&json!({ "type": "done", "acks": 3, "responses": 0 }))
    );

    let (_, lines) = post_query(
        http,
        json!({ "name": "uptime", "nodes": ["a2"], "timeout_ms": 2000 }),
    );
    assert_eq!(of_type(&lines, "ack").len(), 1, "{lines:?}");
    assert_eq!(of_type(&lines, "ack")[0]["from"], "a2");

    let big = "x".repeat(8 * 1024 + 1);
    let (status, lines) = post_query(http, json!({ "name": "uptime", "payload": big }));
    assert_eq!(status, 413, "{lines:?}");
    let text = lines[0].to_string();
    assert!(text.contains("over the limit of 8192"), "{text}");
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `ensemble ARGS`: success, stdout and stderr.
fn run(args: &[&str]) -> (bool, String, String) {
    let out = cli().args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn ensemble_query_prints_answers_of_handler_commands_filtered_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("late");
    // The payload, then who answered, for whom, and whether the agent's secret leaked.
    let whoami = "whoami=cat; printf ' %s %s %s %s' \"$ENSEMBLE_SELF_NAME\" \
                  \"$ENSEMBLE_QUERY_NAME\" \"$ENSEMBLE_QUERY_ORIGIN\" \"${ENSEMBLE_SECRET:-nosecret}\"";
    // A subshell: killing `sh` alone would leave it running.
    let slow = format!(
        "slow=(sleep 6; touch {}-$ENSEMBLE_SELF_NAME)",
        late.display()
    );
    let handlers = [
        "--query-handler",
        whoami,
        "--query-handler",
        &slow,
        "--query-handler",
        "big=head -c 20000 /dev/zero | tr '\\0' x",
        "--query-handler",
        "busy=sleep 4; echo ok",
    ];
    let with_role = |role: &str| {
        let mut extra = handlers.to_vec();
        extra.extend(["--tag", role]);
        extra.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let (e0, e1, e2) = (
        with_role("role=db"),
        with_role("role=web"),
        with_role("role=webcache"),
    );
    let a0 = Agent::start_with(dir.path(), "a0", None, SECRET, &refs(&e0));
    let seed = a0.bind.clone();
    let a1 = Agent::start_with(dir.path(), "a1", Some(&seed), SECRET, &refs(&e1));
    let a2 = Agent::start_with(dir.path(), "a2", Some(&seed), SECRET, &refs(&e2));
    let agents = [a0, a1, a2];
    wait_for(Duration::from_secs(30), "agents converge", || {
        agents.iter().all(|a| {
            a.members()
                .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["status"] == "alive"))
        })
    });
    // Asked from a1, which joined through a0.
    let http = agents[1].http.as_str();

    let (ok, out, err) = run(&["query", "--http", http, "--timeout", "5s", "whoami", "hi"]);
    assert!(ok, "{err}");
    for n in ["a0", "a1", "a2"] {
        assert!(out.contains(&format!("Ack from '{n}'")), "{out}");
        let response = format!("Response from '{n}': hi {n} whoami a1 nosecret");
        assert!(out.contains(&response), "{out}");
    }
    assert!(out.starts_with("Query 'whoami' dispatched\n"), "{out}");
    assert!(
        out.ends_with("Total Acks: 3\nTotal Responses: 3\n"),
        "{out}"
    );

    let json = |args: &[&str]| -> Value {
        let mut all = vec!["query", "--http", http, "--timeout", "3s", "--json"];
        all.extend(args);
        let (ok, out, err) = run(&all);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let all = json(&["whoami", "x"]);
    assert_eq!(all["acks"], json!(["a0", "a1", "a2"]), "{all}");
    assert_eq!(all["responses"]["a2"], "x a2 whoami a1 nosecret", "{all}");
    let one = json(&["--node", "a2", "whoami"]);
    assert_eq!(one["acks"], json!(["a2"]), "{one}");
    assert_eq!(one["responses"].as_object().unwrap().len(), 1, "{one}");
    let web = json(&["--tag", "role=^web", "whoami"]);
    assert_eq!(web["acks"], json!(["a1", "a2"]), "{web}");
    let no_ack = json(&["--no-ack", "whoami"]);
    assert_eq!(no_ack["acks"], json!([]), "{no_ack}");
    assert_eq!(
        no_ack["responses"].as_object().unwrap().len(),
        3,
        "{no_ack}"
    );
    // No handler for it: acked, not answered.
    let unknown = json(&["nobody-answers"]);
    assert_eq!(unknown["acks"], json!(["a0", "a1", "a2"]), "{unknown}");
    assert_eq!(unknown["responses"], json!({}), "{unknown}");

    // A command that outlives the timeout gives no response, and is killed.
    let started = std::time::Instant::now();
    let (ok, out, err) = run(&["query", "--http", http, "--timeout", "2s", "slow"]);
    assert!(ok, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        out.ends_with("Total Acks: 3\nTotal Responses: 0\n"),
        "{out}"
    );
    std::thread::sleep(Duration::from_secs(8));
    for n in ["a0", "a1", "a2"] {
        let marker = format!("{}-{n}", late.display());
        assert!(
            !std::path::Path::new(&marker).exists(),
            "{marker}: not killed"
        );
    }

    // Output over 8 KiB is cut there.
    let big = json(&["--node", "a0", "big"]);
    assert_eq!(
        big["responses"]["a0"].as_str().map(str::len),
        Some(8192),
        "{big}"
    );

    // At most 4 commands at once on an agent: of 6 queries at once, 4 are answered (each
    // command runs 4 s, so the 6 overlap even on a loaded machine).
    let asks: Vec<_> = (0..6)
        .map(|_| {
            cli()
                .args([
                    "query",
                    "--http",
                    http,
                    "--timeout",
                    "10s",
                    "--json",
                    "--node",
                    "a0",
                    "busy",
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut answered = 0;
    for ask in asks {
        let out = ask.wait_with_output().unwrap();
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["acks"], json!(["a0"]), "{v}");
        answered += v["responses"].as_object().unwrap().len();
    }
    assert_eq!(answered, 4);

    // The agent's refusals, in its words.
    let big = "x".repeat(8 * 1024 + 1);
    let (ok, _, err) = run(&["query", "--http", http, "whoami", &big]);
    assert!(!ok);
    assert!(
        err.contains("refused the query") && err.contains("over the limit of 8192"),
        "{err}"
    );
    let (ok, _, err) = run(&["query", "--http", http, "--tag", "role=(", "whoami"]);
    assert!(!ok);
    assert!(err.contains("bad query filter"), "{err}");
    let (ok, _, err) = run(&["query", "--http", http, "--timeout", "2 parsecs", "whoami"]);
    assert!(!ok);
    assert!(err.contains("--timeout"), "{err}");
}

/// The responses of the query `name` asked of the lone agent at `http`, as (from, payload).
fn responses(http: &str, name: &str) -> Vec<(String, String)> {
    let (status, lines) = post_query(http, json!({ "name": name, "timeout_ms": 1500 }));
    assert_eq!(status, 200, "{lines:?}");
    assert_eq!(of_type(&lines, "ack").len(), 1, "{lines:?}");
    of_type(&lines, "response")
        .iter()
        .map(|l| {
            let from = l["from"].as_str().unwrap().to_owned();
            (from, l["payload"].as_str().unwrap().trim().to_owned())
        })
        .collect()
}

#[test]
fn sighup_reads_the_query_handlers_of_the_config_file_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let write = |handlers: &str| std::fs::write(&config, format!("[query_handlers]\n{handlers}"));
    write("load = \"echo one\"\n").unwrap();
    let config_arg = config.display().to_string();
    let a = Agent::start_with(dir.path(), "a0", None, SECRET, &["--config", &config_arg]);
    a.wait_answers(Duration::from_secs(30));
    let me = |p: &str| vec![("a0".to_owned(), p.to_owned())];
    assert_eq!(responses(&a.http, "load"), me("one"));
    assert_eq!(responses(&a.http, "uptime"), []);

    // A changed command and a new name.
    write("load = \"echo two\"\nuptime = \"echo up\"\n").unwrap();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(
        Duration::from_secs(30),
        "the agent read its handlers again",
        || {
            a.log_text()
                .contains("SIGHUP: query handlers [load] -> [load uptime]")
        },
    );
    assert_eq!(responses(&a.http, "load"), me("two"));
    assert_eq!(responses(&a.http, "uptime"), me("up"));

    // A name gone: acked, no response; a bad name changes nothing.
    write("uptime = \"echo up\"\n").unwrap();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(Duration::from_secs(30), "the agent dropped load", || {
        a.log_text()
            .contains("SIGHUP: query handlers [load uptime] -> [uptime]")
    });
    assert_eq!(responses(&a.http, "load"), []);
    write("\"\" = \"echo bad\"\n").unwrap();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(
        Duration::from_secs(30),
        "the agent kept its handlers",
        || {
            a.log_text()
                .contains("SIGHUP: kept the query handlers as they were")
        },
    );
    assert_eq!(responses(&a.http, "uptime"), me("up"));
}
