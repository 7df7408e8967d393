//! How long a 5-node cluster takes from a cold start to `wait_for_ready` on every node, with
//! each backend and the default schedule. Prints the figures (quoted in docs/DISCOVERY.md):
//!
//! ```text
//! cargo test -p ensemble --test discovery_cold_start -- --nocapture --test-threads 1
//! ```
//!
//! Every node must be ready, and see every other alive, before the first `initial` retry
//! (5 s): the backends list every node at the first `get_nodes`, which runs at once, so a
//! cold start that needs a retry is a bug. That bound is about 50 times the figures measured
//! on a loaded 2-core machine, so load alone never reaches it.

mod common;
#[path = "support/dns.rs"]
mod dns;
#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble::discovery::{
    Backend, Discovery, DiscoveryOptions, DnsBackend, FileBackend, PostgresBackend,
    PostgresOptions, StaticBackend,
};
use ensemble::{Node, Status};

const NODES: usize = 5;
const RUNS: usize = 3;

/// The first `initial` retry: a cold start that reaches it needed a second `get_nodes`.
fn bound() -> Duration {
    ensemble::discovery::DiscoveryConfig::default().initial
}

/// Binds `NODES` nodes on fixed free ports (so lists can name them before they start).
fn ports() -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < NODES {
        let p = pg::free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// Starts every node and its discovery at once; returns (all ready, all see every member).
async fn cold_start(
    ports: &[u16],
    backend: impl Fn(&Node) -> Arc<dyn Backend>,
) -> (Duration, Duration) {
    let t0 = Instant::now();
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let c = common::config(&format!("n{i}"), *port);
        nodes.push(Node::start(c).await.expect("node starts"));
    }
    let discoveries: Vec<Discovery> = nodes
        .iter()
        .map(|n| Discovery::start_arc(n.clone(), backend(n), DiscoveryOptions::default()))
        .collect();
    let waits = discoveries
        .iter()
        .map(|d| d.wait_for_ready(Duration::from_secs(20)));
    let ready = futures::future::join_all(waits).await;
    assert!(ready.iter().all(|r| *r), "not every node became ready");
    let all_ready = t0.elapsed();
    // Why nodes were unavailable when ready held (a failed probe, a node down).
    let unavailable_at_ready: Vec<_> = discoveries
        .iter()
        .map(|d| d.system_info().unavailable_nodes)
        .collect();
    let names = common::names(&nodes);
    common::wait_for(Duration::from_secs(20), "full membership", || {
        common::all_see(&nodes, &names, Status::Alive)
    })
    .await;
    let mesh = t0.elapsed();
    let calls: Vec<u64> = discoveries
        .iter()
        .map(|d| d.system_info().get_nodes_count)
        .collect();
    for n in &nodes {
        n.shutdown().await;
    }
    assert!(
        all_ready < bound() && mesh < bound(),
        "a cold start took a retry: every node ready in {all_ready:?}, full membership in \
         {mesh:?} (bound {:?}); get_nodes calls per node {calls:?}; unavailable nodes when ready held \
         {unavailable_at_ready:?}",
        bound()
    );
    (all_ready, mesh)
}

fn report(backend: &str, runs: &[(Duration, Duration)]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ready: Vec<String> = runs.iter().map(|r| format!("{:.0}", ms(r.0))).collect();
    let mesh: Vec<String> = runs.iter().map(|r| format!("{:.0}", ms(r.1))).collect();
    println!(
        "cold start, {NODES} nodes, {backend:<8}: every node ready in [{}] ms, \
         every node sees every other alive in [{}] ms",
        ready.join(", "),
        mesh.join(", ")
    );
}

fn addrs(ports: &[u16]) -> Vec<String> {
    ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_backend() {
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let ports = ports();
        let list = addrs(&ports);
        runs.push(cold_start(&ports, |_| Arc::new(StaticBackend::new(list.clone()))).await);
    }
    report("static", &runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend() {
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let ports = ports();
        let path = std::env::temp_dir().join(format!("ensemble-cold-{}", ports[0]));
        std::fs::write(&path, addrs(&ports).join("\n")).unwrap();
        runs.push(cold_start(&ports, |_| Arc::new(FileBackend::new(&path))).await);
        let _ = std::fs::remove_file(&path);
    }
    report("file", &runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_backend() {
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let server = dns::DnsServer::start().await;
        let ports = ports();
        server
            .add_ip("host.cluster.test.", "127.0.0.1".parse().unwrap())
            .await;
        for p in &ports {
            server
                .add_srv("_ensemble._tcp.cluster.test.", "host.cluster.test.", *p)
                .await;
        }
        let addr = server.addr;
        runs.push(
            cold_start(&ports, |_| {
                Arc::new(DnsBackend::new("_ensemble._tcp.cluster.test.", 0, Some(addr)).unwrap())
            })
            .await,
        );
    }
    report("dns", &runs);
}

#[test]
fn postgres_backend() {
    let Some(pg) = pg::Pg::start() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let ports = ports();
        let url = pg.url();
        let cluster = format!("cold{run}");
        runs.push(rt.block_on(cold_start(&ports, |n| {
            let o = PostgresOptions::new(url.clone(), &cluster, n.name(), n.addr());
            Arc::new(PostgresBackend::new(o).unwrap())
        })));
    }
    report("postgres", &runs);
}
