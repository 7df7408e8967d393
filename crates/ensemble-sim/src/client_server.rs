//! A client-server cluster and client-to-client messages: the engine of
//! `ensemble sim client-server`.
//!
//! Servers join first (each through a random earlier server), then all clients join at once,
//! most through a random server and one in ten through an earlier client (which refers it to
//! servers). Once every node sees every node up, each client sends acknowledged messages to
//! random other clients; servers relay them. The report says whether the cluster converged,
//! whether clients only ever connected to servers, and whether every message arrived once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ensemble_proto::messaging::{Input, Output};
use ensemble_proto::topology::{Role, Topology};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::network::{NodeId, Sim, SimConfig};

/// Settings of a client-server run.
#[derive(Debug, Clone)]
pub struct ClientServerConfig {
    /// Servers.
    pub servers: usize,
    /// Clients.
    pub clients: usize,
    /// Acknowledged messages each client sends to random other clients.
    pub messages_per_client: usize,
    /// Network model and membership settings (the topology is set per node).
    pub sim: SimConfig,
}

/// What a client-server run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClientServerReport {
    /// Servers.
    pub servers: usize,
    /// Clients.
    pub clients: usize,
    /// RNG seed: the same seed gives the same report.
    pub seed: u64,
    /// Virtual time until every node saw every node up (None: not within 120 s).
    pub convergence_ms: Option<u64>,
    /// Connections between two clients seen at any check (must be 0).
    pub client_to_client_connections: usize,
    /// Most connections one client held once the overlay settled.
    pub max_client_connections: usize,
    /// Mean connections per server once the overlay settled.
    pub server_connections_mean: f64,
    /// Client-to-client messages sent.
    pub messages: usize,
    /// Messages handed to the receiver's handler (each counted once).
    pub delivered: usize,
    /// Messages delivered more than once.
    pub duplicates: usize,
    /// Messages whose acknowledgement reached the sender.
    pub acked: usize,
    /// Messages that failed (timeout or unknown name).
    pub failed: usize,
    /// Median time from send to ack, in virtual milliseconds.
    pub ack_p50_ms: Option<u64>,
    /// Slowest ack.
    pub ack_max_ms: Option<u64>,
    /// Hand-overs by relays: one per server a message or an ack passed through.
    pub relayed: u64,
    /// Messages relays dropped for lack of a route.
    pub relay_dropped: u64,
    /// Virtual time simulated.
    pub simulated_ms: u64,
    /// Wall-clock time the run took.
    pub wall_ms: u64,
}

/// Runs the scenario.
pub fn run(cfg: &ClientServerConfig) -> ClientServerReport {
    let wall = Instant::now();
    let (ns, nc) = (cfg.servers.max(1), cfg.clients.max(2));
    let mut sim = Sim::new(cfg.sim.clone());
    sim.record_up_events = false;
    let mut rng = SmallRng::seed_from_u64(cfg.sim.seed ^ 0xc5);
    let server = Topology::ClientServer(Role::Server);
    let client = Topology::ClientServer(Role::Client);
    let mut servers = vec![sim.add_node_as("s0", &[], server)];
    for i in 1..ns {
        let seed = servers[rng.gen_range(0..i)];
        servers.push(sim.add_node_as(&format!("s{i}"), &[seed], server));
    }
    let mut clients: Vec<NodeId> = Vec::new();
    for i in 0..nc {
        let seed = if i > 0 && rng.gen_bool(0.1) {
            clients[rng.gen_range(0..i)]
        } else {
            servers[rng.gen_range(0..ns)]
        };
        clients.push(sim.add_node_as(&format!("c{i}"), &[seed], client));
    }
    let n = ns + nc;
    let mut client_links = 0;
    let mut check = |sim: &Sim| {
        let is_client = |name: &str| name.starts_with('c');
        let links: usize = clients
            .iter()
            .map(|c| {
                sim.peers_of(*c)
                    .into_iter()
                    .filter(|p| is_client(p))
                    .count()
            })
            .sum();
        client_links = client_links.max(links);
    };
    let mut convergence = None;
    let started = sim.elapsed();
    while sim.elapsed() - started < Duration::from_secs(120) {
        sim.run_for(Duration::from_millis(100));
        check(&sim);
        if sim.all_count_up(n) {
            convergence = Some(sim.elapsed() - started);
            break;
        }
    }
    // Joiners' first connections (to their seed) are pruned after `prune_grace`.
    sim.run_for(cfg.sim.membership.prune_grace * 2);
    check(&sim);
    let max_client_connections = clients
        .iter()
        .map(|c| sim.peers_of(*c).len())
        .max()
        .unwrap_or(0);
    let server_connections_mean = servers
        .iter()
        .map(|s| sim.peers_of(*s).len())
        .sum::<usize>() as f64
        / ns as f64;

    for &c in &clients {
        sim.messaging(c, Input::Register("inbox".into()));
    }
    sim.message_outputs.clear();
    let deadline = Duration::from_secs(10);
    let mut sent: BTreeMap<u64, Duration> = BTreeMap::new();
    let mut token = 0;
    for (i, &c) in clients.iter().enumerate() {
        for _ in 0..cfg.messages_per_client {
            let mut j = rng.gen_range(0..nc - 1);
            if j >= i {
                j += 1;
            }
            token += 1;
            sent.insert(token, sim.elapsed());
            let at = sim.now() + deadline;
            sim.messaging(
                c,
                Input::Send {
                    to: format!("c{j}"),
                    name: "inbox".into(),
                    payload: Bytes::from(token.to_string()),
                    ack: Some((token, at)),
                    channel: None,
                },
            );
        }
    }
    sim.run_for(deadline + Duration::from_secs(1));
    let mut seen = BTreeSet::new();
    let (mut delivered, mut duplicates, mut failed) = (0, 0, 0);
    let mut acks = Vec::new();
    for (at, _node, o) in std::mem::take(&mut sim.message_outputs) {
        match o {
            Output::Deliver { payload, .. } => {
                if seen.insert(payload) {
                    delivered += 1;
                } else {
                    duplicates += 1;
                }
            }
            Output::Acked(t) => acks.push(at - sent[&t]),
            Output::Failed(..) => failed += 1,
            _ => {}
        }
    }
    acks.sort();
    let (relayed, relay_dropped) = sim.relay_counts();
    ClientServerReport {
        servers: ns,
        clients: nc,
        seed: cfg.sim.seed,
        convergence_ms: convergence.map(|d| d.as_millis() as u64),
        client_to_client_connections: client_links,
        max_client_connections,
        server_connections_mean,
        messages: sent.len(),
        delivered,
        duplicates,
        acked: acks.len(),
        failed,
        ack_p50_ms: acks.get(acks.len() / 2).map(|d| d.as_millis() as u64),
        ack_max_ms: acks.last().map(|d| d.as_millis() as u64),
        relayed,
        relay_dropped,
        simulated_ms: sim.elapsed().as_millis() as u64,
        wall_ms: wall.elapsed().as_millis() as u64,
    }
}
