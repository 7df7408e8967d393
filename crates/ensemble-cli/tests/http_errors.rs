//! End-to-end: every error answer of an agent's HTTP API is JSON `{"error", "code"}` with the
//! status it always had: unknown paths, wrong methods, bodies axum refuses, bad path
//! parameters and the routes' own errors.

use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

/// Sends `method path` with `body` (and `content_type`, if any); returns the status, the
/// `content-type` and `allow` headers and the body as JSON (Null if it is not JSON).
fn call(
    http: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String, Value) {
    let mut req = ureq::request(method, &format!("http://{http}{path}"))
        .set("Authorization", &bearer())
        .timeout(Duration::from_secs(10));
    if let Some(t) = content_type {
        req = req.set("content-type", t);
    }
    let resp = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let header = |h: &str| resp.header(h).unwrap_or_default().to_string();
    let (ctype, allow) = (header("content-type"), header("allow"));
    let text = resp.into_string().unwrap();
    (
        status,
        ctype,
        allow,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Expects a JSON error answer with `status` and `code`, whose message holds `needle`;
/// returns the body.
fn expect_error(
    http: &str,
    req: (&str, &str, Option<&str>, Option<&str>),
    status: u16,
    code: &str,
    needle: &str,
) -> (String, Value) {
    let (method, path, ctype, body) = req;
    let (got, content_type, allow, v) = call(http, method, path, ctype, body);
    assert_eq!(got, status, "{method} {path}: {v}");
    assert!(
        content_type.starts_with("application/json"),
        "{method} {path}: content-type {content_type:?}"
    );
    assert_eq!(v["code"], code, "{method} {path}: {v}");
    let message = v["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{method} {path}: {needle:?} not in {v}"
    );
    (allow, v)
}

#[test]
fn refused_requests_answer_json_with_a_code() {
    let dir = tempdir();
    let a = Agent::start_with(
        dir.path(),
        "a0",
        None,
        SECRET,
        &["--allow-fault-injection", "--table", "t"],
    );
    a.wait_answers(Duration::from_secs(15));
    let http = a.http.as_str();
    let json = Some("application/json");

    // Unknown paths and wrong methods, answered by the router itself.
    expect_error(
        http,
        ("GET", "/v1/nope", None, None),
        404,
        "not_found",
        "/v1/nope",
    );
    let (allow, _) = expect_error(
        http,
        ("DELETE", "/v1/members", None, None),
        405,
        "method_not_allowed",
        "/v1/members",
    );
    assert!(allow.contains("GET"), "Allow: {allow:?}");
    let (allow, _) = expect_error(
        http,
        ("GET", "/v1/send", None, None),
        405,
        "method_not_allowed",
        "GET",
    );
    assert!(allow.contains("POST"), "Allow: {allow:?}");

    // Bodies axum's JSON extractor refuses.
    expect_error(
        http,
        ("POST", "/v1/events", json, Some("{not json")),
        400,
        "malformed_json",
        "JSON",
    );
    expect_error(
        http,
        ("POST", "/v1/events", Some("text/plain"), Some("{}")),
        415,
        "unsupported_media_type",
        "application/json",
    );
    expect_error(
        http,
        ("POST", "/v1/send", json, Some(r#"{"payload": "x"}"#)),
        422,
        "invalid_body",
        "missing field",
    );
    expect_error(
        http,
        ("PUT", "/v1/tables/t/records/k", json, Some("{not json")),
        400,
        "malformed_json",
        "JSON",
    );
    // A path parameter that does not parse.
    expect_error(
        http,
        ("DELETE", "/v1/partitions/abc", None, None),
        400,
        "invalid_path",
        "abc",
    );

    // The routes' own errors.
    expect_error(
        http,
        ("POST", "/v1/events", json, Some(r#"{"name": ""}"#)),
        400,
        "invalid_argument",
        "event name",
    );
    expect_error(
        http,
        (
            "POST",
            "/v1/send",
            json,
            Some(r#"{"node": "a9", "name": "x"}"#),
        ),
        404,
        "unknown_member",
        "a9 is not a live member",
    );
    expect_error(
        http,
        ("GET", "/v1/tables/nope", None, None),
        404,
        "table_not_hosted",
        "hosts no table \"nope\"",
    );
    expect_error(
        http,
        ("GET", "/v1/tables/t/records/zzz", None, None),
        404,
        "key_not_found",
        "no key \"zzz\"",
    );
    expect_error(
        http,
        ("POST", "/v1/partitions", json, Some(r#"{"nodes": []}"#)),
        400,
        "no_nodes",
        "at least one node",
    );
    expect_error(
        http,
        (
            "POST",
            "/v1/partitions",
            json,
            Some(r#"{"nodes": ["a9"], "ttl_ms": 0}"#),
        ),
        400,
        "bad_ttl",
        "ttl_ms must be 1 to 86400000",
    );
    expect_error(
        http,
        ("DELETE", "/v1/partitions/99", None, None),
        404,
        "unknown_partition",
        "no injected partition 99",
    );

    // Broadcast introspection of members.
    expect_error(
        http,
        ("GET", "/v1/broadcast/peers/nobody", None, None),
        404,
        "unknown_member",
        "nobody is not a live member",
    );
    let long_root = format!("/v1/broadcast/tree/{}", "r".repeat(200));
    expect_error(
        http,
        ("GET", &long_root, None, None),
        400,
        "invalid_argument",
        "limit is 128",
    );
    let (status, _, _, v) = call(http, "GET", "/v1/broadcast/peers/a0/a0", None, None);
    assert_eq!(
        (status, &v["node"], &v["root"]),
        (200, &Value::from("a0"), &Value::from("a0")),
        "{v}"
    );
    let (status, _, _, v) = call(http, "GET", "/v1/broadcast/tree/a0", None, None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["nodes"]["a0"]["node"], "a0", "{v}");
    assert_eq!(v["unanswered"], serde_json::json!([]), "{v}");

    // Answers that succeed are as they were.
    let (status, ctype, _, v) = call(http, "GET", "/v1/broadcast", None, None);
    assert_eq!(status, 200, "{v}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let (status, _, _, v) = call(http, "GET", "/v1/health", None, None);
    assert_eq!((status, &v["status"]), (200, &Value::from("ok")), "{v}");
}

#[test]
fn fault_injection_refusals_and_readiness_answer_json_with_a_code() {
    let dir = tempdir();
    // No node file: discovery fails, so the agent is not ready.
    let missing = dir.path().join("no-such-file");
    let a = Agent::start_with(
        dir.path(),
        "a0",
        None,
        SECRET,
        &[
            "--discovery",
            "file",
            "--discovery-file",
            missing.to_str().unwrap(),
        ],
    );
    a.wait_answers(Duration::from_secs(15));
    let http = a.http.as_str();
    expect_error(
        http,
        (
            "POST",
            "/v1/partitions",
            Some("application/json"),
            Some(r#"{"nodes": ["x"]}"#),
        ),
        403,
        "fault_injection_off",
        "--allow-fault-injection",
    );
    expect_error(
        http,
        ("DELETE", "/v1/partitions/1", None, None),
        403,
        "fault_injection_off",
        "--allow-fault-injection",
    );
    // The 503 of /v1/ready keeps its own fields beside `error` and `code`.
    let mut v = Value::Null;
    wait_for(Duration::from_secs(15), "a failed get_nodes", || {
        (_, v) = expect_error(
            http,
            ("GET", "/v1/ready", None, None),
            503,
            "not_ready",
            "not ready",
        );
        v["last_get_nodes_result"].is_string()
    });
    assert_eq!(v["ready"], false, "{v}");
    assert!(v["connected_nodes"].is_array(), "{v}");
    assert!(v["unavailable_nodes"].is_object() || v["unavailable_nodes"].is_array());
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("cannot read the discovery file"),
        "{v}"
    );
}
