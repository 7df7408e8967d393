//! The agent's metrics checked against a real Prometheus (Debian's `prometheus` package, which
//! scripts/setup-prometheus installs): it scrapes three agents, and its own query API must see
//! every agent count three alive members, then two once one is killed, with the detection
//! histogram observed; `promtool check metrics` accepts every agent's output.
//! Without prometheus or promtool the test is skipped with its reason, except under CI
//! (`CI=true`), where it fails.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

/// A Prometheus server child, killed on drop (a failing assertion too).
struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second, its data in `dir`.
    fn start(dir: &Path, targets: &[String]) -> Prometheus {
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: ensemble\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus { child, addr }
    }

    /// The result vector of the instant query `q` (empty while Prometheus is not ready).
    fn query(&self, q: &str) -> Vec<Value> {
        let url = format!("http://{}/api/v1/query", self.addr);
        let Ok(resp) = ureq::get(&url).query("query", q).call() else {
            return Vec::new();
        };
        let body: Value = resp.into_json().unwrap_or_default();
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Each instance's value of `q`, by `instance` label.
    fn by_instance(&self, q: &str) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = (self.query(q).iter())
            .map(|r| {
                let instance = r["metric"]["instance"].as_str().unwrap_or("").to_owned();
                let value = r["value"][1].as_str().and_then(|s| s.parse().ok());
                (instance, value.unwrap_or(f64::NAN))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

fn scrape(addr: &str) -> String {
    ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

/// Runs `promtool check metrics` on `text`; panics with its complaints unless it exits 0.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_sees_three_agents_then_two_and_the_detection() {
    if !(have("prometheus", "scripts/setup-prometheus")
        && have("promtool", "scripts/setup-prometheus"))
    {
        return;
    }
    let dir = tempdir();
    let mut agents = Vec::new();
    let mut targets = Vec::new();
    for i in 0..3 {
        let metrics = format!("127.0.0.1:{}", free_port());
        let extra = ["--metrics-addr", metrics.as_str()];
        let name = format!("a{i}");
        let seed = agents.first().map(|a: &Agent| a.bind.clone());
        agents.push(Agent::start_with(
            dir.path(),
            &name,
            seed.as_deref(),
            SECRET,
            &extra,
        ));
        targets.push(metrics);
    }
    let prometheus = Prometheus::start(dir.path(), &targets);
    let alive = r#"ensemble_members{status="alive"}"#;
    wait_for(
        Duration::from_secs(60),
        "Prometheus sees 3 alive members on each agent",
        || {
            let v = prometheus.by_instance(alive);
            v.len() == 3 && v.iter().all(|(_, n)| *n == 3.0)
        },
    );
    for t in &targets {
        promtool_accepts(&scrape(t));
    }

    // One agent killed: the other two declare it down, and observe how long that took.
    agents[2].signal(nix::sys::signal::Signal::SIGKILL);
    wait_for(
        Duration::from_secs(60),
        "Prometheus sees 2 alive members on the survivors",
        || {
            let v = prometheus.by_instance(alive);
            let (a0, a1) = (&targets[0], &targets[1]);
            [a0, a1]
                .iter()
                .all(|t| v.iter().any(|(i, n)| i == *t && *n == 2.0))
        },
    );
    wait_for(
        Duration::from_secs(60),
        "the detection histogram is observed",
        || {
            let v = prometheus.by_instance("ensemble_detection_seconds_count");
            [&targets[0], &targets[1]]
                .iter()
                .all(|t| v.iter().any(|(i, n)| i == *t && *n > 0.0))
        },
    );
    let v = prometheus.by_instance("histogram_quantile(0.99, ensemble_detection_seconds_bucket)");
    eprintln!("detection p99 by survivor (bucket bound, seconds): {v:?}");
}
