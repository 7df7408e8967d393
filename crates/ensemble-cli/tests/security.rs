//! End-to-end: the HTTP API's protections, against real agents on 127.0.0.1. Every route but
//! the probes needs the bearer token; a loopback API refuses other Host names (DNS
//! rebinding); the commands find the token by flag, environment or file; HTTPS with a CA
//! file; the probes on their own address; no child process sees a secret.

use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::*;

/// A request's status (0: no answer), JSON body (Null if none) and `WWW-Authenticate` header.
struct Answer {
    status: u16,
    body: Value,
    www_authenticate: String,
}

/// `method path` on the agent at `http`, with `Authorization: Bearer <token>` if given and
/// `Host: <host>` if given (else ureq's own).
fn call(
    http: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    host: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req =
        ureq::request(method, &format!("http://{http}{path}")).timeout(Duration::from_secs(20));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(h) = host {
        req = req.set("Host", h);
    }
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let resp = match resp {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(_) => {
            return Answer {
                status: 0,
                body: Value::Null,
                www_authenticate: String::new(),
            }
        }
    };
    let status = resp.status();
    let www_authenticate = resp.header("www-authenticate").unwrap_or("").to_string();
    // A stream (the event stream) is not read: only its status matters here.
    let streaming = resp.content_type() == "application/x-ndjson";
    let body = if streaming {
        Value::Null
    } else {
        serde_json::from_str(&resp.into_string().unwrap()).unwrap_or(Value::Null)
    };
    Answer {
        status,
        body,
        www_authenticate,
    }
}

#[test]
fn every_route_but_the_probes_needs_the_token_and_a_loopback_host() {
    let dir = tempdir();
    let a = Agent::start_with(
        dir.path(),
        "a0",
        None,
        SECRET,
        &[
            "--table",
            "t",
            "--allow-fault-injection",
            "--handler",
            "jobs=cat",
        ],
    );
    a.wait_answers(Duration::from_secs(20));
    let h = a.http.as_str();
    let token = token();
    let routes: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/v1/members", None),
        ("GET", "/v1/self", None),
        ("GET", "/v1/events", None),
        ("GET", "/v1/monitor?level=debug", None),
        (
            "POST",
            "/v1/events",
            Some(json!({"name": "deploy", "payload": "v1"})),
        ),
        (
            "POST",
            "/v1/send",
            Some(json!({"node": "a0", "name": "jobs", "payload": "x"})),
        ),
        (
            "POST",
            "/v1/query",
            Some(json!({"name": "uptime", "timeout_ms": 100})),
        ),
        ("GET", "/v1/broadcast", None),
        ("GET", "/v1/broadcast/peers/a0", None),
        ("GET", "/v1/broadcast/peers/a0/a0", None),
        ("GET", "/v1/broadcast/tree/a0", None),
        ("GET", "/v1/partitions", None),
        ("POST", "/v1/partitions", Some(json!({"nodes": ["a9"]}))),
        ("DELETE", "/v1/partitions/1", None),
        ("GET", "/v1/discovery", None),
        ("POST", "/v1/discovery/get_nodes", Some(json!({}))),
        ("GET", "/v1/tables", None),
        ("GET", "/v1/tables/t", None),
        ("GET", "/v1/tables/t/records", None),
        ("PUT", "/v1/tables/t/records/k", Some(json!({"value": "v"}))),
        ("GET", "/v1/tables/t/records/k", None),
        ("DELETE", "/v1/tables/t/records/k", None),
        (
            "PUT",
            "/v1/tables/new/records/k",
            Some(json!({"value": "v"})),
        ),
        ("GET", "/v1/tracker", None),
        ("GET", "/v1/singletons", None),
        ("GET", "/v1/info", None),
        ("GET", "/v1/members?name=a.*", None),
        ("POST", "/v1/join", Some(json!({"addrs": ["127.0.0.1:1"]}))),
        ("POST", "/v1/members/a9/force-leave", Some(json!({}))),
        ("PUT", "/v1/tags", Some(json!({"tags": {"k": "v"}}))),
        ("DELETE", "/v1/tags", Some(json!({"keys": ["k"]}))),
        // Unknown paths and wrong methods too: nothing is told without the token.
        ("GET", "/v1/nope", None),
        ("POST", "/v1/health", Some(json!({}))),
    ];
    for (method, path, body) in &routes {
        for wrong in [None, Some("not-the-token-0123456789"), Some(&token[1..])] {
            let r = call(h, method, path, wrong, None, body.clone());
            assert_eq!(r.status, 401, "{method} {path} with {wrong:?}: {}", r.body);
            assert_eq!(r.body["code"], "unauthorized", "{method} {path}");
            assert!(
                r.body["error"].as_str().unwrap().contains("Bearer"),
                "{}",
                r.body
            );
            assert_eq!(r.www_authenticate, "Bearer");
        }
    }
    // Not in the list: with the token it would stop the agent.
    for wrong in [None, Some("not-the-token-0123456789")] {
        let r = call(h, "POST", "/v1/leave", wrong, None, Some(json!({})));
        assert_eq!((r.status, &r.body["code"]), (401, &json!("unauthorized")));
    }
    // With the token, the same routes answer as they always did.
    for (method, path, body) in &routes {
        let r = call(h, method, path, Some(&token), None, body.clone());
        assert_ne!(r.status, 401, "{method} {path}: {}", r.body);
    }
    let r = call(h, "GET", "/v1/tables/t/records/k", Some(&token), None, None);
    assert_eq!(r.status, 404, "deleted above: {}", r.body);
    // The probes need no token.
    for path in ["/v1/health", "/metrics"] {
        assert_eq!(call(h, "GET", path, None, None, None).status, 200, "{path}");
    }
    assert_ne!(call(h, "GET", "/v1/ready", None, None, None).status, 401);

    // A web page that rebinds its own name to 127.0.0.1 sends its own Host: refused, token or
    // not, probes included.
    let port = h.rsplit_once(':').unwrap().1;
    for host in ["evil.example", &format!("evil.example:{port}"), "10.1.2.3"] {
        for path in ["/v1/members", "/v1/health", "/metrics"] {
            let r = call(h, "GET", path, Some(&token), Some(host), None);
            assert_eq!(r.status, 403, "Host {host} {path}: {}", r.body);
            assert_eq!(r.body["code"], "bad_host");
        }
        let body = json!({"name": "deploy", "payload": "rebound"});
        let r = call(
            h,
            "POST",
            "/v1/events",
            Some(&token),
            Some(host),
            Some(body),
        );
        assert_eq!(r.status, 403);
    }
    for host in [
        format!("localhost:{port}"),
        "localhost".to_string(),
        h.to_string(),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let r = call(h, "GET", "/v1/members", Some(&token), Some(&host), None);
        assert_eq!(r.status, 200, "Host {host}: {}", r.body);
    }
}

#[test]
fn the_commands_find_the_token_by_flag_environment_or_file() {
    let dir = tempdir();
    let file = dir.path().join("token");
    std::fs::write(&file, "a-token-of-its-own-0123456789\n").unwrap();
    let file = file.to_str().unwrap();
    let a = Agent::start_with(dir.path(), "a0", None, SECRET, &["--http-token-file", file]);
    wait_for(Duration::from_secs(20), "the agent answers", || {
        call(
            &a.http,
            "GET",
            "/v1/self",
            Some("a-token-of-its-own-0123456789"),
            None,
            None,
        )
        .status
            == 200
    });
    let h = a.http.as_str();
    // The per-user file holds another token: refused, and the message says what to do.
    fails_saying(
        &["members", "--http", h],
        &["missing or wrong token", "Authorization: Bearer"],
    );
    let ok = |c: &mut std::process::Command| {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let flag = ok(cli().args(["members", "--http", h, "--http-token-file", file]));
    assert!(flag.contains("a0"), "{flag}");
    let env = ok(cli()
        .args(["tracker", "--http", h])
        .env("ENSEMBLE_HTTP_TOKEN", "a-token-of-its-own-0123456789"));
    assert!(env.contains("a0"), "{env}");
    // No token anywhere (a home without the file): the command says where to find one.
    let empty = dir.path().join("empty-home");
    let out = cli()
        .args(["members", "--http", h])
        .env("ENSEMBLE_HOME", &empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no HTTP token found"), "{err}");
    assert!(!empty.exists(), "a client never creates the token file");
}

#[test]
fn no_handler_singleton_or_event_command_sees_the_secret_or_the_token() {
    let dir = tempdir();
    let d = dir.path().display().to_string();
    let token = "the-http-token-no-child-may-see-0123";
    let event = format!("env > {d}/event.env");
    let handler = format!("jobs=env > {d}/handler.env");
    let singleton = format!("cron=env > {d}/singleton.env; exec sleep 60");
    let mut a = Agent::prepare(
        dir.path(),
        "a0",
        &[
            "--event-handler",
            &event,
            "--handler",
            &handler,
            "--singleton",
            &singleton,
        ],
    );
    a.env.push(("ENSEMBLE_HTTP_TOKEN".into(), token.into()));
    a.spawn(None, SECRET);
    let h = a.http.clone();
    wait_for(Duration::from_secs(20), "the agent answers", || {
        call(&h, "GET", "/v1/self", Some(token), None, None).status == 200
    });
    let body = json!({"name": "deploy", "payload": "v1"});
    assert_eq!(
        call(&h, "POST", "/v1/events", Some(token), None, Some(body)).status,
        200
    );
    let body = json!({"node": "a0", "name": "jobs", "payload": "x"});
    assert_eq!(
        call(&h, "POST", "/v1/send", Some(token), None, Some(body)).status,
        200
    );
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    // Each file is the whole environment of one command (the marker proves it ran).
    for (f, marker) in [
        ("event.env", "ENSEMBLE_EVENT=user"),
        ("handler.env", "ENSEMBLE_FROM=a0"),
        ("singleton.env", "ENSEMBLE_EPOCH="),
    ] {
        wait_for(Duration::from_secs(30), &format!("{f} is written"), || {
            read(f).contains(marker) && read(f).ends_with('\n')
        });
        let env = read(f);
        assert!(
            env.contains("PATH="),
            "{f}: the rest of the environment is kept"
        );
        for secret in [SECRET, token, "ENSEMBLE_SECRET", "ENSEMBLE_HTTP_TOKEN"] {
            assert!(!env.contains(secret), "{f} holds {secret:?}:\n{env}");
        }
    }
}

#[test]
fn https_with_a_ca_file_and_the_probes_on_their_own_address() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempdir();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(path("key.pem"), leaf_key.serialize_pem()).unwrap();
    let probes = format!("127.0.0.1:{}", free_port());
    let (cert, key) = (path("cert.pem"), path("key.pem"));
    let a = Agent::start_with(
        dir.path(),
        "a0",
        None,
        SECRET,
        &[
            "--http-tls-cert",
            &cert,
            "--http-tls-key",
            &key,
            "--metrics-addr",
            &probes,
        ],
    );
    let https = format!("https://{}", a.http);
    let ca_file = path("ca.pem");
    let members = |extra: &[&str]| {
        cli()
            .args(["members", "--json", "--http", &https])
            .args(extra)
            .output()
            .unwrap()
    };
    wait_for(Duration::from_secs(20), "the agent answers HTTPS", || {
        members(&["--http-ca-file", &ca_file]).status.success()
    });
    let out = cli()
        .args(["members", "--http", &https])
        .env("ENSEMBLE_HTTP_CA", &ca_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the CA the certificate is not trusted; plain HTTP gets no answer.
    assert!(!members(&[]).status.success());
    assert!(!cli()
        .args(["members", "--http", &a.http])
        .output()
        .unwrap()
        .status
        .success());
    // The token is still needed over HTTPS.
    let out = cli()
        .args(["members", "--http", &https, "--http-ca-file", &ca_file])
        .env("ENSEMBLE_HTTP_TOKEN", "not-the-token-0123456789")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing or wrong token"));

    // The probes' own address: the probes without a token, nothing else.
    let r = call(&probes, "GET", "/metrics", None, None, None);
    assert_eq!(r.status, 200);
    assert_eq!(
        call(&probes, "GET", "/v1/health", None, None, None).status,
        200
    );
    let r = call(&probes, "GET", "/v1/members", Some(&token()), None, None);
    assert_eq!(r.status, 404, "{}", r.body);
}
