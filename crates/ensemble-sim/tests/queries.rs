//! Queries in the simulator: fan-out to every selected member, responses back to the origin,
//! relayed through servers in a client-server topology.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::query::{Input, Output, QueryEvent, QueryFilter, Reply};
use ensemble_proto::topology::{Role, Topology};
use ensemble_proto::Status;
use ensemble_sim::{NodeId, Sim, SimConfig};

/// Starts a query (5 s timeout) on `origin` and runs the simulation past its timeout, every member's
/// handler answering with its own name. Returns the events of the query.
fn run_query(sim: &mut Sim, origin: NodeId, filter: QueryFilter) -> Vec<QueryEvent> {
    sim.query_outputs.clear();
    let input = Input::Query {
        token: 42,
        name: "whoami".into(),
        payload: Bytes::from_static(b"?"),
        filter,
        timeout: Some(Duration::from_secs(5)),
        want_ack: true,
    };
    sim.query(origin, input);
    let mut id = None;
    let mut events = Vec::new();
    let names: BTreeMap<String, NodeId> = sim
        .live()
        .into_iter()
        .map(|n| (sim.name(n).to_owned(), n))
        .collect();
    for _ in 0..120 {
        sim.run_for(Duration::from_millis(50));
        for (_, node, out) in std::mem::take(&mut sim.query_outputs) {
            match out {
                Output::Done {
                    token: 42,
                    result: Ok(Reply::Started(i)),
                } => id = Some(i),
                Output::Request(r) => {
                    let name = sim.name(node).to_owned();
                    assert!(names.contains_key(&name));
                    let respond = Input::Respond {
                        token: 1,
                        query: r.query,
                        payload: Bytes::from(name),
                    };
                    sim.query(node, respond);
                }
                Output::Event { query, event } => {
                    assert_eq!(node, origin);
                    assert_eq!(Some(query), id);
                    events.push(event);
                }
                Output::Done { result, .. } => assert!(result.is_ok(), "{result:?}"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    events
}

fn answers(events: &[QueryEvent]) -> (Vec<String>, Vec<(String, String)>, Option<QueryEvent>) {
    let mut acks = Vec::new();
    let mut responses = Vec::new();
    let mut done = None;
    for e in events {
        match e {
            QueryEvent::Ack { from } => acks.push(from.clone()),
            QueryEvent::Response { from, payload } => {
                let p = String::from_utf8(payload.to_vec()).unwrap();
                responses.push((from.clone(), p));
            }
            d @ QueryEvent::Done { .. } => done = Some(d.clone()),
        }
    }
    acks.sort();
    responses.sort();
    (acks, responses, done)
}

#[test]
fn a_query_reaches_every_member_and_every_response_comes_back() {
    let (mut sim, ids) = common::cluster(6, 11);
    let events = run_query(&mut sim, ids[2], QueryFilter::default());
    let (acks, responses, _) = answers(&events);
    let all: Vec<String> = (0..6).map(|i| format!("n{i}")).collect();
    assert_eq!(acks, all);
    let expected: Vec<(String, String)> = all.iter().map(|n| (n.clone(), n.clone())).collect();
    assert_eq!(responses, expected);
    let done = QueryEvent::Done {
        acks: 6,
        responses: 6,
    };
    assert_eq!(events.last(), Some(&done), "Done comes last");
    assert_eq!(answers(&events).2, Some(done));
}

/// A query asked from a member that joined through the seed, as soon as every member sees
/// every other alive: the members that joined through the seed are not connected to each
/// other yet (a full mesh dials new members at the next tick), so the third member's ack and
/// response wait for that connection instead of being lost.
#[test]
fn answers_to_an_origin_not_connected_yet_arrive_once_connected() {
    for seed in 0..8 {
        let (mut sim, ids) = common::cluster(3, 100 + seed);
        let events = run_query(&mut sim, ids[1], QueryFilter::default());
        let (acks, responses, done) = answers(&events);
        assert_eq!(acks, ["n0", "n1", "n2"], "seed {seed}");
        assert_eq!(responses.len(), 3, "seed {seed}: {responses:?}");
        let done = done.expect("done");
        let all = QueryEvent::Done {
            acks: 3,
            responses: 3,
        };
        assert_eq!(done, all, "seed {seed}");
    }
}

#[test]
fn a_node_filter_selects_only_that_member() {
    let (mut sim, ids) = common::cluster(5, 12);
    let filter = QueryFilter {
        nodes: vec!["n3".into()],
        tags: vec![],
    };
    let events = run_query(&mut sim, ids[0], filter);
    let (acks, responses, done) = answers(&events);
    assert_eq!(acks, ["n3"]);
    assert_eq!(responses, [("n3".to_owned(), "n3".to_owned())]);
    assert_eq!(
        done,
        Some(QueryEvent::Done {
            acks: 1,
            responses: 1
        })
    );
}

/// `servers` servers and `clients` clients (each client attached to two of the servers, the
/// first through server `i % servers`), converged and settled.
fn client_server(seed: u64, servers: usize, clients: usize) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(SimConfig {
        seed,
        latency: Duration::from_millis(2),
        ..SimConfig::default()
    });
    let server = Topology::ClientServer(Role::Server);
    let client = Topology::ClientServer(Role::Client);
    let mut ids = vec![sim.add_node_as("s0", &[], server)];
    for i in 1..servers {
        ids.push(sim.add_node_as(&format!("s{i}"), &[ids[0]], server));
    }
    for i in 0..clients {
        ids.push(sim.add_node_as(&format!("c{i}"), &[ids[i % servers]], client));
    }
    let all = ids.clone();
    sim.run_until(Duration::from_secs(60), |s| s.all_see(&all, Status::Alive))
        .expect("converges");
    sim.run_for(Duration::from_secs(5));
    (sim, ids)
}

/// Three servers and six clients, asked from a client: every member answers, and the other
/// clients' answers pass a server.
#[test]
fn a_query_from_a_client_reaches_every_server_and_client_and_answers_are_relayed() {
    for seed in [5, 6, 7, 8] {
        let (mut sim, ids) = client_server(seed, 3, 6);
        let (relayed_before, _) = sim.relay_counts();
        let events = run_query(&mut sim, ids[3], QueryFilter::default());
        let (acks, responses, _) = answers(&events);
        let all = ["c0", "c1", "c2", "c3", "c4", "c5", "s0", "s1", "s2"];
        assert_eq!(acks, all, "seed {seed}");
        let responders: Vec<&String> = responses.iter().map(|(from, _)| from).collect();
        assert_eq!(responders, all, "seed {seed}");
        let (relayed, _) = sim.relay_counts();
        assert!(
            relayed - relayed_before >= 2 * 5,
            "seed {seed}: the other clients' acks and responses each pass a server: {}",
            relayed - relayed_before
        );
    }
}

#[test]
fn a_filter_selects_clients_asked_from_another_client() {
    let (mut sim, ids) = client_server(9, 3, 6);
    let filter = QueryFilter {
        nodes: vec!["c2".into(), "c5".into(), "s1".into()],
        tags: vec![],
    };
    let events = run_query(&mut sim, ids[3], filter);
    let (acks, responses, done) = answers(&events);
    assert_eq!(acks, ["c2", "c5", "s1"]);
    assert_eq!(responses.len(), 3, "{responses:?}");
    assert_eq!(
        done,
        Some(QueryEvent::Done {
            acks: 3,
            responses: 3
        })
    );
}

/// 20 servers and 200 clients: a query from a client reaches every member before its timeout
/// (without servers pushing to their clients, the ring layout reached 100 of the 220).
#[test]
fn a_query_from_a_client_reaches_all_of_220_members() {
    let (mut sim, ids) = client_server(3, 20, 200);
    let events = run_query(&mut sim, ids[25], QueryFilter::default());
    let (acks, responses, done) = answers(&events);
    assert_eq!(acks.len(), 220, "{acks:?}");
    assert_eq!(responses.len(), 220);
    let all = QueryEvent::Done {
        acks: 220,
        responses: 220,
    };
    assert_eq!(done, Some(all));
}
