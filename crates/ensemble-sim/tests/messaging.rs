//! Named messaging across a restart, in the simulator.

use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::messaging::{Input, Output};
use ensemble_proto::Status;
use ensemble_sim::{NodeId, Sim, SimConfig};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Sends `payload` from `from` to `to`'s `inbox`, acknowledged, with token `token`.
fn send(sim: &mut Sim, from: NodeId, to: &str, payload: &'static str, token: u64) {
    let deadline = sim.now() + secs(5);
    let input = Input::Send {
        to: to.into(),
        name: "inbox".into(),
        payload: Bytes::from_static(payload.as_bytes()),
        ack: Some((token, deadline)),
        channel: None,
    };
    sim.messaging(from, input);
}

fn delivered(sim: &Sim) -> Vec<Bytes> {
    sim.message_outputs
        .iter()
        .filter_map(|(_, _, o)| match o {
            Output::Deliver { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restarted_senders_acknowledged_messages_are_delivered_not_taken_for_its_old_ones() {
    // The receiver delivers each (sender, id) once. A sender restarted under the same name
    // must not number its messages as its previous run did, or the receiver acks its new
    // messages as copies of old ones and never delivers them.
    let mut sim = Sim::new(SimConfig::default());
    let a = sim.add_node("a", &[]);
    let b = sim.add_node("b", &[a]);
    sim.run_until(secs(10), |s| s.all_see(&[a, b], Status::Alive))
        .expect("a and b see each other");
    sim.messaging(a, Input::Register("inbox".into()));
    send(&mut sim, b, "a", "first run", 1);
    sim.run_for(secs(2));
    assert_eq!(delivered(&sim), vec![Bytes::from_static(b"first run")]);

    sim.crash(b);
    sim.run_for(secs(1));
    sim.restart(b);
    sim.run_until(secs(20), |s| s.all_see(&[a, b], Status::Alive))
        .expect("b is back");
    send(&mut sim, b, "a", "second run", 2);
    sim.run_for(secs(2));
    let acked = sim
        .message_outputs
        .iter()
        .any(|(_, n, o)| *n == b && matches!(o, Output::Acked(2)));
    assert!(acked, "the second run's message was acknowledged");
    assert_eq!(
        delivered(&sim),
        vec![
            Bytes::from_static(b"first run"),
            Bytes::from_static(b"second run")
        ],
        "and delivered"
    );
}
