//! Client-server topology over real TCP on 127.0.0.1: servers in a full mesh, clients attached
//! to a few servers, referrals between clients, client-to-client messages relayed by servers.

use std::net::SocketAddr;
use std::time::Duration;

use ensemble::{Error, Node, Role, Status, Topology};

mod common;
use common::*;

async fn start_as(name: &str, role: Role, per_client: usize, seeds: &[SocketAddr]) -> Node {
    let mut c = config(name, 0);
    c.seeds = seeds.to_vec();
    c.membership.topology = Topology::ClientServer(role);
    c.membership.servers_per_client = per_client;
    // A client's first server (its seed) is dropped soon once it has its own.
    c.membership.prune_grace = Duration::from_millis(500);
    Node::start(c).await.expect("node starts")
}

/// Three servers, then four clients: the first through a server, the others through a client
/// (which refers them to servers).
async fn cluster_cs(per_client: usize) -> (Vec<Node>, Vec<Node>) {
    let s0 = start_as("s0", Role::Server, per_client, &[]).await;
    let seed = s0.addr();
    let mut servers = vec![s0];
    for i in 1..3 {
        servers.push(start_as(&format!("s{i}"), Role::Server, per_client, &[seed]).await);
    }
    let c0 = start_as("c0", Role::Client, per_client, &[seed]).await;
    let client_seed = c0.addr();
    let mut clients = vec![c0];
    for i in 1..4 {
        let c = start_as(&format!("c{i}"), Role::Client, per_client, &[client_seed]).await;
        clients.push(c);
    }
    let all: Vec<Node> = servers.iter().chain(&clients).cloned().collect();
    let names = names(&all);
    // Usually 2-3 s; a client whose first dials were referred elsewhere backs off (up to the
    // 10 s of `reconnect_max`, plus jitter) before it dials again.
    wait_for(Duration::from_secs(60), "the cluster converges", || {
        all_see(&all, &names, Status::Alive)
    })
    .await;
    (servers, clients)
}

async fn connections(n: &Node) -> Vec<String> {
    n.connections().await.unwrap()
}

/// Waits until every client holds exactly `per_client` connections, all to servers.
async fn clients_settle(clients: &[Node], per_client: usize) {
    for _ in 0..200 {
        let mut settled = true;
        for c in clients {
            let conns = connections(c).await;
            assert!(
                conns.iter().all(|p| p.starts_with('s')),
                "{} is connected to a client: {conns:?}",
                c.name()
            );
            settled &= conns.len() == per_client;
        }
        if settled {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clients did not settle on {per_client} servers each");
}

/// The one server of a client with `servers_per_client` 1, once the connection to its seed is
/// pruned: the same single connection for 1.5 s.
async fn home_server(c: &Node) -> String {
    clients_settle(std::slice::from_ref(c), 1).await;
    let mut home = connections(c).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = connections(c).await;
        if now == home && now.len() == 1 {
            return now[0].clone();
        }
        home = now;
    }
    panic!("{} does not settle on one server: {home:?}", c.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_attach_to_servers_follow_referrals_and_are_relayed() {
    let (servers, clients) = cluster_cs(2).await;
    clients_settle(&clients, 2).await;
    // Servers connect to every server.
    for s in &servers {
        let conns = connections(s).await;
        let mesh = conns.iter().filter(|p| p.starts_with('s')).count();
        assert_eq!(mesh, 2, "{}: {conns:?}", s.name());
    }
    // Roles are visible to everyone (members --json), in the reserved tag.
    let c3 = clients[0]
        .members()
        .into_iter()
        .find(|m| m.name == "c3")
        .unwrap();
    assert_eq!(
        c3.tags.get(ensemble::proto::topology::ROLE_TAG),
        Some("client")
    );

    // Client to client: relayed by a server, acknowledged end to end, both ways.
    let mut jobs = clients[3].register("jobs").await.unwrap();
    for (i, c) in clients[..3].iter().enumerate() {
        c.forward_message("c3", "jobs", format!("job {i}"), Duration::from_secs(5))
            .await
            .unwrap();
        let e = jobs.recv().await.unwrap();
        assert_eq!(
            (e.from.as_str(), &e.payload[..]),
            (c.name(), format!("job {i}").as_bytes())
        );
    }
    clients[0].cast_message("c3", "jobs", "cast").await.unwrap();
    assert_eq!(&jobs.recv().await.unwrap().payload[..], b"cast");
    let mut replies = clients[0].register("replies").await.unwrap();
    clients[3]
        .forward_message("c0", "replies", "done", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(&replies.recv().await.unwrap().payload[..], b"done");
    // An unknown name behind a relay is still a clear error to the sender.
    let err = clients[0]
        .forward_message("c3", "nobody", "x", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownName { node, .. } if node == "c3"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_two_servers_and_survive_a_server_crash() {
    // One server per client: clients on different servers need two relays.
    let (servers, clients) = cluster_cs(1).await;
    clients_settle(&clients, 1).await;
    let mut home = Vec::new();
    for c in &clients {
        home.push(connections(c).await[0].clone());
    }
    assert!(
        home.iter().any(|h| h != &home[0]),
        "the test needs clients on different servers: {home:?}"
    );
    let mut inboxes = Vec::new();
    for c in &clients {
        inboxes.push(c.register("inbox").await.unwrap());
    }
    for a in &clients {
        for (j, b) in clients.iter().enumerate() {
            if a.name() != b.name() {
                a.forward_message(
                    b.name(),
                    "inbox",
                    a.name().to_owned(),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
                assert_eq!(
                    &inboxes[j].recv().await.unwrap().payload[..],
                    a.name().as_bytes()
                );
            }
        }
    }

    // A server crashes: everyone sees it down, its clients move to another server, and
    // messages flow again.
    let victim = home[0].clone();
    let victim_node = servers.iter().find(|s| s.name() == victim).unwrap();
    victim_node.shutdown().await;
    let live: Vec<Node> = servers
        .iter()
        .chain(&clients)
        .filter(|n| n.name() != victim)
        .cloned()
        .collect();
    wait_for(
        Duration::from_secs(20),
        "everyone sees the server down",
        || {
            live.iter()
                .all(|n| status(n, &victim) == Some(Status::Down))
        },
    )
    .await;
    clients_settle(&clients, 1).await;
    for c in &clients {
        assert_ne!(connections(c).await[0], victim);
    }
    clients[1]
        .forward_message("c0", "inbox", "after", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(&inboxes[0].recv().await.unwrap().payload[..], b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_cuts_relayed_traffic_until_resolved() {
    let (_servers, clients) = cluster_cs(2).await;
    let mut jobs = clients[1].register("jobs").await.unwrap();
    let cut = clients[0]
        .inject_partition(["c1".to_string()])
        .await
        .unwrap();
    let err = clients[0]
        .forward_message("c1", "jobs", "x", Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::UnknownNode(n) if n == "c1"), "{err}");
    // Relayed messages from c1 are dropped at c0 too: c1's message times out.
    let _inbox = clients[0].register("jobs").await.unwrap();
    let err = clients[1]
        .forward_message("c0", "jobs", "y", Duration::from_millis(800))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    clients[0].resolve_partition(cut).await.unwrap();
    clients[0]
        .forward_message("c1", "jobs", "z", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(&jobs.recv().await.unwrap().payload[..], b"z");
}

/// The tracker's table lives on servers only (a table replicates between connected replicas,
/// and clients reach only their servers): clients read its rows through a server, and no
/// client hosts it, so no client retries a re-merge with servers it cannot reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_read_the_tracker_through_their_servers() {
    let (servers, clients) = cluster_cs(2).await;
    let all: Vec<Node> = servers.iter().chain(&clients).cloned().collect();
    let mut trackers = Vec::new();
    for n in &all {
        trackers.push(n.tracker().await.unwrap());
    }
    let names = names(&all);
    let online = |t: &ensemble::Tracker, name: &str, s: ensemble::NodeStatus| {
        t.fetch(name).unwrap().is_some_and(|r| r.status == s)
    };
    wait_for(
        Duration::from_secs(30),
        "every tracker shows every node online",
        || {
            trackers.iter().all(|t| {
                names
                    .iter()
                    .all(|n| online(t, n, ensemble::NodeStatus::Online))
            })
        },
    )
    .await;
    for c in &clients {
        let tables = c.tables().await.unwrap();
        assert!(
            !tables.iter().any(|t| t == ensemble::TRACKER_TABLE),
            "{} hosts the tracker's table: {tables:?}",
            c.name()
        );
    }
    let t = servers[0].tracker().await.unwrap();
    assert_eq!(t.fetch_all().unwrap().len(), all.len());

    // A client leaves: the other clients see it offline, through their servers.
    clients[3].leave().await;
    wait_for(
        Duration::from_secs(30),
        "the other clients' trackers show c3 offline",
        || {
            trackers[3..6]
                .iter()
                .all(|t| online(t, "c3", ensemble::NodeStatus::Offline))
        },
    )
    .await;
    // A client crashes: its servers, which never dial clients, suspect it when its
    // connections close, and everyone's tracker shows it offline.
    clients[2].shutdown().await;
    let took = wait_for(
        Duration::from_secs(60),
        "the other trackers show the crashed c2 offline",
        || {
            trackers[..5]
                .iter()
                .all(|t| online(t, "c2", ensemble::NodeStatus::Offline))
        },
    )
    .await;
    eprintln!("a crashed client was offline everywhere after {took:?}");
}

/// Connection callbacks (Partisan's `on_up`/`on_down`) fire as a node's own connections open
/// and close, which membership callbacks do not: a client moving to another server opens a
/// connection to a member that was up all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_callbacks_follow_connections_not_membership() {
    let s0 = start_as("s0", Role::Server, 1, &[]).await;
    let s1 = start_as("s1", Role::Server, 1, &[s0.addr()]).await;
    let c0 = start_as("c0", Role::Client, 1, &[s0.addr()]).await;
    let all = [s0.clone(), s1.clone(), c0.clone()];
    wait_for(Duration::from_secs(20), "the cluster converges", || {
        all_see(&all, &names(&all), Status::Alive)
    })
    .await;
    let home = home_server(&c0).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (what, up) in [("conn-up", true), ("conn-down", false)] {
        let tx = tx.clone();
        let f = move |n: String| {
            let _ = tx.send((what, n));
        };
        match up {
            true => c0.on_connection_up(ensemble::Watch::Any, f),
            false => c0.on_connection_down(ensemble::Watch::Any, f),
        }
    }
    let member_tx = tx.clone();
    c0.on_up(ensemble::Watch::Any, move |n| {
        let _ = member_tx.send(("member-up", n));
    });
    let (victim, other) = if home == "s0" {
        (&s0, "s1")
    } else {
        (&s1, "s0")
    };
    victim.shutdown().await;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(&("conn-up", other.to_string())) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => seen.push(e),
            _ => panic!("no connection to {other} reported: {seen:?}"),
        }
    }
    assert!(seen.contains(&("conn-down", home.clone())), "{seen:?}");
    assert!(
        !seen.iter().any(|(what, _)| *what == "member-up"),
        "{other} was up all along: {seen:?}"
    );
}

/// Partisan's `reserve(tag)`: a client keeps a connection to the nearest server carrying the
/// tag, besides its own servers, and neither side prunes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_slot_keeps_a_connection_to_a_tagged_server() {
    let s0 = start_as("s0", Role::Server, 1, &[]).await;
    let s1 = start_as("s1", Role::Server, 1, &[s0.addr()]).await;
    let s2 = start_as("s2", Role::Server, 1, &[s0.addr()]).await;
    let c0 = start_as("c0", Role::Client, 1, &[s0.addr()]).await;
    let all = [s0.clone(), s1.clone(), s2.clone(), c0.clone()];
    wait_for(Duration::from_secs(20), "the cluster converges", || {
        all_see(&all, &names(&all), Status::Alive)
    })
    .await;
    let home = home_server(&c0).await;
    let tagged = all[..3].iter().find(|s| s.name() != home).unwrap();
    tagged
        .set_tags([("gpu".to_string(), "a100".to_string())].into())
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), "c0 sees the tag", || {
        c0.members()
            .iter()
            .any(|m| m.name == tagged.name() && m.tags.get("gpu").is_some())
    })
    .await;
    c0.reserve("gpu").await.unwrap();
    c0.reserve("gpu").await.unwrap();
    let mut kept = 0;
    for _ in 0..400 {
        let conns = connections(&c0).await;
        if conns.contains(&home) && conns.iter().any(|c| c == tagged.name()) {
            kept += 1;
            // Past the prune grace (500 ms) several times over: nobody prunes it.
            if kept == 60 {
                break;
            }
        } else {
            kept = 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        kept,
        60,
        "c0 holds {:?}; c0 sees {:?}; {} sees c0 as {:?}",
        connections(&c0).await,
        c0.members()
            .iter()
            .map(|m| (m.name.clone(), m.tags.clone()))
            .collect::<Vec<_>>(),
        tagged.name(),
        tagged
            .members()
            .iter()
            .find(|m| m.name == "c0")
            .map(|m| m.tags.clone())
    );
    // A user cannot set the reservation tag, and set_tags keeps the reservation.
    let own = [("ensemble.reserve".to_string(), "x".to_string())].into();
    assert!(c0.set_tags(own).await.is_err());
    c0.set_tags([("zone".to_string(), "a".to_string())].into())
        .await
        .unwrap();
    assert_eq!(c0.local_member().tags.get("ensemble.reserve"), Some("gpu"));
    for t in ["b", "c", "d", "e", "f", "g", "h"] {
        c0.reserve(t).await.unwrap();
    }
    let err = c0.reserve("i").await.unwrap_err();
    assert!(matches!(err, ensemble::Error::NoAvailableSlots(8)), "{err}");
    assert!(c0.reserve("a,b").await.is_err());
}
