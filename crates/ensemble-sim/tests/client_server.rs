//! Client-server clusters in the simulator: convergence, connections, relayed messages.

use ensemble_sim::client_server::{run, ClientServerConfig};
use ensemble_sim::SimConfig;

fn config(servers: usize, clients: usize, loss: f64, seed: u64) -> ClientServerConfig {
    ClientServerConfig {
        servers,
        clients,
        messages_per_client: 3,
        sim: SimConfig {
            loss,
            seed,
            ..SimConfig::default()
        },
    }
}

#[test]
fn a_client_server_cluster_converges_and_every_relayed_message_arrives_once() {
    let r = run(&config(5, 150, 0.0, 7));
    assert!(r.convergence_ms.is_some(), "{r:?}");
    assert_eq!(r.client_to_client_connections, 0, "{r:?}");
    assert!(r.max_client_connections <= 2, "{r:?}");
    // Every server holds the other servers and a share of the clients.
    assert!(
        r.server_connections_mean >= 4.0 + 150.0 * 2.0 / 5.0 * 0.9,
        "{r:?}"
    );
    assert_eq!(r.messages, 450);
    assert_eq!(
        (r.delivered, r.acked, r.failed, r.duplicates),
        (450, 450, 0, 0),
        "{r:?}"
    );
    assert!(
        r.relayed >= 450,
        "replies and messages go through servers: {r:?}"
    );
    // Deterministic: the same seed gives the same run.
    let again = run(&config(5, 150, 0.0, 7));
    assert_eq!(
        (again.convergence_ms, again.relayed, again.ack_p50_ms),
        (r.convergence_ms, r.relayed, r.ack_p50_ms)
    );
}

#[test]
fn acknowledged_messages_survive_message_loss_through_relays() {
    // 5% of all frames lost, membership's included: retransmission still gets every message
    // through exactly once.
    let r = run(&config(3, 60, 0.05, 3));
    assert!(r.convergence_ms.is_some(), "{r:?}");
    assert_eq!((r.delivered, r.acked, r.duplicates), (180, 180, 0), "{r:?}");
    assert_eq!(r.client_to_client_connections, 0, "{r:?}");
}

/// A crashed client is declared down: its servers, which never dial clients, suspect it when
/// its connection closes and the dial back fails, and the other servers confirm.
#[test]
fn a_crashed_client_is_declared_down() {
    use ensemble_proto::topology::{Role, Topology};
    use ensemble_proto::Status;
    use ensemble_sim::Sim;
    use std::time::Duration;
    let mut sim = Sim::new(SimConfig {
        seed: 11,
        ..SimConfig::default()
    });
    let server = Topology::ClientServer(Role::Server);
    let client = Topology::ClientServer(Role::Client);
    let s0 = sim.add_node_as("s0", &[], server);
    let s1 = sim.add_node_as("s1", &[s0], server);
    let s2 = sim.add_node_as("s2", &[s0], server);
    let c0 = sim.add_node_as("c0", &[s0], client);
    let c1 = sim.add_node_as("c1", &[s1], client);
    sim.run_for(Duration::from_secs(10));
    assert!(sim.all_count_up(5));
    sim.crash(c0);
    sim.run_for(Duration::from_secs(60));
    for observer in [s0, s1, s2, c1] {
        assert_eq!(
            sim.status(observer, c0),
            Some(Status::Down),
            "{}",
            sim.name(observer)
        );
    }
}

/// Partisan's `reserve(tag)`: a client that reserves a slot for a tag keeps a connection to
/// the nearest server carrying it, besides its own server, and neither side prunes it.
#[test]
fn a_reserved_slot_keeps_a_connection_to_the_tagged_server() {
    use ensemble_proto::member::Tags;
    use ensemble_proto::membership::Input;
    use ensemble_proto::topology::{Role, Topology, RESERVE_TAG};
    use ensemble_sim::Sim;
    use std::time::Duration;
    let mut cfg = SimConfig {
        seed: 5,
        ..SimConfig::default()
    };
    cfg.membership.servers_per_client = 1;
    let mut sim = Sim::new(cfg);
    let server = Topology::ClientServer(Role::Server);
    let s: Vec<_> = (0..4)
        .map(|i| {
            let seeds = if i == 0 { vec![] } else { vec![0] };
            sim.add_node_as(&format!("s{i}"), &seeds, server)
        })
        .collect();
    let c0 = sim.add_node_as("c0", &[s[0]], Topology::ClientServer(Role::Client));
    sim.run_for(Duration::from_secs(10));
    assert!(sim.all_count_up(5));
    let home = sim.peers_of(c0)[0].to_string();
    let tagged = *s.iter().find(|&&id| sim.name(id) != home).unwrap();
    let tag = |k: &str, v: &str| Tags::new([(k.to_string(), v.to_string())].into()).unwrap();
    sim.command(tagged, Input::SetTags(tag("gpu", "a100")));
    sim.run_for(Duration::from_secs(2));
    sim.command(c0, Input::SetTags(tag(RESERVE_TAG, "gpu")));
    sim.run_for(Duration::from_secs(30));
    let mut peers: Vec<&str> = sim.peers_of(c0);
    peers.sort();
    let mut want = vec![home.as_str(), sim.name(tagged)];
    want.sort();
    assert_eq!(peers, want);
}
