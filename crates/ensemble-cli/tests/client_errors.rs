//! End-to-end: a command whose agent answers an error prints the agent's message (the JSON
//! `error`) and fails, for a real agent and for an address that answers every request with an
//! error (which no real agent does for most routes).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

mod common;
use common::*;

/// Answers every request on a port of 127.0.0.1 with `status` and `body` (JSON if `json`);
/// returns HOST:PORT. The thread ends with the test process.
fn answering(status: &'static str, body: &'static str, json: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let ctype = if json {
        "application/json"
    } else {
        "text/plain"
    };
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // The request's head, then as much body as it announced.
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                line.clear();
            }
            let mut body_in = vec![0; length];
            let _ = reader.read_exact(&mut body_in);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// Runs `ensemble ARGS`; expects failure, every needle on stderr and none of `absent`.
fn fails_with(args: &[&str], needles: &[&str], absent: &[&str]) {
    let out = Command::new(exe()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ensemble {args:?} succeeded");
    for n in needles {
        assert!(err.contains(n), "ensemble {args:?}: {n:?} not in {err}");
    }
    for a in absent {
        assert!(!err.contains(a), "ensemble {args:?}: {a:?} in {err}");
    }
}

#[test]
fn every_command_prints_the_agents_error_message() {
    let msg = "the node is shutting down, try another agent";
    let http = answering(
        "503 Service Unavailable",
        r#"{"error": "the node is shutting down, try another agent", "code": "node_stopped"}"#,
        true,
    );
    let h = http.as_str();
    let commands: [&[&str]; 12] = [
        &["members", "--http", h],
        &["members", "--http", h, "--json"],
        &["tracker", "--http", h],
        &["discovery", "--http", h],
        &["singleton", "list", "--http", h],
        &["events", "--http", h],
        &["send", "--http", h, "a1", "jobs", "x"],
        &["partition", "list", "--http", h],
        &["partition", "resolve", "1", "--http", h],
        &["table", "list", "--http", h],
        &["table", "put", "t", "k", "v", "--http", h],
        &["broadcast", "--http", h, "deploy", "v1"],
    ];
    for args in commands {
        fails_with(
            args,
            &[msg],
            &[
                "cannot reach the agent",
                "the agent refused\n",
                "status code",
            ],
        );
    }
    // Not JSON: the text is shown with the status.
    let http = answering("502 Bad Gateway", "upstream is down", false);
    fails_with(
        &["members", "--http", &http],
        &["the agent answered HTTP 502: upstream is down"],
        &["cannot reach the agent"],
    );
    // Nobody there: as before.
    fails_with(
        &["tracker", "--http", "127.0.0.1:1"],
        &["cannot reach the agent at 127.0.0.1:1", "set --http"],
        &[],
    );
}

#[test]
fn commands_print_a_real_agents_refusals() {
    let dir = tempdir();
    let a = Agent::start_with(dir.path(), "a0", None, SECRET, &["--table", "t"]);
    wait_for(Duration::from_secs(15), "the agent answers", || {
        ureq_get(&a.http, "/v1/self").is_some()
    });
    let h = a.http.as_str();
    fails_with(
        &["table", "get", "t", "zzz", "--http", h],
        &["no key \"zzz\" in table \"t\""],
        &["the agent refused"],
    );
    fails_with(
        &["table", "info", "nope", "--http", h],
        &["this agent hosts no table \"nope\" (a put creates it)"],
        &[],
    );
    fails_with(
        &["partition", "inject", "a1", "--http", h],
        &[
            "fault injection is off on this agent",
            "--allow-fault-injection",
        ],
        &[],
    );
    fails_with(
        &["send", "--http", h, "--channel", "video", "a0", "x", "y"],
        &["no channel \"video\" is declared"],
        &[],
    );
    fails_with(
        &["broadcast", "--http", h, "", "x"],
        &["the agent refused the event: invalid configuration: event name"],
        &[],
    );
}
