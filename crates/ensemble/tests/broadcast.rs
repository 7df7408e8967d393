//! Broadcast between nodes in one process, over real TCP on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ensemble::{Error, ExchangeSelector, Graft, Handler, UserEvent};
use futures::StreamExt;

mod common;
use common::*;

/// Collects user events from a stream in the background.
fn collect(node: &ensemble::Node) -> Arc<Mutex<Vec<UserEvent>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut events = node.user_events();
    let sink = got.clone();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            sink.lock().unwrap().push(e);
        }
    });
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_events_reach_every_node_once_and_in_order() {
    let nodes = cluster(4).await;
    let logs: Vec<_> = nodes.iter().map(collect).collect();
    for i in 0..20 {
        nodes[1]
            .send_event("deploy", format!("v{i}"))
            .await
            .unwrap();
    }
    nodes[3].send_event("other", "x").await.unwrap();
    wait_for(Duration::from_secs(10), "every node has 21 events", || {
        logs.iter().all(|l| l.lock().unwrap().len() == 21)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (node, log) in nodes.iter().zip(&logs) {
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 21, "exactly once at {}", node.name());
        let from1: Vec<String> = log
            .iter()
            .filter(|e| e.origin == "n1")
            .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        assert_eq!(from1, expected, "in order at {}", node.name());
    }
}

/// A last-writer-wins register per key: a custom handler with anti-entropy.
#[derive(Clone, Default)]
struct Registers(Arc<Mutex<BTreeMap<String, (u64, String)>>>);

impl Handler for Registers {
    fn broadcast_data(&mut self, msg: Bytes) -> (Bytes, Bytes) {
        (msg.clone(), msg)
    }
    fn merge(&mut self, _id: &Bytes, payload: &Bytes) -> bool {
        let text = String::from_utf8_lossy(payload);
        let Some((key, rest)) = text.split_once('=') else {
            return false;
        };
        let Some((version, value)) = rest.split_once('@') else {
            return false;
        };
        let Ok(version) = version.parse::<u64>() else {
            return false;
        };
        let mut map = self.0.lock().unwrap();
        if map.get(key).is_some_and(|(v, _)| *v >= version) {
            return false;
        }
        map.insert(key.to_owned(), (version, value.to_owned()));
        true
    }
    fn is_stale(&self, id: &Bytes) -> bool {
        let mut probe = self.clone();
        let known = self.0.lock().unwrap().clone();
        let stale = !probe.merge(id, id);
        *probe.0.lock().unwrap() = known;
        stale
    }
    fn graft(&self, id: &Bytes) -> Graft {
        Graft::Payload(id.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_handlers_run_side_by_side_and_errors_are_clear() {
    let nodes = cluster(3).await;
    let stores: Vec<Registers> = (0..3).map(|_| Registers::default()).collect();
    for (n, s) in nodes.iter().zip(&stores) {
        n.register_handler("registers", s.clone()).await.unwrap();
    }
    let dup = nodes[0]
        .register_handler("registers", Registers::default())
        .await;
    assert!(matches!(dup, Err(Error::Broadcast(_))), "{dup:?}");
    nodes[2]
        .broadcast("registers", "color=1@red")
        .await
        .unwrap();
    nodes[0]
        .broadcast("registers", "color=2@blue")
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "every node has color=blue", || {
        stores
            .iter()
            .all(|s| s.0.lock().unwrap().get("color").map(|(_, v)| v.as_str()) == Some("blue"))
    })
    .await;

    let big = vec![b'x'; 64 * 1024 + 1];
    let err = nodes[0].broadcast("registers", big).await.unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    let err = nodes[0].broadcast("nope", "x").await.unwrap_err();
    assert!(err.to_string().contains("no broadcast handler"), "{err}");
    let err = nodes[0].send_event("", "x").await.unwrap_err();
    assert!(err.to_string().contains("event name"), "{err}");

    let status = nodes[0].broadcast_status(None).await.unwrap();
    assert_eq!(status.neighbours.len(), 2);
    assert_eq!(status.eager.len(), 2, "the root pushes to both: {status:?}");
    assert!(status.handlers.contains(&"registers".to_string()));
    assert!(status.stats.broadcasts >= 1);
    nodes[0]
        .cancel_exchanges(ExchangeSelector::All)
        .await
        .unwrap();
    assert!(nodes[0]
        .broadcast_status(None)
        .await
        .unwrap()
        .exchanges
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_during_a_partition_arrive_after_it_heals() {
    let nodes = cluster(3).await;
    let logs: Vec<_> = nodes.iter().map(collect).collect();
    let p = nodes[2]
        .inject_partition(["n0".to_string(), "n1".to_string()])
        .await
        .unwrap();
    let p0 = nodes[0].inject_partition(["n2".to_string()]).await.unwrap();
    let p1 = nodes[1].inject_partition(["n2".to_string()]).await.unwrap();
    nodes[0].send_event("while-apart", "1").await.unwrap();
    wait_for(Duration::from_secs(5), "n1 has it", || {
        logs[1].lock().unwrap().len() == 1
    })
    .await;
    assert!(logs[2].lock().unwrap().is_empty());
    nodes[2].resolve_partition(p).await.unwrap();
    nodes[0].resolve_partition(p0).await.unwrap();
    nodes[1].resolve_partition(p1).await.unwrap();
    wait_for(Duration::from_secs(20), "n2 gets it after the heal", || {
        logs[2].lock().unwrap().len() == 1
    })
    .await;
}

/// Waits until every node has a connection to every other (the trees are laid on them).
async fn meshed(nodes: &[ensemble::Node]) {
    for _ in 0..1000 {
        let mut all = true;
        for n in nodes {
            let s = n.broadcast_status(None).await.unwrap();
            all &= s.neighbours.len() == nodes.len() - 1;
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the nodes never connected to each other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_and_trees_of_remote_nodes_are_gathered_through_the_cluster() {
    let nodes = cluster(3).await;
    meshed(&nodes).await;
    let long = Duration::from_secs(20);
    for root in ["n0", "n1", "n2"] {
        for asked in &nodes {
            let own = asked.broadcast_status(Some(root)).await.unwrap();
            for by in &nodes {
                let got = by
                    .broadcast_peers(asked.name(), Some(root), long)
                    .await
                    .unwrap();
                assert_eq!(got.node, asked.name());
                assert_eq!(got.root, root);
                assert_eq!(
                    (&got.eager, &got.lazy),
                    (&own.eager, &own.lazy),
                    "{}'s peers for {root} as {} got them",
                    asked.name(),
                    by.name()
                );
            }
        }
        let tree = nodes[1].broadcast_tree(root, long).await.unwrap();
        assert!(tree.unanswered.is_empty(), "{tree:?}");
        assert_eq!(tree.nodes.len(), 3, "{tree:?}");
        for n in &nodes {
            let own = n.broadcast_status(Some(root)).await.unwrap();
            let part = &tree.nodes[n.name()];
            assert_eq!((&part.eager, &part.lazy), (&own.eager, &own.lazy));
        }
    }
    // None: the asked node's own tree.
    let own = nodes[2].broadcast_peers("n2", None, long).await.unwrap();
    let remote = nodes[0].broadcast_peers("n2", None, long).await.unwrap();
    assert_eq!(remote.root, "n2");
    assert_eq!(remote, own);
    assert!(matches!(
        nodes[0].broadcast_peers("nobody", None, long).await,
        Err(Error::UnknownNode(_))
    ));
    // n2 cut off: it cannot answer, and the tree says so while it still counts as live.
    nodes[2]
        .inject_partition(["n0".to_string(), "n1".to_string()])
        .await
        .unwrap();
    nodes[0].inject_partition(["n2".to_string()]).await.unwrap();
    nodes[1].inject_partition(["n2".to_string()]).await.unwrap();
    let short = Duration::from_millis(500);
    let tree = nodes[0].broadcast_tree("n0", short).await.unwrap();
    assert!(!tree.nodes.contains_key("n2"), "{tree:?}");
    assert_eq!(tree.nodes.len(), 2, "{tree:?}");
    if status(&nodes[0], "n2") == Some(ensemble::Status::Alive) {
        assert_eq!(tree.unanswered, vec!["n2".to_string()]);
        let asked = nodes[0].broadcast_peers("n2", None, short).await;
        assert!(
            matches!(
                asked,
                Err(Error::Timeout { .. }) | Err(Error::UnknownNode(_))
            ),
            "{asked:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_eager_and_lazy_sets_are_given_at_start() {
    let mut c = config("n0", 0);
    c.broadcast.initial_lazy.insert("n1".into());
    c.broadcast.initial_eager.insert("n2".into());
    let first = ensemble::Node::start(c).await.unwrap();
    let seed = first.addr();
    let nodes = vec![
        first,
        start("n1", &[seed]).await,
        start("n2", &[seed]).await,
    ];
    wait_for(Duration::from_secs(20), "cluster converges", || {
        all_see(&nodes, &names(&nodes), ensemble::Status::Alive)
    })
    .await;
    meshed(&nodes).await;
    // Every root but the peer's own (a root needs no announcements of its messages).
    for root in ["n0", "n2"] {
        let s = nodes[0].broadcast_status(Some(root)).await.unwrap();
        assert!(!s.eager.contains(&"n1".to_string()), "{root}: {s:?}");
        assert!(s.lazy.contains(&"n1".to_string()), "{root}: {s:?}");
    }
    let s = nodes[0].broadcast_status(Some("n1")).await.unwrap();
    assert!(s.eager.contains(&"n2".to_string()), "{s:?}");
    // The lazy peer still gets everything: announced, then grafted.
    let log = collect(&nodes[1]);
    nodes[0].send_event("deploy", "v1").await.unwrap();
    wait_for(Duration::from_secs(20), "n1 gets the event", || {
        log.lock().unwrap().len() == 1
    })
    .await;

    let mut c = config("x0", 0);
    c.broadcast.initial_eager.insert("x0".into());
    assert!(matches!(
        ensemble::Node::start(c).await,
        Err(Error::Config(_))
    ));
    let mut c = config("x0", 0);
    c.broadcast.initial_lazy = (0..1025).map(|i| format!("p{i}")).collect();
    assert!(matches!(
        ensemble::Node::start(c).await,
        Err(Error::Config(_))
    ));
    let mut c = config("x0", 0);
    c.broadcast.initial_lazy.insert("p".into());
    c.broadcast.initial_eager.insert("p".into());
    assert!(matches!(
        ensemble::Node::start(c).await,
        Err(Error::Config(_))
    ));
}

/// A set of strings whose anti-entropy is a protocol of its own, run over named messaging.
#[derive(Clone, Default)]
struct SyncedSet(Arc<Mutex<std::collections::BTreeSet<String>>>);

impl Handler for SyncedSet {
    fn broadcast_data(&mut self, msg: Bytes) -> (Bytes, Bytes) {
        (msg.clone(), msg)
    }
    fn merge(&mut self, _id: &Bytes, payload: &Bytes) -> bool {
        let s = String::from_utf8_lossy(payload).into_owned();
        self.0.lock().unwrap().insert(s)
    }
    fn is_stale(&self, id: &Bytes) -> bool {
        let s = String::from_utf8_lossy(id).into_owned();
        self.0.lock().unwrap().contains(&s)
    }
    fn graft(&self, id: &Bytes) -> Graft {
        Graft::Payload(id.clone())
    }
    fn custom_exchange(&self) -> bool {
        true
    }
}

/// The application side of `SyncedSet`'s exchange: asks the peer for everything it holds
/// (`ask:<session>`), answers such asks (`all:<session>:a,b,c`), and finishes the exchange
/// with the answer.
async fn run_sync(node: ensemble::Node, set: SyncedSet) {
    let mut mailbox = node.register("sets.sync").await.unwrap();
    let mut requests = node.custom_exchanges("sets").await.unwrap();
    loop {
        tokio::select! {
            Some(r) = requests.next() => {
                let ask = format!("ask:{}", r.session);
                let _ = node.cast_message(&r.peer, "sets.sync", ask).await;
            }
            Some(m) = mailbox.recv() => {
                let text = String::from_utf8_lossy(&m.payload).into_owned();
                if let Some(session) = text.strip_prefix("ask:") {
                    let all: Vec<String> = set.0.lock().unwrap().iter().cloned().collect();
                    let answer = format!("all:{session}:{}", all.join(","));
                    let _ = node.cast_message(&m.from, "sets.sync", answer).await;
                } else if let Some(rest) = text.strip_prefix("all:") {
                    let (session, all) = rest.split_once(':').unwrap();
                    let items = (all.split(',').filter(|s| !s.is_empty()))
                        .map(|s| (Bytes::from(s.to_owned()), Bytes::from(s.to_owned())))
                        .collect();
                    let _ = node.finish_exchange(session.parse().unwrap(), items).await;
                }
            }
            else => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_runs_its_own_exchange_over_messaging() {
    let mut nodes = Vec::new();
    let mut sets = Vec::new();
    for i in 0..2 {
        let mut c = config(&format!("n{i}"), 0);
        c.broadcast.exchange_interval = Duration::from_millis(500);
        c.seeds = nodes
            .first()
            .map(|n: &ensemble::Node| n.addr())
            .into_iter()
            .collect();
        let node = ensemble::Node::start(c).await.unwrap();
        let set = SyncedSet::default();
        node.register_handler("sets", set.clone()).await.unwrap();
        tokio::spawn(run_sync(node.clone(), set.clone()));
        nodes.push(node);
        sets.push(set);
    }
    wait_for(Duration::from_secs(20), "cluster converges", || {
        all_see(&nodes, &names(&nodes), ensemble::Status::Alive)
    })
    .await;
    // Known to n0 only (never broadcast): only an exchange can bring it to n1.
    sets[0].0.lock().unwrap().insert("only-on-n0".into());
    wait_for(Duration::from_secs(30), "n1 learns it by exchange", || {
        sets[1].0.lock().unwrap().contains("only-on-n0")
    })
    .await;
    let s = nodes[1].broadcast_status(None).await.unwrap();
    assert!(s.stats.repaired >= 1, "{s:?}");
    // A finished (or unknown) session merges nothing.
    let late = vec![(Bytes::from("late"), Bytes::from("late"))];
    assert!(!nodes[1].finish_exchange(u64::MAX, late).await.unwrap());
    assert!(!sets[1].0.lock().unwrap().contains("late"));
}
