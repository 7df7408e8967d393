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
