//! Several nodes in one process, talking over real TCP on 127.0.0.1.

use std::time::{Duration, Instant};

use ensemble::{Config, EventKind, Node, Secret, Status};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge() {
    let nodes = cluster(3).await;
    for n in &nodes {
        assert_eq!(n.members().len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_converge() {
    let nodes = cluster(10).await;
    for n in &nodes {
        let names: Vec<String> = n.members().into_iter().map(|m| m.name).collect();
        assert_eq!(names.len(), 10);
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "name order: {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_abruptly_is_marked_down_by_all() {
    let mut nodes = cluster(4).await;
    let mut events = nodes[0].events();
    let gone = nodes.pop().unwrap();
    gone.shutdown().await;
    let t = wait_for(Duration::from_secs(10), "all mark n3 down", || {
        all_see(&nodes, &["n3".into()], Status::Down)
    })
    .await;
    assert!(t < Duration::from_secs(5), "detection took {t:?}");
    let e = tokio::time::timeout(Duration::from_secs(1), events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.kind, e.member.name.as_str()), (EventKind::Down, "n3"));
    // n0 saw its connection to n3 close first: the event says how long detection took.
    let detection = e.detection.expect("the detection latency of a down event");
    assert!(detection <= t + Duration::from_secs(1), "{detection:?}");
    assert!(
        all_see(&nodes, &names(&nodes), Status::Alive),
        "no false positive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_is_left() {
    let mut nodes = cluster(3).await;
    let mut events = nodes[0].events();
    nodes.pop().unwrap().leave().await;
    wait_for(Duration::from_secs(5), "all mark n2 left", || {
        all_see(&nodes, &["n2".into()], Status::Left)
    })
    .await;
    let e = tokio::time::timeout(Duration::from_secs(1), events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.kind, e.member.name.as_str()), (EventKind::Left, "n2"));
    // It stays left: nothing redials it or marks it down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(all_see(&nodes, &["n2".into()], Status::Left));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused() {
    let a = start("a", &[]).await;
    let mut c = config("intruder", 0);
    c.secret = Secret::new("another-secret-0123456789").unwrap();
    let intruder = Node::start(c).await.unwrap();
    let err = intruder.join(a.addr()).await.unwrap_err().to_string();
    assert!(err.contains("secret"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.members().len(), 1, "the intruder was not admitted");
    assert_eq!(intruder.members().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cluster_name_is_refused() {
    let a = start("a", &[]).await;
    let mut c = config("b", 0);
    c.cluster = "other".into();
    let b = Node::start(c).await.unwrap();
    let err = b.join(a.addr()).await.unwrap_err().to_string();
    // The acceptor tells an unauthenticated dialer nothing of its cluster (its own log says
    // which cluster the dialer claimed); the dialer's error names the possible causes.
    assert!(err.contains("another cluster (--cluster)"), "{err}");
    assert!(
        !err.contains("default"),
        "the acceptor's cluster name leaked: {err}"
    );
    assert_eq!(a.members().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_healed_by_reconnecting_merges_back() {
    let nodes = cluster(6).await;
    let (left, right) = nodes.split_at(3);
    let mut refs = vec![];
    for (side, other) in [(left, right), (right, left)] {
        for n in side {
            refs.push((n.clone(), n.inject_partition(names(other)).await.unwrap()));
        }
    }
    wait_for(
        Duration::from_secs(20),
        "each side marks the other down",
        || all_see(left, &names(right), Status::Down) && all_see(right, &names(left), Status::Down),
    )
    .await;
    for (n, r) in refs {
        assert_eq!(n.partitions().get(&r).map(|p| p.len()), Some(3), "in force");
        n.resolve_partition(r).await.unwrap();
        assert!(n.partitions().is_empty());
        assert!(
            n.resolve_partition(r).await.is_err(),
            "a resolved partition is unknown"
        );
    }
    let t = wait_for(Duration::from_secs(30), "the halves merge", || {
        all_see(&nodes, &names(&nodes), Status::Alive)
    })
    .await;
    eprintln!("healed in {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_appears_as_a_new_incarnation() {
    let nodes = cluster(3).await;
    let port = {
        let n = start("phoenix", &[nodes[0].addr()]).await;
        wait_for(Duration::from_secs(10), "phoenix joins", || {
            all_see(&nodes, &["phoenix".into()], Status::Alive)
        })
        .await;
        let port = n.addr().port();
        n.shutdown().await;
        port
    };
    let old = nodes[0]
        .members()
        .into_iter()
        .find(|m| m.name == "phoenix")
        .unwrap()
        .incarnation;
    wait_for(Duration::from_secs(10), "phoenix down", || {
        all_see(&nodes, &["phoenix".into()], Status::Down)
    })
    .await;
    let mut c = config("phoenix", port);
    c.seeds = vec![nodes[0].addr()];
    let again = Node::start(c).await.unwrap();
    wait_for(Duration::from_secs(10), "phoenix back", || {
        all_see(&nodes, &["phoenix".into()], Status::Alive)
    })
    .await;
    let new = again.local_member().incarnation;
    assert!(new > old, "{new} > {old}");
    for n in &nodes {
        let seen = n
            .members()
            .into_iter()
            .find(|m| m.name == "phoenix")
            .unwrap();
        assert_eq!(seen.incarnation, new);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_only_that_connection() {
    let nodes = cluster(2).await;
    let target = nodes[0].addr();
    // Random bytes, a frame that is not a handshake, and an oversized length prefix.
    let junk: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0, 0, 0, 3, 0xff, 0xff, 0xff],
        &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
    ];
    for bytes in junk {
        let mut s = TcpStream::connect(target).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let _ = s.flush().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still serving: a new node joins, and the existing member stayed alive.
    let late = start("late", &[]).await;
    late.join(target).await.expect("node still accepts members");
    let all = [nodes.clone(), vec![late]].concat();
    wait_for(Duration::from_secs(10), "all converge", || {
        all_see(&all, &names(&all), Status::Alive)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_updates_reach_the_others() {
    let nodes = cluster(3).await;
    let mut events = nodes[1].events();
    nodes[0]
        .set_tags([("role".to_string(), "db".to_string())].into())
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.kind, EventKind::Updated);
    assert_eq!(e.member.tags.get("role"), Some("db"));
    let too_big = (0..100).map(|i| (format!("k{i}"), "v".into())).collect();
    assert!(
        nodes[0].set_tags(too_big).await.is_err(),
        "oversized tags are refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_a_clear_error() {
    let err = Node::start(config("has space", 0))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("whitespace"), "{err}");
    let err = Node::start(Config::new(
        "x",
        "0.0.0.0:0".parse().unwrap(),
        Secret::new(SECRET).unwrap(),
    ))
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("advertise"), "{err}");
    let a = start("a", &[]).await;
    let err = Node::start(config("b", a.addr().port()))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot listen"), "{err}");
    // The role tag belongs to the topology.
    let mut c = config("r", 0);
    c.tags.insert("ensemble.role".into(), "client".into());
    let err = Node::start(c).await.err().unwrap().to_string();
    assert!(
        err.contains("reserved") && err.contains("--topology"),
        "{err}"
    );
    let tags = [("ensemble.role".to_string(), "server".to_string())].into();
    assert!(a.set_tags(tags).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_waits_for_a_change_and_fails_once_stopped() {
    let a = start("a", &[]).await;
    let idle = tokio::time::timeout(Duration::from_millis(300), a.changed()).await;
    assert!(
        idle.is_err(),
        "nothing changed, so changed() must still be waiting"
    );
    let waiter = tokio::spawn({
        let a = a.clone();
        async move { a.changed().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = start("b", &[a.addr()]).await;
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(r.is_ok(), "b's arrival is a change");
    b.shutdown().await;
    a.shutdown().await;
    assert!(a.changed().await.is_err(), "a stopped node reports it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_end_when_the_node_stops() {
    let a = start("a", &[]).await;
    let mut events = a.events();
    a.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(2), events.next()).await;
    assert_eq!(end.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_answers_for_itself_and_for_a_peer_already_connected() {
    let nodes = cluster(2).await;
    let err = nodes[0]
        .join(nodes[0].addr())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("own address"), "{err}");
    let t = Instant::now();
    let name = nodes[1].join(nodes[0].addr()).await.unwrap();
    assert_eq!(name, "n0");
    assert!(t.elapsed() < Duration::from_secs(3), "answered at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_the_node() {
    let a = start("a", &[]).await;
    let port = a.addr().port();
    drop(a);
    wait_for(Duration::from_secs(5), "the port is free again", || {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
}

/// A peer that speaks only an older protocol version is refused in the handshake with both
/// sides' version ranges, before anything else is said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_an_older_protocol_version_is_refused_with_both_ranges() {
    use ensemble::proto::wire::{
        self, Frame, Hello, PeerInfo, Reject, KEY_LEN, MAGIC, MIN_PROTOCOL_VERSION,
        PROTOCOL_VERSION,
    };
    use futures::SinkExt;
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    let node = start("n0", &[]).await;
    let stream = TcpStream::connect(node.addr()).await.unwrap();
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let old = MIN_PROTOCOL_VERSION - 1;
    let hello = Hello {
        magic: MAGIC,
        min_version: old,
        max_version: old,
        cluster: "default".into(),
        peer: PeerInfo {
            name: "old".into(),
            addr: "127.0.0.1:20999".parse().unwrap(),
            incarnation: 1,
            instance: 1,
            role: None,
        },
        pake: vec![7; 33],
        ephemeral: [7; KEY_LEN],
    };
    let frame = wire::encode(&Frame::Hello(hello));
    framed.send(bytes::Bytes::from(frame)).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), framed.next())
        .await
        .expect("an answer")
        .expect("a frame")
        .unwrap();
    match wire::decode(&reply).unwrap() {
        Frame::Reject(Reject::Version { min, max }) => {
            assert_eq!((min, max), (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION));
        }
        other => panic!("expected a version refusal, got {other:?}"),
    }
    node.shutdown().await;
}
