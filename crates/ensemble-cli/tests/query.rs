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
