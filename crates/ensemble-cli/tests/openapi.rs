//! The agent's OpenAPI document (`GET /v1/openapi.json`, `ensemble api-spec`): a valid OpenAPI
//! 3.1 document with exactly the routes the agent's router answers (their paths and methods,
//! found on a real agent), the token on every route but the probes, the error shape, and the
//! streams as NDJSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

/// The routes answered without a token (the guard's list, docs/HTTP.md).
const PROBES: [&str; 3] = ["/v1/health", "/v1/ready", "/metrics"];

/// The methods a route may take.
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// `ensemble api-spec`: the document, offline.
fn offline_document() -> (String, Value) {
    let out = cli().arg("api-spec").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let doc = serde_json::from_str(&text).expect("the document is JSON");
    (text, doc)
}

/// Every (path, method) of the document, with its operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let mut all = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                all.insert((path.clone(), m.to_uppercase()), op);
            }
        }
    }
    all
}

/// Every `$ref` of `v` (a JSON pointer into the document).
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let (text, doc) = offline_document();
    let spec = oas3::from_json(&text).expect("oas3 parses the document");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("a local $ref");
        assert!(doc.pointer(pointer).is_some(), "{r} resolves to nothing");
    }

    let ops = operations(&doc);
    let mut ids = BTreeSet::new();
    for ((path, method), op) in &ops {
        let id = op["operationId"].as_str().expect("an operationId");
        assert!(ids.insert(id), "operationId {id} is not unique");
        let answers = op["responses"].as_object().unwrap();
        assert!(answers.contains_key("200"), "{method} {path}: no 200");
        for (status, answer) in answers {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    answer["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorView",
                    "{method} {path} {status}: not the error shape"
                );
            }
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(
                    answers.contains_key(status),
                    "{method} {path}: a JSON body, no {status}"
                );
            }
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(body.get("$ref").is_some(), "{method} {path}: body {body}");
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "path" {
                let name = p["name"].as_str().unwrap();
                assert!(path.contains(&format!("{{{name}}}")), "{path}: {name}");
            }
        }
    }
    // The error shape.
    let error = &doc["components"]["schemas"]["ErrorView"];
    assert_eq!(error["properties"]["error"]["type"], "string");
    assert_eq!(error["properties"]["code"]["type"], "string");
    // Statuses of a few routes that answer them.
    for (path, method, status) in [
        ("/v1/members", "GET", "400"),
        ("/v1/tables/{table}/records/{key}", "GET", "404"),
        ("/v1/tables/{table}/records/{key}", "PUT", "413"),
        ("/v1/events", "POST", "413"),
        ("/v1/monitor", "GET", "429"),
        ("/v1/ready", "GET", "503"),
    ] {
        let op = ops[&(path.to_string(), method.to_string())];
        assert!(
            op["responses"].get(status).is_some(),
            "{method} {path}: no {status}"
        );
    }
    // The streams: NDJSON, each line of a schema.
    for (path, line) in [("/v1/events", "EventLine"), ("/v1/monitor", "MonitorLine")] {
        let op = ops[&(path.to_string(), "GET".to_string())];
        assert_eq!(
            op["responses"]["200"]["content"]["application/x-ndjson"]["schema"]["$ref"],
            format!("#/components/schemas/{line}").as_str(),
            "{path}"
        );
    }
    // The parameters of the routes with a query.
    let names = |path: &str| -> BTreeSet<String> {
        ops[&(path.to_string(), "GET".to_string())]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("/v1/members"),
        ["name", "status", "tag"].map(String::from).into()
    );
    assert_eq!(
        names("/v1/events"),
        ["snapshot", "types"].map(String::from).into()
    );
    assert_eq!(names("/v1/monitor"), ["level"].map(String::from).into());

    // The token: a bearer scheme, required everywhere but on the probes.
    let scheme = &doc["components"]["securitySchemes"]["token"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&"http".into(), &"bearer".into())
    );
    assert_eq!(doc["security"], serde_json::json!([{ "token": [] }]));
    for ((path, method), op) in &ops {
        let open = op.get("security") == Some(&serde_json::json!([{}]));
        assert_eq!(
            open,
            PROBES.contains(&path.as_str()),
            "{method} {path}: security"
        );
        let answers = op["responses"].as_object().unwrap();
        assert_eq!(!open, answers.contains_key("401"), "{method} {path}: 401");
    }
}

/// The route paths written in the server's sources (`"/v1/..."`, `"/metrics"`): where a route
/// may be added. Some may be no route (a message naming one); the agent tells.
fn paths_in_sources() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    let path = piece.split('?').next().unwrap();
                    if (path.starts_with("/v1/") || path == "/metrics")
                        && !path.contains(char::is_whitespace)
                    {
                        out.insert(path.to_string());
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"),
        &mut out,
    );
    out
}

/// `path` with each `{param}` replaced by `x`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// `method path` on the agent, with the token or not: the status, the `allow` header and the
/// JSON body (Null if not JSON). Only the head is read: a stream answers at once.
fn ask(http: &str, method: &str, path: &str, token: bool) -> (u16, String, Value) {
    let mut req =
        ureq::request(method, &format!("http://{http}{path}")).timeout(Duration::from_secs(10));
    if token {
        req = req.set("Authorization", &bearer());
    }
    let resp = match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let allow = resp.header("allow").unwrap_or("").to_string();
    let json = match resp.content_type() {
        "application/json" => resp.into_json().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, allow, json)
}

#[test]
fn an_agent_serves_the_document_of_exactly_its_routes() {
    let dir = tempdir();
    let a = Agent::start(dir.path(), "oa0", None, SECRET);
    a.wait_answers(Duration::from_secs(30));
    let (_, offline) = offline_document();

    // The document, behind the token like the other routes.
    let resp = ureq::get(&format!("http://{}/v1/openapi.json", a.http))
        .set("Authorization", &bearer())
        .call()
        .expect("GET /v1/openapi.json");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_type(), "application/json");
    let served: Value = resp.into_json().unwrap();
    assert_eq!(
        served, offline,
        "the agent serves what ensemble api-spec prints"
    );
    let (status, _, body) = ask(&a.http, "GET", "/v1/openapi.json", false);
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    let ops = operations(&served);
    let documented: BTreeSet<String> = ops.keys().map(|(p, _)| p.clone()).collect();

    // The agent's routes: each path written in the sources or documented, and the methods it
    // takes (a method no route takes answers 405 with `Allow`; an unknown path 404).
    let mut routes = BTreeSet::new();
    for path in paths_in_sources().union(&documented) {
        let (status, allow, body) = ask(&a.http, "TRACE", &concrete(path), true);
        match status {
            405 => {
                for m in allow.split(',').map(str::trim).filter(|m| *m != "HEAD") {
                    routes.insert((path.clone(), m.to_string()));
                }
            }
            404 if body["code"] == "not_found" => {}
            other => panic!("TRACE {path}: {other} {body}"),
        }
    }
    let in_document: BTreeSet<(String, String)> = ops.keys().cloned().collect();
    let undocumented: Vec<_> = routes.difference(&in_document).collect();
    assert!(
        undocumented.is_empty(),
        "routes of the agent missing from the document: {undocumented:?}; annotate each \
         handler with #[utoipa::path(...)] and add it to paths(...) in src/http/openapi.rs"
    );
    let no_route: Vec<_> = in_document.difference(&routes).collect();
    assert!(
        no_route.is_empty(),
        "documented, but no route of the agent: {no_route:?}"
    );
    assert!(routes.len() >= 35, "{} routes found", routes.len());

    // The token as documented: asked without it, every route but the probes answers 401.
    for ((path, method), op) in &ops {
        let open = op.get("security") == Some(&serde_json::json!([{}]));
        let (status, _, _) = ask(&a.http, method, &concrete(path), false);
        assert_eq!(
            status == 401,
            !open,
            "{method} {path} without the token: {status}"
        );
    }

    // Every documented GET route without parameters answers (not the fallback's 404).
    for (path, method) in ops.keys() {
        if method == "GET" && !path.contains('{') {
            let (status, _, body) = ask(&a.http, "GET", path, true);
            assert!(
                !(status == 404 && body["code"] == "not_found"),
                "GET {path}: no such route"
            );
            assert!(
                status == 200 || status == 503,
                "GET {path}: {status} {body}"
            );
        }
    }
}
