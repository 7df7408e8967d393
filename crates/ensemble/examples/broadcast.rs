//! Three nodes in one process broadcast to each other: Serf-style user events, and a custom
//! Plumtree handler that replicates a last-writer-wins map of feature flags.
//!
//! Run with `cargo run -p ensemble --example broadcast`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ensemble::{Config, Graft, Handler, Node, Secret};
use futures::StreamExt;

/// Feature flags: `name=version:on|off`; a higher version wins.
#[derive(Clone, Default)]
struct Flags(Arc<Mutex<BTreeMap<String, (u64, bool)>>>);

impl Flags {
    fn parse(payload: &[u8]) -> Option<(String, u64, bool)> {
        let text = std::str::from_utf8(payload).ok()?;
        let (name, rest) = text.split_once('=')?;
        let (version, state) = rest.split_once(':')?;
        Some((name.to_owned(), version.parse().ok()?, state == "on"))
    }
}

impl Handler for Flags {
    // The message is its own id: "name=version:state" is unique per change.
    fn broadcast_data(&mut self, msg: Bytes) -> (Bytes, Bytes) {
        (msg.clone(), msg)
    }
    // New if it is a newer version of the flag than the one held.
    fn merge(&mut self, _id: &Bytes, payload: &Bytes) -> bool {
        let Some((name, version, on)) = Self::parse(payload) else {
            return false;
        };
        let mut flags = self.0.lock().unwrap();
        if flags.get(&name).is_some_and(|(v, _)| *v >= version) {
            return false;
        }
        flags.insert(name, (version, on));
        true
    }
    fn is_stale(&self, id: &Bytes) -> bool {
        let Some((name, version, _)) = Self::parse(id) else {
            return true;
        };
        let flags = self.0.lock().unwrap();
        flags.get(&name).is_some_and(|(v, _)| *v >= version)
    }
    fn graft(&self, id: &Bytes) -> Graft {
        if self.is_stale(id) {
            Graft::Payload(id.clone())
        } else {
            Graft::Lost
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), ensemble::Error> {
    let secret = Secret::new("example-cluster-secret-0123456789")?;
    let mut nodes: Vec<Node> = Vec::new();
    let mut flags = Vec::new();
    for name in ["a", "b", "c"] {
        let mut config = Config::new(name, "127.0.0.1:0".parse().unwrap(), secret.clone());
        if let Some(first) = nodes.first() {
            config.seeds.push(first.addr());
        }
        let node = Node::start(config).await?;
        // Every node registers the same handlers under the same names.
        let f = Flags::default();
        node.register_handler("flags", f.clone()).await?;
        flags.push(f);
        nodes.push(node);
    }
    while nodes.iter().any(|n| n.members().len() < 3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // User events: delivered once on every node, in order per sender.
    let mut events = nodes[2].user_events();
    nodes[0].send_event("deploy", "v1.4.2").await?;
    nodes[1].send_event("deploy", "v1.4.3").await?;
    for _ in 0..2 {
        if let Some(e) = events.next().await {
            let payload = String::from_utf8_lossy(&e.payload);
            println!("c got user event {} from {}: {payload}", e.name, e.origin);
        }
    }

    // A custom handler: the newest version of each flag wins everywhere.
    nodes[1].broadcast("flags", "dark-mode=1:on").await?;
    nodes[2].broadcast("flags", "dark-mode=2:off").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (node, f) in nodes.iter().zip(&flags) {
        println!("{} has flags {:?}", node.name(), f.0.lock().unwrap());
    }

    // Too large: refused at once with the limit, nothing sent.
    let err = nodes[0]
        .broadcast("flags", vec![b'x'; 1 << 20])
        .await
        .unwrap_err();
    println!("refused: {err}");

    let status = nodes[0].broadcast_status(None).await?;
    println!(
        "a pushes its own broadcasts to {:?}, announces to {:?}",
        status.eager, status.lazy
    );
    for n in &nodes {
        n.leave().await;
    }
    Ok(())
}
