//! Replicated tables between nodes in one process, over real TCP on 127.0.0.1.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble::{Error, Node, Table, TableError, TableOptions};

mod common;
use common::*;

async fn open(nodes: &[Node], name: &str) -> Vec<Table<String, u64>> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.table(name, TableOptions::set()).await.unwrap());
    }
    out
}

async fn joined(tables: &[Table<String, u64>]) {
    let n = tables.len();
    for _ in 0..200 {
        let mut all = true;
        for t in tables {
            all &= t.info().await.unwrap().members.len() == n;
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("replicas did not join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_and_reads_are_local() {
    let nodes = cluster(3).await;
    let tables = open(&nodes, "sessions").await;
    joined(&tables).await;
    let mut changes = tables[2].subscribe();
    tables[0].insert("alice".into(), 1).await.unwrap();
    // Synchronous: every replica has it on return.
    for t in &tables {
        assert_eq!(t.get(&"alice".to_string()).unwrap(), Some(1));
    }
    tables[1]
        .insert_many(&[("bob".into(), 2), ("carol".into(), 3)])
        .await
        .unwrap();
    tables[2].delete(&"alice".to_string()).await.unwrap();
    for t in &tables {
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.snapshot().unwrap(),
            vec![("bob".to_string(), 2), ("carol".to_string(), 3)]
        );
    }
    let first = changes.recv().await.unwrap().unwrap();
    assert_eq!(
        (first.key.as_str(), first.old, first.new),
        ("alice", None, Some(1))
    );
    // Asynchronous writes, many under one deadline.
    let mut ids = Vec::new();
    for i in 0..50u64 {
        ids.push(tables[0].insert_async(format!("k{i}"), i).await.unwrap());
    }
    let results = tables[0].wait_responses(ids, Duration::from_secs(5)).await;
    assert!(results.iter().all(Result::is_ok));
    tables[0].ping_all(Duration::from_secs(5)).await.unwrap();
    assert_eq!(tables[1].len(), 52);
    let info = tables[1].info().await.unwrap();
    assert_eq!(info.members.len(), 3);
    assert!(info.memory > 0);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_new_is_decided_once_for_the_cluster() {
    let nodes = cluster(3).await;
    let tables = open(&nodes, "locks").await;
    joined(&tables).await;
    let mut tasks = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.insert_new("job-1".into(), i as u64).await.unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as usize;
    }
    assert_eq!(winners, 1, "exactly one insert_new wins");
    let holder = tables[0].get(&"job-1".to_string()).unwrap().unwrap();
    let (v, inserted) = tables[2]
        .insert_new_or_lookup("job-1".into(), 99)
        .await
        .unwrap();
    assert_eq!((v, inserted), (holder, false));
    for n in nodes {
        n.shutdown().await;
    }
}

/// `writers` each write key "s" serially `rounds` times, all at once (values `100 * i + r`
/// for the writer at index i): returns when every write completed.
async fn serial_writes(writers: &[(usize, Table<String, u64>)], rounds: u64) {
    let mut tasks = Vec::new();
    for (i, t) in writers {
        for r in 0..rounds {
            let t = t.clone().with_timeout(Duration::from_secs(30));
            let v = 100 * *i as u64 + r;
            tasks.push(tokio::spawn(
                async move { t.insert_serial("s".into(), v).await },
            ));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

/// The next `n` values key "s" takes in `changes`.
async fn values_of_s(changes: &mut ensemble::TableChanges<String, u64>, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let read = async {
        while out.len() < n {
            let c = changes.recv().await.unwrap().expect("running");
            if c.key == "s" {
                out.push(c.new.expect("an insert"));
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .is_err()
    {
        panic!("saw only {out:?} of {n} writes");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_serial_goes_through_the_leader_in_one_order_across_a_leader_change() {
    let nodes = cluster(3).await;
    let tables = open(&nodes, "serial").await;
    joined(&tables).await;
    let mut subs: Vec<_> = tables.iter().map(|t| t.subscribe()).collect();
    // Serial writes of one key from every node at once: each goes through the leader (n0),
    // so every replica applies all of them in the leader's order. Plain inserts would be
    // applied first where they were made (another order on each replica), and a replica
    // would skip one older than the value it holds.
    let writers: Vec<_> = tables.iter().cloned().enumerate().collect();
    serial_writes(&writers, 5).await;
    let order = values_of_s(&mut subs[0], 15).await;
    for sub in &mut subs[1..] {
        assert_eq!(values_of_s(sub, 15).await, order, "the leader's order");
    }
    // The leader leaves: serial writes go to the next one (n1), still in one order.
    nodes[0].shutdown().await;
    serial_writes(&writers[1..], 3).await;
    let order = values_of_s(&mut subs[1], 6).await;
    assert_eq!(values_of_s(&mut subs[2], 6).await, order);
    assert_eq!(tables[2].info().await.unwrap().leader, "n1");
    for n in &nodes[1..] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replica_releases_writes_and_runs_handle_down() {
    let nodes = cluster(3).await;
    let downs = Arc::new(Mutex::new(Vec::new()));
    let mut tables = Vec::new();
    for n in &nodes {
        let d = downs.clone();
        let opts = TableOptions::<String, u64>::set().handle_down(move |node| {
            d.lock().unwrap().push(node.to_string());
        });
        tables.push(n.table("t", opts).await.unwrap());
    }
    joined(&tables).await;
    let victim = nodes[2].name().to_string();
    nodes[2].inject_partition(names(&nodes[..2])).await.unwrap();
    nodes[0].inject_partition([victim.clone()]).await.unwrap();
    nodes[1].inject_partition([victim.clone()]).await.unwrap();
    // Waits for the cut-off replica until it is down, then returns.
    tokio::time::timeout(Duration::from_secs(15), tables[0].insert("k".into(), 1))
        .await
        .expect("the write completes once the replica is down")
        .unwrap();
    assert_eq!(tables[1].get(&"k".to_string()).unwrap(), Some(1));
    wait_for(Duration::from_secs(5), "handle_down ran", || {
        downs
            .lock()
            .unwrap()
            .iter()
            .filter(|n| **n == victim)
            .count()
            >= 2
    })
    .await;
    let info = tables[0].info().await.unwrap();
    assert!(info.down_history.iter().any(|(n, _)| *n == victim));
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_and_bad_types_fail_clearly() {
    let nodes = cluster(1).await;
    let n = &nodes[0];
    let bag = TableOptions::<String, u64>::bag().conflict_handler(|_, a, _| *a);
    let err = n.table("b", bag).await.unwrap_err();
    assert!(
        matches!(err, Error::Table(TableError::BagWithConflictHandler(_))),
        "{err}"
    );
    let t: Table<String, String> = n
        .table("typed", TableOptions::set().max_records(2))
        .await
        .unwrap();
    t.insert("a".into(), "x".into()).await.unwrap();
    t.insert("b".into(), "y".into()).await.unwrap();
    let full = t.insert("c".into(), "z".into()).await.unwrap_err();
    assert!(full.to_string().contains("max_records = 2"), "{full}");
    let huge = "x".repeat(300 * 1024);
    let big = t.insert("big".into(), huge).await.unwrap_err();
    assert!(big.to_string().contains("exceeds the limit"), "{big}");
    // The same name read with other types: a clear decode error, not a panic.
    let wrong: Table<String, (u64, u64, u64, u64)> =
        n.table("typed", TableOptions::set()).await.unwrap();
    let err = wrong.snapshot().unwrap_err();
    assert!(err.to_string().contains("cannot decode"), "{err}");
    let kind = n
        .table::<String, String>("typed", TableOptions::bag())
        .await
        .unwrap_err();
    assert!(kind.to_string().contains("same kind"), "{kind}");
    assert_eq!(n.tables().await.unwrap(), vec!["typed".to_string()]);
    nodes[0].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_abandoned_half_way_does_not_leave_the_table_paused() {
    let nodes = cluster(1).await;
    let tables = open(&nodes, "paused").await;
    let t = &tables[0];
    for _ in 0..20 {
        // Polled once: the pause request goes out, then the future is dropped.
        let mut pause = Box::pin(t.pause());
        let once = std::future::poll_fn(|cx| std::task::Poll::Ready(pause.as_mut().poll(cx)));
        // (Ready only if the driver answered at once; then the guard is dropped here.)
        let _ = once.await;
        drop(pause);
    }
    tokio::time::timeout(Duration::from_secs(5), t.insert("k".into(), 1))
        .await
        .expect("writes are not left paused")
        .unwrap();
    assert!(!t.info().await.unwrap().paused);
    nodes[0].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_too_large_for_the_clock_mean_no_deadline() {
    let nodes = cluster(2).await;
    let tables = open(&nodes, "forever").await;
    joined(&tables).await;
    let t = tables[0].clone().with_timeout(Duration::MAX);
    t.insert_new("k".into(), 1).await.unwrap();
    t.ping_all(Duration::MAX).await.unwrap();
    t.join(nodes[1].name(), Duration::MAX).await.unwrap();
    let ids = vec![t.insert_async("j".into(), 2).await.unwrap()];
    assert!(t.wait_responses(ids, Duration::MAX).await[0].is_ok());
    // The nodes still serve: a synchronous write reaches the other replica.
    t.insert("after".into(), 3).await.unwrap();
    assert_eq!(tables[1].get(&"after".into()).unwrap(), Some(3));
    for n in &nodes {
        n.shutdown().await;
    }
}

/// Two nodes that each hold a table of their own connect: a join of many chunks (about 2.4 MB
/// of records, against 256 KiB chunks) merges them, both ways, over real TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_table_merges_in_many_chunks_and_arrives_whole_on_both_sides() {
    let a = start("big-a", &[]).await;
    let b = start("big-b", &[]).await;
    let ta: Table<String, String> = a.table("big", TableOptions::set()).await.unwrap();
    let tb: Table<String, String> = b.table("big", TableOptions::set()).await.unwrap();
    let value = |i: usize| format!("{i:040}");
    let records: Vec<(String, String)> = (0..30_000).map(|i| (format!("k{i}"), value(i))).collect();
    for batch in records.chunks(1000) {
        ta.insert_many(batch).await.unwrap();
    }
    // b holds keys of its own, some of them also on a with other values.
    let own: Vec<(String, String)> = (29_950..30_050)
        .map(|i| (format!("k{i}"), format!("b's {i}")))
        .collect();
    tb.insert_many(&own).await.unwrap();
    b.join(a.addr()).await.unwrap();
    async fn settled(t: &Table<String, String>) -> bool {
        t.len() == 30_050
            && t.info()
                .await
                .is_ok_and(|i| i.members.len() == 2 && !i.paused)
    }
    for _ in 0..400 {
        if settled(&ta).await && settled(&tb).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (sa, sb) = (ta.snapshot().unwrap(), tb.snapshot().unwrap());
    assert_eq!(sa.len(), 30_050);
    assert_eq!(sa, sb);
    // Keys only one side had arrive with their values; a key both had holds one of the two.
    let held: std::collections::BTreeMap<String, String> = sa.into_iter().collect();
    assert_eq!(held["k7"], value(7));
    assert_eq!(held["k30049"], "b's 30049");
    assert!([value(29_960), "b's 29960".to_string()].contains(&held["k29960"]));
    a.shutdown().await;
    b.shutdown().await;
}
