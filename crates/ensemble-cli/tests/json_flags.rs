//! `--json` on `table get`, `table list`, `broadcast` and `send`: each prints the route's
//! JSON answer.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn table_broadcast_and_send_print_json() {
    let dir = tempdir();
    let a0 = Agent::start_with(dir.path(), "a0", None, SECRET, &["--table", "t"]);
    let _a1 = Agent::start_with(
        dir.path(),
        "a1",
        Some(&a0.bind),
        SECRET,
        &["--handler", "echo=cat"],
    );
    wait_for(Duration::from_secs(30), "a0 sees a1 alive", || {
        a0.status_of("a1").is_some_and(|(s, _)| s == "alive")
    });
    let ok = cli()
        .args(["table", "--http", &a0.http, "put", "t", "k", "v"])
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(
        json_of(&["table", "--http", &a0.http, "list", "--json"]),
        json!(["t"])
    );
    assert_eq!(
        json_of(&["table", "--http", &a0.http, "get", "t", "k", "--json"]),
        json!({"key": "k", "value": "v"})
    );
    assert_eq!(
        json_of(&["broadcast", "--http", &a0.http, "--json", "deploy", "x"]),
        json!({"ok": true})
    );
    assert_eq!(
        json_of(&["send", "--http", &a0.http, "--json", "--ack", "a1", "echo", "hi"]),
        json!({"ok": true})
    );
}
