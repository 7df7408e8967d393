//! Helpers shared by the in-process cluster tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ensemble::{Config, Node, Secret, Status};

pub const SECRET: &str = "test-secret-0123456789abcdef";

pub fn config(name: &str, port: u16) -> Config {
    let secret = Secret::new(SECRET).unwrap();
    Config::new(name, SocketAddr::from(([127, 0, 0, 1], port)), secret)
}

pub async fn start(name: &str, seeds: &[SocketAddr]) -> Node {
    let mut c = config(name, 0);
    c.seeds = seeds.to_vec();
    Node::start(c).await.expect("node starts")
}

/// Starts `n` nodes that join through the first one.
pub async fn cluster(n: usize) -> Vec<Node> {
    let first = start("n0", &[]).await;
    let seed = first.addr();
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(start(&format!("n{i}"), &[seed]).await);
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name().to_owned()).collect();
    wait_for(Duration::from_secs(20), "cluster converges", || {
        all_see(&nodes, &names, Status::Alive)
    })
    .await;
    nodes
}

pub fn status(observer: &Node, name: &str) -> Option<Status> {
    observer
        .members()
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.status)
}

pub fn all_see(observers: &[Node], names: &[String], s: Status) -> bool {
    observers.iter().all(|o| {
        names
            .iter()
            .filter(|n| *n != o.name())
            .all(|n| status(o, n) == Some(s))
    })
}

pub async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

pub fn names(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.name().to_owned()).collect()
}
