//! The deployment files under deploy/: the container image, the Kubernetes manifests and the
//! systemd unit give the agent settings it really reads, and pass their tools' checks
//! (kubernetes-validate, systemd-analyze verify; scripts/setup-deploy-tools installs both).
//! Without a tool a test is skipped with its reason, except under CI (`CI=true`), where it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every environment variable the agent reads: those `ensemble agent --help` names (`[env:
/// NAME=]` and its prose: ENSEMBLE_SECRET, ENSEMBLE_HTTP_TOKEN...), and those the sources read
/// with `var("NAME")` / `var_os("NAME")` (ENSEMBLE_HOME).
fn agent_env() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["agent", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut text = String::from_utf8(out.stdout).unwrap();
    for dir in ["crates/ensemble/src", "crates/ensemble-cli/src"] {
        rust_sources(&repo().join(dir), &mut |source| {
            for call in ["var(\"", "var_os(\""] {
                for (i, _) in source.match_indices(call) {
                    text.push(' ');
                    text.extend(source[i + call.len()..].chars().take(40));
                }
            }
        });
    }
    let names: BTreeSet<String> = text
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.starts_with("ENSEMBLE_") && w.len() > "ENSEMBLE_".len())
        .map(str::to_owned)
        .collect();
    for must in [
        "ENSEMBLE_BIND",
        "ENSEMBLE_DNS_NAME",
        "ENSEMBLE_METRICS_ADDR",
        "ENSEMBLE_HOME",
    ] {
        assert!(names.contains(must), "the agent no longer reads {must}");
    }
    names
}

fn rust_sources(dir: &Path, each: &mut dyn FnMut(&str)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, each);
        } else if path.extension().is_some_and(|e| e == "rs") {
            each(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Fails under CI, else says why the test does nothing.
fn missing_tool(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is missing under CI: scripts/setup-deploy-tools installs it");
    }
    eprintln!("skipped: {what} is missing (scripts/setup-deploy-tools installs it)");
}

/// The port of a `HOST:PORT` setting.
fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------- Docker

#[test]
fn the_image_is_multi_stage_non_root_and_checks_health_on_the_probe_port() {
    let text = read("deploy/Dockerfile");
    let lines: Vec<String> = text
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let with = |word: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(word).map(str::trim))
            .collect()
    };
    assert!(with("FROM ").len() >= 2, "a multi-stage build");
    let user = with("USER ");
    assert_eq!(user.len(), 1, "one USER line");
    let uid = user[0].split(':').next().unwrap();
    assert!(
        uid != "root" && uid != "0",
        "the runtime user is not root: {uid}"
    );
    assert_eq!(with("ENTRYPOINT "), vec![r#"["ensemble", "agent"]"#]);

    // Every ENV it sets is one the agent reads.
    let known = agent_env();
    let mut env = std::collections::BTreeMap::new();
    for e in with("ENV ") {
        for pair in e.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV NAME=value");
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    for name in env.keys() {
        assert!(
            known.contains(name) || name == "RUST_LOG",
            "the Dockerfile sets {name}, which `ensemble agent` does not read"
        );
    }
    // The health check asks /v1/health on the port that serves the probes without a token.
    let metrics = port_of(&env["ENSEMBLE_METRICS_ADDR"]);
    let health = with("HEALTHCHECK ");
    assert_eq!(health.len(), 1);
    assert!(
        health[0].contains(&format!(":{metrics}/v1/health\"")),
        "{}",
        health[0]
    );
    assert!(with("EXPOSE ")[0].contains(&format!("{metrics}/tcp")));
    assert!(with("EXPOSE ")[0].contains(&format!("{}/tcp", port_of(&env["ENSEMBLE_BIND"]))));
}

// ---------------------------------------------------------------- Kubernetes

const MANIFESTS: [&str; 3] = [
    "deploy/kubernetes/service.yaml",
    "deploy/kubernetes/statefulset.yaml",
    "deploy/kubernetes/poddisruptionbudget.yaml",
];

fn manifest(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `kubernetes-validate`: from $ENSEMBLE_DEPLOY_TOOLS (where scripts/setup-deploy-tools puts
/// it), else ~/.cache/ensemble/deploy-tools, else the PATH.
fn kubernetes_validate() -> Option<PathBuf> {
    let venv = std::env::var_os("ENSEMBLE_DEPLOY_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
            Some(cache.join("ensemble/deploy-tools"))
        });
    let candidates = venv
        .map(|v| v.join("bin/kubernetes-validate"))
        .into_iter()
        .chain(Some(PathBuf::from("kubernetes-validate")));
    candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_kubernetes_manifests_pass_schema_validation() {
    let Some(tool) = kubernetes_validate() else {
        return missing_tool("kubernetes-validate");
    };
    // --strict refuses fields the schema does not know (a misspelt probe would pass otherwise).
    let out = Command::new(&tool)
        .args(["--strict", "--quiet"])
        .args(MANIFESTS.iter().map(|m| repo().join(m)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubernetes-validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The container's env as name -> the entry.
fn env_of(container: &Value) -> std::collections::BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

#[test]
fn the_statefulset_gives_the_agent_what_it_needs() {
    let service = manifest(MANIFESTS[0]);
    let set = manifest(MANIFESTS[1]);
    let pdb = manifest(MANIFESTS[2]);
    assert_eq!(service["spec"]["clusterIP"], "None", "a headless service");
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
    let service_name = service["metadata"]["name"].as_str().unwrap();
    assert_eq!(set["spec"]["serviceName"], service_name);

    let pod = &set["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    for selector in [
        &service["spec"]["selector"],
        &set["spec"]["selector"]["matchLabels"],
    ] {
        for (k, v) in selector.as_object().unwrap() {
            assert_eq!(&labels[k], v, "a selector matches the pods' labels");
        }
    }
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the disruption budget covers the pods");
    }

    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let env = env_of(c);
    let value = |name: &str| -> &str {
        env.get(name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("{name} has no value"))
    };

    // Every ENSEMBLE_* is read by the agent; any other variable exists to be referenced.
    let known = agent_env();
    for name in env.keys() {
        if name.starts_with("ENSEMBLE_") {
            assert!(
                known.contains(name),
                "{name} is not read by `ensemble agent`"
            );
        } else {
            let used = env.values().any(|e| {
                e["value"]
                    .as_str()
                    .is_some_and(|v| v.contains(&format!("$({name})")))
            });
            assert!(used, "{name} is set but no ENSEMBLE_* variable uses it");
        }
    }
    let field = |name: &str| env[name]["valueFrom"]["fieldRef"]["fieldPath"].clone();
    // The pod's IP is what peers dial; its name is the member name.
    assert_eq!(field("POD_IP"), "status.podIP");
    assert_eq!(value("ENSEMBLE_ADVERTISE"), "$(POD_IP):7946");
    assert_eq!(field("ENSEMBLE_NAME"), "metadata.name");
    // DNS discovery of the headless service, on the cluster port.
    assert_eq!(value("ENSEMBLE_DISCOVERY"), "dns");
    assert_eq!(field("POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(
        value("ENSEMBLE_DNS_NAME"),
        format!("{service_name}.$(POD_NAMESPACE).svc.cluster.local")
    );
    let cluster_port = port_of(value("ENSEMBLE_BIND"));
    assert_eq!(port_of(value("ENSEMBLE_ADVERTISE")), cluster_port);
    assert_eq!(value("ENSEMBLE_DNS_PORT"), cluster_port.to_string());

    // Named container ports match the agent's listeners and the service.
    let ports: std::collections::BTreeMap<&str, u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports["cluster"], cluster_port);
    let metrics_port = port_of(value("ENSEMBLE_METRICS_ADDR"));
    assert!(value("ENSEMBLE_METRICS_ADDR").starts_with("0.0.0.0:"));
    assert_eq!(ports["metrics"], metrics_port);
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["port"], cluster_port);
    assert_eq!(service_port["targetPort"], "cluster");

    // The probes go to the listener that serves them without a token.
    for (probe, path) in [
        ("readinessProbe", "/v1/ready"),
        ("livenessProbe", "/v1/health"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], metrics_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    // The cluster key and the HTTP token come from the Secret.
    let secret = &env["ENSEMBLE_SECRET"]["valueFrom"]["secretKeyRef"];
    assert_eq!(secret["key"], "secret");
    let secret_name = secret["name"].as_str().unwrap();
    let token_file = Path::new(value("ENSEMBLE_HTTP_TOKEN_FILE"));
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| token_file.parent() == Some(Path::new(m["mountPath"].as_str().unwrap())))
        .expect("the token file's directory is mounted");
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], secret_name);
    let item = &volume["secret"]["items"][0];
    assert_eq!(item["key"], "http-token");
    assert_eq!(
        Path::new(item["path"].as_str().unwrap()),
        token_file.file_name().unwrap()
    );

    // A read-only root: whatever the agent writes goes under ENSEMBLE_HOME, a volume.
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let home = value("ENSEMBLE_HOME");
    assert!(c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mountPath"] == home));
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    let requests = &c["resources"]["requests"];
    assert!(requests["cpu"].is_string() && requests["memory"].is_string());
}

/// The pod's preStop hook, run as the kubelet runs it (the container's environment, nothing
/// else), makes a real agent leave gracefully and exit well within the grace period.
#[test]
fn the_prestop_hook_makes_the_pods_agent_leave_gracefully() {
    use common::*;
    let set = manifest(MANIFESTS[1]);
    let pod = &set["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    let hook: Vec<&str> = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .expect("a preStop exec hook")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(hook[..2], ["ensemble", "leave"], "{hook:?}");
    let wait: u64 = hook
        .iter()
        .position(|a| *a == "--wait")
        .map(|i| hook[i + 1].parse().unwrap())
        .expect("the hook bounds its wait");
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        wait < grace,
        "the hook's wait {wait} s fits in the grace period {grace} s"
    );
    let env = env_of(c);
    assert!(env.contains_key("ENSEMBLE_HTTP_ADDR") && env.contains_key("ENSEMBLE_HTTP_TOKEN_FILE"));

    // A peer, and the "pod": an agent whose token is only in its token file, as in the pod.
    let dir = tempdir();
    let peer = Agent::start(dir.path(), "peer", None, SECRET);
    peer.wait_answers(std::time::Duration::from_secs(30));
    let token_file = dir.path().join("http-token");
    std::fs::write(&token_file, "pod-token-0123456789abcdef0123456789").unwrap();
    let mut agent = Agent::prepare(dir.path(), "ensemble-0", &[]);
    agent.env.push((
        "ENSEMBLE_HTTP_TOKEN_FILE".into(),
        token_file.display().to_string(),
    ));
    agent.spawn(Some(&peer.bind), SECRET);
    let limit = std::time::Duration::from_secs(30);
    wait_for(limit, "the peer sees the pod alive", || {
        peer.status_of("ensemble-0")
            .is_some_and(|(s, _)| s == "alive")
    });

    // The hook, with the pod's environment only: no token in the environment or the home.
    let empty_home = dir.path().join("empty-home");
    let out = Command::new(exe())
        .args(&hook[1..])
        .env_clear()
        .env("ENSEMBLE_HTTP_ADDR", &agent.http)
        .env("ENSEMBLE_HTTP_TOKEN_FILE", &token_file)
        .env("ENSEMBLE_HOME", &empty_home)
        .output()
        .unwrap();
    assert_left_gracefully(&out);
    let exit = agent
        .wait_exit(limit)
        .expect("the agent exits after the hook");
    assert!(exit.success(), "{exit:?}");
    // Left, not down: its peer was told, it did not have to detect a failure.
    wait_for(limit, "the peer sees the pod left", || {
        peer.status_of("ensemble-0")
            .is_some_and(|(s, _)| s == "left")
    });
}

// ---------------------------------------------------------------- systemd

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = read("deploy/systemd/ensemble.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=ensemble",
        "ExecReload=/bin/kill -HUP $MAINPID",
        // Without a keyring file the agent has no SIGHUP handler and the reload would stop it.
        "Environment=ENSEMBLE_KEYRING_FILE=/var/lib/ensemble/keyring",
        "Environment=ENSEMBLE_HOME=/var/lib/ensemble",
    ] {
        assert!(has(line), "the unit has no `{line}`");
    }
    let known = agent_env();
    for l in unit.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let name = l.split('=').next().unwrap();
        assert!(
            known.contains(name),
            "{name} is not read by `ensemble agent`"
        );
    }

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return missing_tool("systemd-analyze");
    }
    // verify needs the ExecStart binary to exist: point it at the one just built.
    let dir = std::env::temp_dir().join(format!("ensemble-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ensemble.service");
    let exe = env!("CARGO_BIN_EXE_ensemble");
    assert!(unit.contains("ExecStart=/usr/local/bin/ensemble agent"));
    std::fs::write(&path, unit.replace("/usr/local/bin/ensemble", exe)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown keys and bad values are only warnings (exit 0): any line about the unit fails.
    assert!(
        out.status.success() && !said.contains("ensemble.service"),
        "systemd-analyze verify: {said}"
    );
}
