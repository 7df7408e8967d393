//! Key rotation over real TCP on 127.0.0.1: install a new key everywhere, make it the primary,
//! remove the old one, while acknowledged messages and table writes stream; afterwards only the
//! new key gets a node in.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ensemble::{fingerprint, Config, EventKind, Node, Secret, TableOptions};
use futures::StreamExt;

mod common;
use common::*;

fn key(text: &str) -> Secret {
    Secret::new(text).unwrap()
}

async fn start_with(name: &str, secret: &Secret, seeds: &[std::net::SocketAddr]) -> Node {
    let mut c: Config = config(name, 0);
    c.secret = secret.clone();
    c.seeds = seeds.to_vec();
    Node::start(c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_rotates_its_key_while_messages_and_writes_stream() {
    let a = key("the-old-cluster-key-0123456789");
    let b = key("the-new-cluster-key-9876543210");
    let first = start_with("n0", &a, &[]).await;
    let mut nodes = vec![first.clone()];
    for i in 1..5 {
        nodes.push(start_with(&format!("n{i}"), &a, &[first.addr()]).await);
    }
    let all = names(&nodes);
    wait_for(Duration::from_secs(20), "five nodes converge", || {
        all_see(&nodes, &all, ensemble::Status::Alive)
    })
    .await;
    // Nobody may be marked down during the rotation.
    let downs = Arc::new(AtomicU64::new(0));
    for n in &nodes {
        let mut events = n.events();
        let downs = downs.clone();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if e.kind == EventKind::Down {
                    downs.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    // Traffic: acknowledged messages from n1 to n2, table writes from n3.
    let mut inbox = nodes[2].register("jobs").await.unwrap();
    tokio::spawn(async move { while inbox.next().await.is_some() {} });
    let table = nodes[3]
        .table::<String, u64>("t", TableOptions::set())
        .await
        .unwrap();
    for n in [&nodes[0], &nodes[1], &nodes[2], &nodes[4]] {
        n.table::<String, u64>("t", TableOptions::set())
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, written) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let messages = {
        let (n1, stop, sent) = (nodes[1].clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let i = sent.fetch_add(1, Ordering::SeqCst);
                let r = n1
                    .forward_message("n2", "jobs", format!("job {i}"), Duration::from_secs(5))
                    .await;
                r.unwrap_or_else(|e| panic!("message {i} failed: {e}"));
            }
        })
    };
    let writes = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let i = written.fetch_add(1, Ordering::SeqCst);
                let r = table.insert(format!("k{}", i % 100), i).await;
                r.unwrap_or_else(|e| panic!("write {i} failed: {e}"));
            }
        })
    };
    let (fa, fb) = (fingerprint(&a), fingerprint(&b));
    let r = nodes[4].install_key(&b).await.unwrap();
    assert_eq!((r.nodes, r.succeeded.len()), (5, 5), "{r:?}");
    assert_eq!((r.keys[&fb].installed, r.keys[&fb].primary), (5, 0));
    let r = nodes[0].use_key(&b).await.unwrap();
    assert!(r.failed.is_empty(), "{r:?}");
    assert_eq!((r.keys[&fb].primary, r.keys[&fa].primary), (5, 0));
    // The primary key cannot be removed.
    let r = nodes[1].remove_key(&b).await.unwrap();
    assert_eq!(r.failed.len(), 5, "{r:?}");
    assert!(r.failed.values().all(|why| why.contains("primary")));
    let r = nodes[2].remove_key(&a).await.unwrap();
    assert!(r.failed.is_empty(), "{r:?}");
    assert!(!r.keys.contains_key(&fa));
    let listed = nodes[3].list_keys().await.unwrap();
    assert_eq!(listed.keys.len(), 1);
    assert_eq!(
        (listed.keys[&fb].installed, listed.keys[&fb].primary),
        (5, 5)
    );
    stop.store(true, Ordering::SeqCst);
    messages.await.unwrap();
    writes.await.unwrap();
    assert!(sent.load(Ordering::SeqCst) > 0 && written.load(Ordering::SeqCst) > 0);
    assert_eq!(downs.load(Ordering::SeqCst), 0, "a member was marked down");
    assert_eq!(nodes[2].keyring().primary(), &b);
    // Afterwards a node holding only the old key is refused, one holding the new key joins.
    let old = start_with("old", &a, &[]).await;
    let err = old.join(first.addr()).await.unwrap_err().to_string();
    assert!(err.contains("key exchange"), "{err}");
    let new = start_with("new", &b, &[]).await;
    new.join(first.addr()).await.unwrap();
    let mut six = nodes.clone();
    six.push(new.clone());
    let six_names = names(&six);
    wait_for(Duration::from_secs(20), "the new node is in", || {
        all_see(&six, &six_names, ensemble::Status::Alive)
    })
    .await;
    for n in nodes.iter().chain([&old, &new]) {
        n.shutdown().await;
    }
}

/// Key operations travel as messages to `ensemble.keys`: no program may send or receive under
/// Ensemble's names, or it could rotate the cluster's keys through the messaging API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_sends_or_receives_under_ensembles_own_names() {
    let nodes = cluster(2).await;
    let err = nodes[0].register("ensemble.keys").await.err().unwrap();
    assert!(matches!(err, ensemble::Error::ReservedHandler(_)), "{err}");
    let install = b"anything".to_vec();
    let err = nodes[0]
        .cast_message("n1", "ensemble.keys", install.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, ensemble::Error::ReservedHandler(_)), "{err}");
    let err = nodes[0]
        .forward_message("n1", "ensemble.x", install, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    for n in &nodes {
        n.shutdown().await;
    }
}
